"""A real worker process (no eager mode) runs tasks through Redis against PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select

from models import IntegrationLog
from models.base import utcnow
from models.session import Database
from tests.conftest import ROOT
from tests.factories import make_world


def _env(tmp_path: Path, database_url: str, redis_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    env.update(
        PLUGS_DATABASE_URL=database_url,
        PLUGS_BROKER_URL=redis_url,
        PLUGS_RESULT_BACKEND=redis_url,
        PLUGS_DATA_DIR=str(tmp_path / "var"),
    )
    return env


def _start_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.cli",
                "worker",
                "--concurrency",
                "2",
                "--loglevel",
                "INFO",
                "--queues",
                "default,maintenance,syncs",
                "--without-mingle",
                "--without-gossip",
            ],
            env=env,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def worker(tmp_path: Path, pg_database: dict[str, str], redis_url: str) -> Iterator[Celery]:
    """A worker process on the app role and this run's Redis db, and a client for it."""
    log = tmp_path / "worker.log"
    process = _start_worker(_env(tmp_path, pg_database["app_url"], redis_url), log)
    client = Celery("plugs-test-client", broker=redis_url, backend=redis_url)
    client.conf.task_routes = {
        "maintenance.*": {"queue": "maintenance", "routing_key": "maintenance"}
    }
    try:
        yield client
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        client.close()
        print(log.read_text())  # shown by pytest when the test failed


def test_a_worker_runs_the_ping_task_against_postgresql(worker: Celery, pg_db: Database) -> None:
    make_world(pg_db)
    result = worker.send_task("maintenance.ping").get(timeout=90)
    assert result["database"] == "postgresql"
    assert result["organizations"] >= 1


def test_a_worker_purges_only_finished_logs_past_retention(worker: Celery, pg_db: Database) -> None:
    world = make_world(pg_db)
    old = utcnow() - timedelta(days=120)
    with pg_db.tenant(world.org_id) as session:
        finished_long_ago = IntegrationLog(
            integration_id=world.ids["integrations"],
            operation="sync",
            status="success",
            created_at=old,
        )
        running_long_ago = IntegrationLog(
            integration_id=world.ids["integrations"],
            operation="sync",
            status="running",
            created_at=old,
        )
        session.add_all([finished_long_ago, running_long_ago])
    first = worker.send_task("maintenance.purge_integration_logs", kwargs={"retention_days": 90})
    assert first.get(timeout=90)["deleted"] >= 1
    second = worker.send_task("maintenance.purge_integration_logs", kwargs={"retention_days": 90})
    assert second.get(timeout=90) == {"deleted": 0}
    with pg_db.tenant(world.org_id) as session:
        left = set(session.scalars(select(IntegrationLog.id)))
    assert finished_long_ago.id not in left
    assert {running_long_ago.id, world.ids["integration_logs"]} <= left


def test_a_worker_refuses_to_start_as_a_role_that_bypasses_rls(
    tmp_path: Path, pg_database: dict[str, str], redis_url: str
) -> None:
    log = tmp_path / "worker.log"
    process = _start_worker(_env(tmp_path, pg_database["owner_url"], redis_url), log)
    try:
        returncode = process.wait(timeout=60)
    finally:
        process.kill()
        process.wait()
    assert returncode != 0
    assert "bypasses row-level security" in log.read_text()
