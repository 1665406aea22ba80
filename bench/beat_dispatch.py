"""Beat dispatch: N integrations due at the same moment, all started by ONE scheduler tick.

    .venv/bin/python bench/beat_dispatch.py [--integrations 10000] [--repeat 3] [--worker]

A scratch PostgreSQL database (the application role, row-level security on) and Redis db;
N HubSpot integrations over 100 organizations with a schedule each (bulk inserted), all
due now.  Each repeat runs one tick (:func:`scheduler.dispatch.dispatch_due`, called
directly) and checks: N slot rows, N runs, no (integration, slot) twice, every page task
in the outbox published.  Then, in the same run on the same machine, the raw limit: the
same number of plain INSERTs of slot rows from one process (psycopg executemany, one
transaction).  ``--worker`` also sends one ``scheduler.dispatch_due`` task to a real
worker (two processes, the default on a two-core machine: the tick asks for a second tick
that shares the work) and times it until every schedule is dispatched: no schedule still
due and every page task published (the tick's own result comes earlier when the second one
took part of the work).  Prints the medians: seconds, rows/s, ratio to the raw limit.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import scratch_database, scratch_redis  # noqa: E402

ORGANIZATIONS = 100
GOAL_SECONDS = 5.0
RAW_INSERT = """INSERT INTO schedule_slots
    (id, organization_id, schedule_id, integration_id, slot, status, missed, created_at)
    VALUES (%s, %s, %s, %s, %s, 'started', 0, now())"""


def seed(count: int, streams: list[str]) -> None:
    """``count`` integrations over ORGANIZATIONS organizations, each with a due schedule."""
    from models import Integration, Organization, SyncSchedule
    from models.base import utcnow
    from models.bulk import bulk_insert
    from models.session import get_database

    now = utcnow()
    orgs = [uuid.uuid4() for _ in range(ORGANIZATIONS)]
    integrations, schedules = [], []
    for number in range(count):
        org, integration = orgs[number % ORGANIZATIONS], uuid.uuid4()
        integrations.append(
            {
                "id": integration,
                "organization_id": org,
                "provider": "hubspot",
                "integration_type": "crm",
                "status": "connected",
                "settings": {"base_url": "http://127.0.0.1:9"},
            }
        )
        schedules.append(
            {
                "id": uuid.uuid4(),
                "organization_id": org,
                "integration_id": integration,
                "kind": "interval",
                "every_seconds": 900,
                "streams": streams,
                "streams_key": ",".join(sorted(streams)),
                "next_run_at": now - timedelta(seconds=1),
            }
        )
    with get_database().system("bench: seed") as session:
        bulk_insert(
            session,
            Organization.__table__,
            [
                {"id": o, "name": f"Bench {i}", "subscription_plan": "free"}
                for i, o in enumerate(orgs)
            ],
        )
        bulk_insert(session, Integration.__table__, integrations)
        bulk_insert(session, SyncSchedule.__table__, schedules)


def reset(owner_url: str) -> None:
    """Finish every run and make every schedule due again, for the next repeat; then
    VACUUM, as autovacuum would, so a repeat does not pay for the previous one's dead rows."""
    from sqlalchemy import text

    from models.session import get_database, make_engine

    with get_database().system("bench: reset") as session:
        session.execute(
            text("UPDATE integration_logs SET status = 'success' WHERE status = 'running'")
        )
        session.execute(text("UPDATE sync_schedules SET next_run_at = now() - interval '1 second'"))
    owner = make_engine(owner_url, isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        for table in ("sync_schedules", "integration_logs", "schedule_slots", "outbox"):
            connection.execute(text(f"VACUUM ANALYZE {table}"))
    owner.dispose()


def check() -> dict[str, int]:
    """Counts that prove one run per (integration, slot), nothing twice, nothing unpublished."""
    from sqlalchemy import text

    from models.session import get_database

    queries = {
        "slots": "SELECT count(*) FROM schedule_slots",
        "distinct_slots": "SELECT count(DISTINCT (integration_id, slot)) FROM schedule_slots",
        "runs": "SELECT count(*) FROM integration_logs WHERE request_data->>'trigger' = 'schedule'",
        "distinct_runs": "SELECT count(DISTINCT (integration_id, request_data->>'slot')) "
        "FROM integration_logs WHERE request_data->>'trigger' = 'schedule'",
        "unpublished": "SELECT count(*) FROM outbox WHERE published_at IS NULL",
        "still_due": "SELECT count(*) FROM sync_schedules WHERE next_run_at <= now()",
    }
    with get_database().system("bench: check") as session:
        found = {name: int(session.scalar(text(sql)) or 0) for name, sql in queries.items()}
    assert found["slots"] == found["distinct_slots"], found
    assert found["runs"] == found["distinct_runs"] == found["slots"], found
    assert found["unpublished"] == 0 and found["still_due"] == 0, found
    return found


def one_tick() -> tuple[float, dict]:
    import workers.app  # noqa: F401 - the tick's outbox rows are published through it
    from models.session import get_database
    from scheduler.dispatch import dispatch_due

    started = time.perf_counter()
    report = dispatch_due(get_database())
    return time.perf_counter() - started, report.summary()


def raw_inserts(system_url: str, count: int) -> float:
    """Seconds of ``count`` plain INSERTs of slot rows from one process, one transaction
    (as the system role, which the scheduler tick uses too)."""
    dsn = system_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as db:
        pairs = db.execute(
            "SELECT organization_id, id, integration_id FROM sync_schedules LIMIT %s", (count,)
        ).fetchall()
        rows = [(uuid.uuid4(), org, sid, iid, "2001-01-01T00:00:00Z") for org, sid, iid in pairs]
        started = time.perf_counter()
        with db.cursor() as cursor:
            cursor.executemany(RAW_INSERT, rows)
        db.commit()
        elapsed = time.perf_counter() - started
        db.execute("DELETE FROM schedule_slots WHERE slot = '2001-01-01T00:00:00Z'")
        db.commit()
    return elapsed


def dispatched() -> bool:
    """Every schedule dispatched: none still due, every page task on the broker."""
    from sqlalchemy import text

    from models.session import get_database

    with get_database().system("bench: dispatched yet?") as session:
        left = session.scalar(
            text(
                "SELECT (SELECT count(*) FROM sync_schedules WHERE next_run_at <= now()) "
                "+ (SELECT count(*) FROM outbox WHERE published_at IS NULL)"
            )
        )
    return left == 0


def through_worker(env: dict[str, str], concurrency: int) -> float:
    """Wall seconds from sending the scheduler.dispatch_due task to a real worker until
    every schedule is dispatched (see :func:`dispatched`)."""
    from workers.app import app

    data_dir = Path(f"/tmp/plugs-bench-beat-{os.getpid()}")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "worker",
            "--concurrency",
            str(concurrency),
            "--queues",
            "default",
            "--loglevel",
            "WARNING",
            "--without-mingle",
            "--without-gossip",
        ],
        env={**os.environ, **env, "PLUGS_DATA_DIR": str(data_dir)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        app.send_task("maintenance.ping", queue="default").get(timeout=60)  # the worker is up
        started = time.perf_counter()
        tick = app.send_task("scheduler.dispatch_due")
        while not dispatched():
            if time.perf_counter() - started > 300:
                raise TimeoutError("not dispatched after 300 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - started
        result = tick.get(timeout=300)
        print(f"  through a worker: {elapsed:.2f} s wall, the tick says {result}", flush=True)
        return elapsed
    finally:
        worker.terminate()
        worker.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--stream", action="append", default=None, help="default: contacts")
    parser.add_argument("--worker", action="store_true", help="also one tick through a worker")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="the worker's processes (default 2)"
    )
    args = parser.parse_args()
    streams = args.stream if args.stream is not None else ["contacts"]
    with scratch_database() as database, scratch_redis() as broker:
        from connectors.credentials import new_key_entry
        from tests.services import reload_settings

        env = {
            "PLUGS_DATABASE_URL": database["app_url"],
            "PLUGS_SYSTEM_DATABASE_URL": database["system_url"],
            "PLUGS_BROKER_URL": broker,
            "PLUGS_RESULT_BACKEND": broker,
            "PLUGS_REDIS_URL": broker,
            "PLUGS_SECRET_KEYS": new_key_entry(),
        }
        os.environ.update(env)
        reload_settings()
        seed(args.integrations, streams)
        ticks, raws = [], []
        for attempt in range(args.repeat):
            if attempt:
                reset(database["owner_url"])
            seconds, summary = one_tick()
            found = check()
            raw = raw_inserts(database["system_url"], args.integrations)
            ticks.append(seconds)
            raws.append(raw)
            print(
                f"run {attempt + 1}: one tick {seconds:.2f} s ({args.integrations / seconds:,.0f} "
                f"schedules/s) {summary}; raw inserts {raw:.2f} s; checked {found}",
                flush=True,
            )
        worker_seconds = None
        if args.worker:
            reset(database["owner_url"])
            worker_seconds = through_worker(env, args.concurrency)
            check()
    tick, raw = statistics.median(ticks), statistics.median(raws)
    n = args.integrations
    print(f"streams per run            : {', '.join(streams) or 'all'}")
    print(
        f"median one tick            : {tick:.2f} s for {n:,} schedules (goal < {GOAL_SECONDS:.0f} s)"
    )
    print(f"median rows/s              : {n / tick:,.0f} schedules dispatched/s")
    print(f"median raw slot INSERTs    : {raw:.2f} s ({n / raw:,.0f} rows/s)")
    print(f"ratio tick / raw           : {tick / raw:.1f}x the time of the plain inserts")
    if worker_seconds is not None:
        print(
            f"through a real worker ({args.concurrency}) : {worker_seconds:.2f} s "
            f"(goal < {GOAL_SECONDS:.0f} s), "
            f"{worker_seconds / raw:.1f}x the time of the plain inserts"
        )


if __name__ == "__main__":
    main()
