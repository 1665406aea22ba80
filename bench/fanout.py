"""Notification fan-out: 10,000 recipients x 3 channels (in_app, email to an in-process
SMTP server, sms to the Twilio-style simulator over loopback HTTP) through real workers.

    .venv/bin/python bench/fanout.py [--recipients 10000] [--concurrency 4]

Prints how long ``notify()`` took, the time until every delivery is final (goal < 30 s),
and the fan-out's insert rate against a plain COPY of the same rows into an unconstrained
table in the same database (same run).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

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
    org_id: uuid.UUID, expected: int, worker: subprocess.Popen[bytes], limit: float = 300
) -> dict[str, int]:
    from sqlalchemy import func, select

    from models.notification_delivery import NotificationDelivery as D
    from models.session import get_database

    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        with get_database().tenant(org_id) as session:
            counts = dict(session.execute(select(D.status, func.count()).group_by(D.status)).all())
        if sum(v for k, v in counts.items() if k not in ("queued", "sending")) >= expected:
            return counts
        if worker.poll() is not None:
            raise SystemExit("the worker died; see bench-worker.log")
        time.sleep(0.1)
    raise SystemExit(f"not final after {limit} s: {counts}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--concurrency", type=int, default=4)
    args = parser.parse_args()
    mailbox, port = CountingMailbox(), free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    sms = TwilioSimulator()
    with (
        serve(sms) as sms_server,
        scratch_database() as database,
        scratch_redis() as broker,
        tempfile.TemporaryDirectory(prefix="plugs-bench-") as scratch,
    ):
        env = {
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
                        "base_url": sms_server.base_url,
                        "account_sid": sms.account_sid,
                        "auth_token": sms.auth_token,
                        "from_number": "+15550000000",
                    }
                ]
            ),
        }
        os.environ.update(env)
        import workers.app  # noqa: F401 - publishes the outbox
        from models.accounts import create_organization
        from models.session import get_database
        from notifications import Audience, Content, send

        org = create_organization(get_database(), "Bench fan-out")
        make_users(database["app_url"], org.id, args.recipients)
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
            counts = wait_final(org.id, result.created, worker)
            total_seconds = time.perf_counter() - started
        finally:
            worker.terminate()
            worker.wait(60)
        copy = copy_rate(database["owner_url"], org.id)
        get_database().dispose()
    controller.stop()
    ours = result.created / fanout_seconds
    print(
        f"recipients x channels      : {args.recipients:,} x {len(CHANNELS)} = {result.created:,} notifications"
    )
    print(
        f"notify() returned in       : {fanout_seconds:.2f} s ({ours:,.0f} notification rows/s, with delivery rows and outbox)"
    )
    print(f"every delivery final after : {total_seconds:.2f} s (goal < 30 s) {counts}")
    print(f"received                   : {mailbox.received:,} emails, {len(sms.messages):,} SMS")
    print(f"plain COPY of the same rows: {copy:,.0f} rows/s")
    print(f"ratio ours / COPY          : {ours / copy:.2f}")


if __name__ == "__main__":
    main()
