"""Notification fan-out: 10,000 recipients x 3 channels (in_app, email to an aiosmtpd
server, sms to the Twilio-style simulator over loopback HTTP) through real workers.

    .venv/bin/python bench/fanout.py [--recipients 10000] [--concurrency 4]

The two providers run in processes of their own, as remote providers would (not sharing
one interpreter lock with each other and with this process's polling).  Prints how long
``notify()`` took, the time until every delivery is final (goal < 20 s), the CPU seconds of
the workers and of the providers, and the fan-out's insert rate against a plain COPY of the
same rows into an unconstrained table in the same database (same run; goal >= 0.1x).
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import psycopg
from aiosmtpd.controller import Controller

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.environment import scratch_database, scratch_redis  # noqa: E402
from core.queues import QUEUES  # noqa: E402
from simulators.notifications import TwilioSimulator  # noqa: E402
from simulators.server import serve  # noqa: E402

CHANNELS = ("in_app", "email", "sms")


class CountingMailbox:
    def __init__(self) -> None:
        self.received = 0

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:  # noqa: N802
        self.received += 1
        return "250 OK"


def serve_smtp(pipe: Connection) -> None:
    """An aiosmtpd server counting what it receives, until asked for the count."""
    mailbox, port = CountingMailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    pipe.send(port)
    pipe.recv()
    controller.stop()
    pipe.send((mailbox.received, _cpu(resource.RUSAGE_SELF)))


def serve_sms(pipe: Connection) -> None:
    """The Twilio simulator over loopback HTTP, until asked for its count."""
    sms = TwilioSimulator()
    with serve(sms) as server:
        pipe.send((server.base_url, sms.account_sid, sms.auth_token))
        pipe.recv()
    pipe.send((len(sms.messages), _cpu(resource.RUSAGE_SELF)))


def start_provider(target: Callable[[Connection], None]) -> tuple[Any, Connection, Any]:
    """``target`` in a process of its own; (process, pipe, what it sent when ready)."""
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=target, args=(theirs,))
    process.start()
    return process, ours, ours.recv()


def stop_provider(process: Any, pipe: Connection) -> tuple[int, float]:
    """(messages received, CPU seconds) of a provider, which then exits."""
    pipe.send("stop")
    received, cpu = pipe.recv()
    process.join(30)
    return int(received), float(cpu)


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_users(app_url: str, org_id: uuid.UUID, count: int) -> None:
    """``count`` members with phones, inserted as the application role."""
    from models import User
    from models.bulk import bulk_insert
    from models.session import get_database

    rows = [
        {
            "id": uuid.uuid4(),
            "organization_id": org_id,
            "email": f"u{i}@bench.test",
            "first_name": f"User{i}",
            "phone": f"+1555{i:07d}",
        }
        for i in range(count)
    ]
    with get_database().tenant(org_id) as session:
        bulk_insert(session, User.__table__, rows)


def copy_rate(owner_url: str, org_id: uuid.UUID) -> float:
    """Rows/s of COPY of the run's notifications into a plain table (no RLS, no indexes)."""
    dsn = owner_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn) as db:
        db.execute("CREATE TABLE bench_copy (LIKE notifications)")
        rows = db.execute(
            "SELECT * FROM notifications WHERE organization_id = %s", (org_id,)
        ).fetchall()
        buffer = io.StringIO()
        for row in rows:
            buffer.write(
                "\t".join(
                    "\\N" if v is None else (json.dumps(v) if isinstance(v, dict) else str(v))
                    for v in row
                )
                + "\n"
            )
        data = buffer.getvalue()
        started = time.perf_counter()
        with db.cursor().copy("COPY bench_copy FROM STDIN") as copy:
            copy.write(data)
        db.commit()
        elapsed = time.perf_counter() - started
        db.execute("DROP TABLE bench_copy")
        db.commit()
    return len(rows) / elapsed


def start_workers(env: dict[str, str], data_dir: Path, concurrency: int) -> subprocess.Popen[bytes]:
    log = (data_dir / "bench-worker.log").open("ab")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "workers.cli",
            "worker",
            "--concurrency",
            str(concurrency),
            "--loglevel",
            "WARNING",
            "--queues",
            ",".join(QUEUES),
            "--without-mingle",
            "--without-gossip",
        ],
        env={**os.environ, **env, "PLUGS_DATA_DIR": str(data_dir)},
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def wait_final(
    org_id: uuid.UUID,
    expected: int,
    worker: subprocess.Popen[bytes],
    log: Path,
    started: float,
    limit: float = 300,
) -> tuple[dict[str, int], dict[str, float]]:
    """The deliveries' counts by status once all are final, and when each channel was."""
    from sqlalchemy import func, select

    from models.notification_delivery import NotificationDelivery as D
    from models.session import get_database

    deadline = time.monotonic() + limit
    finished: dict[str, float] = {}
    while time.monotonic() < deadline:
        with get_database().tenant(org_id) as session:
            rows = session.execute(
                select(D.channel, D.status, func.count()).group_by(D.channel, D.status)
            ).all()
        counts: dict[str, int] = {}
        for _channel, status, count in rows:
            counts[status] = counts.get(status, 0) + count
        for channel in {channel for channel, _, _ in rows} - set(finished):
            if not any(c == channel and s in ("queued", "sending") for c, s, _ in rows):
                finished[channel] = time.perf_counter() - started
        if sum(v for k, v in counts.items() if k not in ("queued", "sending")) >= expected:
            return counts, finished
        if worker.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the worker died; the end of its log:\n{tail}")
        time.sleep(0.1)
    raise SystemExit(f"not final after {limit} s: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    load_before = os.getloadavg()
    smtp, smtp_pipe, port = start_provider(serve_smtp)
    sms, sms_pipe, (sms_url, sms_sid, sms_token) = start_provider(serve_sms)
    with (
        scratch_database() as database,
        scratch_redis() as broker,
        tempfile.TemporaryDirectory(prefix="plugs-bench-") as scratch,
    ):
        from connectors.credentials import new_key_entry

        env = {
            "PLUGS_SECRET_KEYS": new_key_entry(),
            "PLUGS_DATABASE_URL": database["app_url"],
            "PLUGS_SYSTEM_DATABASE_URL": database["system_url"],
            "PLUGS_BROKER_URL": broker,
            "PLUGS_RESULT_BACKEND": broker,
            "PLUGS_REDIS_URL": broker,
            "PLUGS_ALLOW_PRIVATE_URLS": "true",
            "PLUGS_SMTP_SERVERS": json.dumps(
                [{"host": "127.0.0.1", "port": port, "starttls": False}]
            ),
            "PLUGS_SMS_PROVIDERS": json.dumps(
                [
                    {
                        "base_url": sms_url,
                        "account_sid": sms_sid,
                        "auth_token": sms_token,
                        "from_number": "+15550000000",
                    }
                ]
            ),
        }
        os.environ.update(env)
        from tests.services import reload_settings

        reload_settings()
        import workers.app  # noqa: F401 - publishes the outbox
        from models.accounts import create_organization
        from models.session import get_database
        from notifications import Audience, Content, send

        org = create_organization(get_database(), "Bench fan-out")
        make_users(database["app_url"], org.id, args.recipients)
        own_cpu_before = _cpu(resource.RUSAGE_SELF)
        worker = start_workers(env, Path(scratch), args.concurrency)
        try:
            time.sleep(4)  # the workers are up and idle
            started = time.perf_counter()
            result = send(
                get_database(),
                org.id,
                Audience(role="members"),
                Content("Bench", "A fan-out benchmark message.", channels=CHANNELS),
            )
            fanout_seconds = time.perf_counter() - started
            counts, finished = wait_final(
                org.id, result.created, worker, Path(scratch) / "bench-worker.log", started
            )
            total_seconds = time.perf_counter() - started
        finally:
            worker.terminate()
            worker.wait(60)
        worker_cpu = _cpu(resource.RUSAGE_CHILDREN)
        own_cpu = _cpu(resource.RUSAGE_SELF) - own_cpu_before
        copy = copy_rate(database["owner_url"], org.id)
        get_database().dispose()
    emails, smtp_cpu = stop_provider(smtp, smtp_pipe)
    texts, sms_cpu = stop_provider(sms, sms_pipe)
    ours = result.created / fanout_seconds
    print(
        f"recipients x channels      : {args.recipients:,} x {len(CHANNELS)} = {result.created:,} notifications"
    )
    print(
        f"notify() returned in       : {fanout_seconds:.2f} s ({ours:,.0f} notification rows/s, with delivery rows and outbox)"
    )
    print(f"every delivery final after : {total_seconds:.2f} s (goal < 20 s) {counts}")
    print(
        "each channel final after   : "
        + ", ".join(f"{name} {seconds:.1f} s" for name, seconds in sorted(finished.items()))
    )
    print(f"received                   : {emails:,} emails, {texts:,} SMS")
    print(
        f"CPU seconds                : workers {worker_cpu:.1f}, SMTP server {smtp_cpu:.1f}, "
        f"SMS simulator {sms_cpu:.1f}, this process (notify, polling) {own_cpu:.1f}"
    )
    print(f"plain COPY of the same rows: {copy:,.0f} rows/s")
    print(f"ratio ours / COPY          : {ours / copy:.2f} (goal >= 0.1)")
    print(f"load average (1, 5, 15 min): {load_before} before, {os.getloadavg()} after")


if __name__ == "__main__":
    main()
