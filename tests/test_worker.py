"""A real worker process (no eager mode) runs tasks through Redis against PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from sqlalchemy import select

from models import IntegrationLog
from models.base import utcnow
from models.session import Database
from tests import services
from tests.factories import make_world


@pytest.fixture
def worker(tmp_path: Path, platform_env: dict[str, str]) -> Iterator[Celery]:
    """A worker process of its own on the app role and this run's Redis db, and a client."""
    process = services.start_worker(platform_env, tmp_path)
    client = Celery(
        "plugs-test-client",
        broker=platform_env["PLUGS_BROKER_URL"],
        backend=platform_env["PLUGS_RESULT_BACKEND"],
    )
    client.conf.task_routes = {
        "maintenance.*": {"queue": "maintenance", "routing_key": "maintenance"}
    }
    try:
        yield client
    finally:
        process.stop()
        client.close()
        print(process.output())  # shown by pytest when the test failed


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
    tmp_path: Path, platform_env: dict[str, str], pg_database: dict[str, str]
) -> None:
    env = {**platform_env, "PLUGS_DATABASE_URL": pg_database["owner_url"]}
    process = services.start_worker(env, tmp_path)
    try:
        returncode = process.process.wait(timeout=60)
    finally:
        process.stop()
    assert returncode != 0
    assert "bypasses row-level security" in process.output()
