"""Sync throughput: HubSpot contacts from the simulator over loopback HTTP into PostgreSQL
through a real worker, against the raw limit measured on the same machine in the same run
(one process: plain httpx page fetch + psycopg upsert, the same pages, the same database).

    .venv/bin/python bench/sync_throughput.py [--contacts 100000] [--repeat 3]

Prints records/s of both (medians), their ratio (goal >= 0.6) and the worker's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.environment import scratch_database, scratch_redis  # noqa: E402
from core.queues import QUEUES  # noqa: E402
from simulators.hubspot.server import HubSpotSimulator  # noqa: E402
from simulators.server import serve  # noqa: E402

RAW_TABLE = """CREATE TABLE IF NOT EXISTS bench_raw_contacts (
    external_id text PRIMARY KEY, first_name text, last_name text, email text, phone text,
    company text, job_title text, metadata jsonb, updated_at timestamptz DEFAULT now())"""
RAW_UPSERT = """INSERT INTO bench_raw_contacts
    (external_id, first_name, last_name, email, phone, company, job_title, metadata)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (external_id) DO UPDATE SET first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, email = EXCLUDED.email, phone = EXCLUDED.phone,
    company = EXCLUDED.company, job_title = EXCLUDED.job_title, metadata = EXCLUDED.metadata,
    updated_at = now()"""
PROPERTIES = "email,firstname,lastname,phone,company,jobtitle,lifecyclestage,hs_lead_status"


def contact_pages(http: httpx.Client, token: str) -> Iterator[list[tuple[Any, ...]]]:
    """Every page of the simulator's contacts as plain row tuples, following ``after``."""
    headers, after = {"Authorization": f"Bearer {token}"}, None
    while True:
        params = {"limit": 100, "properties": PROPERTIES, **({"after": after} if after else {})}
        body = http.get("/crm/v3/objects/contacts", params=params, headers=headers).json()
        yield [
            (
                r["id"],
                p.get("firstname"),
                p.get("lastname"),
                p.get("email"),
                p.get("phone"),
                p.get("company"),
                p.get("jobtitle"),
                Jsonb({"hubspot": r["id"]}),
            )
            for r in body["results"]
            for p in [r["properties"]]
        ]
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def raw_limit(base_url: str, owner_url: str, token: str) -> float:
    """Records/s of the plainest loop: GET a page, upsert it, commit, follow `after`."""
    dsn = owner_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as db, httpx.Client(base_url=base_url) as http:
        db.execute(RAW_TABLE)
        db.execute("TRUNCATE bench_raw_contacts")
        db.commit()
        started, count = time.perf_counter(), 0
        for rows in contact_pages(http, token):
            with db.cursor() as cursor:
                cursor.executemany(RAW_UPSERT, rows)
            db.commit()
            count += len(rows)
        return count / (time.perf_counter() - started)


CONTACTS_INSERT = """INSERT INTO contacts (id, organization_id, first_name, last_name, email,
    phone, company, job_title, metadata, contact_type, is_deleted, created_at, updated_at)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, 'contact', false, now(), now())"""


def raw_into_contacts(base_url: str, app_url: str, org_id: uuid.UUID, token: str) -> float:
    """The same plain loop, inserting into our real ``contacts`` table as the application
    role (row-level security, foreign keys, indexes): the floor our schema itself sets,
    without the external-id map, audit rows and run accounting a sync adds."""
    dsn = app_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as db, httpx.Client(base_url=base_url) as http:
        started, count = time.perf_counter(), 0
        for rows in contact_pages(http, token):
            db.execute("SELECT set_config('app.current_organization', %s, true)", (str(org_id),))
            with db.cursor() as cursor:
                cursor.executemany(
                    CONTACTS_INSERT, [(uuid.uuid4(), org_id, *row[1:]) for row in rows]
                )
            db.commit()
            count += len(rows)
        return count / (time.perf_counter() - started)


class RssSampler(threading.Thread):
    """The largest resident set of any process of the worker's tree, sampled every 0.2 s."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak_kib, self.running = pid, 0, True

    def run(self) -> None:
        while self.running:
            pids = [self.pid, *self._children(self.pid)]
            for pid in pids:
                self.peak_kib = max(self.peak_kib, self._rss(pid))
            time.sleep(0.2)

    @staticmethod
    def _children(pid: int) -> list[int]:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    @staticmethod
    def _rss(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        except OSError:
            return 0
        return 0


def ours(base_url: str, env: dict[str, str], contacts: int, data_dir: Path) -> tuple[float, int]:
    """Records/s of a full contacts sync through a real worker, and its peak RSS (KiB)."""
    from connectors.integrations import add_integration
    from models import IntegrationLog
    from models.accounts import create_organization
    from models.session import get_database
    from runs import sync
    from workers.app import app  # noqa: F401 - publishes the outbox

    db = get_database()
    org = create_organization(db, f"Bench {uuid.uuid4().hex[:6]}")
    integration = add_integration(
        db,
        org.id,
        "hubspot",
        {"private_app_token": "pat-bench"},
        {"base_url": base_url, "rate_limit": "1000000"},
    )
    worker_env = {**{k: v for k, v in os.environ.items()}, **env, "PLUGS_DATA_DIR": str(data_dir)}
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / "bench-worker.log").open("ab")
    worker = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "worker",
            "--concurrency",
            "2",
            "--loglevel",
            "WARNING",
            "--queues",
            ",".join(QUEUES),
            "--without-mingle",
            "--without-gossip",
        ],
        env=worker_env,
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    sampler = RssSampler(worker.pid)
    sampler.start()
    try:
        time.sleep(3)  # the worker is up and idle
        started = time.perf_counter()
        run_id = sync.start_run(db, org.id, integration.id, streams=["contacts"], full_refresh=True)
        while True:
            with db.tenant(org.id) as session:
                run = session.get(IntegrationLog, run_id)
                if run.status != "running":
                    break
            if worker.poll() is not None:
                raise SystemExit(f"the worker died; see {data_dir / 'bench-worker.log'}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        assert run.status == "success" and run.records_processed == contacts, (
            run.status,
            run.message,
        )
        return contacts / elapsed, sampler.peak_kib
    finally:
        sampler.running = False
        worker.terminate()
        worker.wait(60)
        log.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sim = HubSpotSimulator(private_app_token="pat-bench", enforce_limits=False)
    sim.add_contacts(args.contacts)
    with (
        serve(sim) as server,
        scratch_database() as database,
        scratch_redis() as broker,
        tempfile.TemporaryDirectory(prefix="plugs-bench-") as scratch,
    ):
        from connectors.credentials import new_key_entry

        env = {
            "PLUGS_DATABASE_URL": database["app_url"],
            "PLUGS_BROKER_URL": broker,
            "PLUGS_RESULT_BACKEND": broker,
            "PLUGS_REDIS_URL": broker,
            "PLUGS_SECRET_KEYS": new_key_entry(),
            "PLUGS_ALLOW_PRIVATE_URLS": "true",
        }
        os.environ.update(env)
        data_dir = Path(scratch)
        raws, tables, ourses, peaks = [], [], [], []
        for attempt in range(args.repeat):
            raws.append(raw_limit(server.base_url, database["owner_url"], "pat-bench"))
            tables.append(
                raw_into_contacts(server.base_url, database["app_url"], _scratch_org(), "pat-bench")
            )
            rate, peak = ours(server.base_url, env, args.contacts, data_dir)
            ourses.append(rate)
            peaks.append(peak)
            print(
                f"run {attempt + 1}: raw {raws[-1]:,.0f} rec/s, raw into contacts "
                f"{tables[-1]:,.0f} rec/s, ours {rate:,.0f} rec/s, "
                f"peak worker RSS {peak / 1024:.0f} MB",
                flush=True,
            )
    raw, table, our = statistics.median(raws), statistics.median(tables), statistics.median(ourses)
    print(f"median raw limit           : {raw:,.0f} records/s")
    print(f"median raw into contacts   : {table:,.0f} records/s")
    print(f"median ours                : {our:,.0f} records/s")
    print(f"ratio to the raw limit     : {our / raw:.2f} (goal >= 0.60)")
    print(f"ratio to raw into contacts : {our / table:.2f}")
    print(f"peak worker RSS            : {max(peaks) / 1024:.0f} MB (goal < 300 MB)")


def _scratch_org() -> uuid.UUID:
    from models.accounts import create_organization
    from models.session import get_database

    return create_organization(get_database(), f"Raw {uuid.uuid4().hex[:6]}").id


if __name__ == "__main__":
    main()
