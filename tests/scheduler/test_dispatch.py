"""The scheduler tick as a library call: slots, runs, skips, catch-up, races between ticks."""

from __future__ import annotations

import base64
import json
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import redis
from sqlalchemy import select, update

from connectors.integrations import add_integration
from models import Integration, IntegrationLog, OutboxMessage, ScheduleSlot, SyncSchedule
from models.accounts import create_organization
from models.base import utcnow
from models.session import Database
from scheduler.dispatch import STILL_RUNNING, dispatch_due
from scheduler.schedules import set_schedule
from scheduler.timing import Timing
from simulators.server import RunningServer
from tests import services
from tests.scheduler.conftest import scheduled_integrations, scheduled_runs, slots_of


def _due_now(db: Database, org_id: uuid.UUID, *, ago: timedelta = timedelta(seconds=1)) -> None:
    with db.tenant(org_id) as session:
        session.execute(update(SyncSchedule).values(next_run_at=utcnow() - ago))


@pytest.fixture
def embedded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The embedded default (SQLite, filesystem broker) in a folder of this test's own."""
    from models import migrate

    for key in [k for k in os.environ if k.startswith("PLUGS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("PLUGS_DATA_DIR", str(tmp_path / "var"))
    (tmp_path / "var" / "broker" / "control").mkdir(parents=True)  # the filesystem broker's
    services.reload_settings()
    db = Database(f"sqlite:///{tmp_path / 'plugs.sqlite3'}")
    migrate.upgrade(db.engine)
    yield db
    db.dispose()
    monkeypatch.undo()
    services.reload_settings()


def test_on_sqlite_a_due_schedule_gets_one_slot_one_run_and_moves_past_now(
    embedded: Database,
) -> None:
    org = create_organization(embedded, "Embedded")
    integration = add_integration(embedded, org.id, "hubspot", {"token": "pat-x"})
    set_schedule(embedded, integration.id, Timing.parse(every="every 15m"))
    _due_now(embedded, org.id)
    first, second = dispatch_due(embedded), dispatch_due(embedded)
    assert (first.started, second.started) == (1, 0)
    [slot] = slots_of(embedded, org.id)
    [run] = scheduled_runs(embedded, org.id)
    assert slot.run_id == run.id and run.request_data["slot"] == slot.slot.isoformat()
    with embedded.tenant(org.id) as session:
        schedule = session.scalars(select(SyncSchedule)).one()
        assert schedule.next_run_at > utcnow() and schedule.last_run_id == run.id
        published = session.scalars(select(OutboxMessage.published_at)).all()
        assert published and None not in published  # the first page tasks, after the commit


def test_ticks_racing_on_postgresql_start_each_slot_exactly_once(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, ids = scheduled_integrations(app_db, acme_server, 120, "every 15m")
    _due_now(app_db, org_id)
    barrier = threading.Barrier(4)
    reports = []

    def tick() -> None:
        barrier.wait()
        reports.append(dispatch_due(app_db, batch_size=25))

    threads = [threading.Thread(target=tick) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(1 for r in reports if r.started) >= 2  # SKIP LOCKED shared the work
    runs = scheduled_runs(app_db, org_id)
    assert Counter(r.integration_id for r in runs) == Counter(ids)
    assert len(slots_of(app_db, org_id)) == 120


def test_a_slot_another_tick_already_recorded_gets_no_second_run(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, [integration_id] = scheduled_integrations(app_db, acme_server, 1, "every 15m")
    _due_now(app_db, org_id)
    with app_db.tenant(org_id) as session:
        schedule = session.scalars(select(SyncSchedule)).one()
        session.add(  # as if another beat took the slot and the row had not moved yet
            ScheduleSlot(
                schedule_id=schedule.id,
                integration_id=integration_id,
                slot=schedule.next_run_at,
                status="started",
            )
        )
    report = dispatch_due(app_db)  # (other tests' schedules may be due too: count ours)
    assert report.taken >= 1
    assert scheduled_runs(app_db, org_id) == []


def test_a_slot_whose_previous_run_is_still_running_is_skipped_and_recorded(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, [integration_id] = scheduled_integrations(app_db, acme_server, 1, "every 15m")
    with app_db.tenant(org_id) as session:
        session.add(IntegrationLog(integration_id=integration_id, operation="sync"))
    _due_now(app_db, org_id)
    dispatch_due(app_db)
    [slot] = slots_of(app_db, org_id)
    assert (slot.status, slot.reason, slot.run_id) == ("skipped", STILL_RUNNING, None)


def test_after_downtime_only_the_latest_slot_runs_and_the_missed_ones_are_counted(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, _ = scheduled_integrations(app_db, acme_server, 1, "every 15m")
    _due_now(app_db, org_id, ago=timedelta(hours=2, minutes=1))
    dispatch_due(app_db)
    [slot] = slots_of(app_db, org_id)
    [run] = scheduled_runs(app_db, org_id)
    assert slot.run_id == run.id
    assert slot.missed == 8  # 2h01m late on a 15 min schedule: 9 due times, one run
    assert utcnow() - timedelta(minutes=15) < slot.slot <= utcnow()


def test_paused_integrations_get_no_slot_and_deleted_ones_lose_their_schedule(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, (paused, deleted, live) = scheduled_integrations(app_db, acme_server, 3, "every 15m")
    with app_db.tenant(org_id) as session:
        session.get(Integration, paused).is_active = False
        session.get(Integration, deleted).soft_delete()
    _due_now(app_db, org_id)
    report = dispatch_due(app_db)
    assert report.paused >= 1 and report.removed >= 1
    assert [s.integration_id for s in slots_of(app_db, org_id)] == [live]
    with app_db.tenant(org_id) as session:
        left = dict(
            session.execute(select(SyncSchedule.integration_id, SyncSchedule.next_run_at)).all()
        )
    assert set(left) == {paused, live} and left[paused] > utcnow()


def test_a_schedule_whose_streams_no_longer_exist_is_skipped_and_the_batch_goes_on(
    app_db: Database, acme_server: RunningServer
) -> None:
    org_id, (broken, fine) = scheduled_integrations(app_db, acme_server, 2, "every 15m")
    with app_db.tenant(org_id) as session:
        session.execute(
            update(SyncSchedule)
            .where(SyncSchedule.integration_id == broken)
            .values(streams=["gone"], streams_key="gone")
        )
    _due_now(app_db, org_id)
    dispatch_due(app_db)
    by_integration = {s.integration_id: s for s in slots_of(app_db, org_id)}
    assert by_integration[broken].status == "skipped"
    assert "has no stream gone" in (by_integration[broken].reason or "")
    assert by_integration[fine].status == "started"


def test_a_tick_labels_every_page_task_it_publishes_for_flower(
    app_db: Database, acme_server: RunningServer, platform_env: dict[str, str]
) -> None:
    org_id, ids = scheduled_integrations(app_db, acme_server, 3, "every 15m")
    _due_now(app_db, org_id)

    report = dispatch_due(app_db)  # (other tests' schedules may be due too: count ours)

    broker = redis.Redis.from_url(platform_env["PLUGS_BROKER_URL"])
    messages = [json.loads(m) for m in broker.lrange("syncs", 0, -1)]
    labels = [m["headers"]["kwargsrepr"] for m in messages if m["headers"]["task"] == "sync.page"]
    assert report.started >= 3 and len(scheduled_runs(app_db, org_id)) == 3
    assert len(labels) >= 3
    assert all(label.startswith("acme ") and len(label) > len("acme ") for label in labels)


def test_a_tick_of_many_batches_has_published_every_page_task_when_it_returns(
    app_db: Database, acme_server: RunningServer, platform_env: dict[str, str]
) -> None:
    # A first batch of more page tasks than a publish announces one by one (published by
    # the plain sender), then a second batch: each batch's tasks go out while the tick
    # writes the next one.  The full first batch asks, once, for a second tick.
    org_id, _ = scheduled_integrations(app_db, acme_server, 60, "every 15m")
    _due_now(app_db, org_id)
    asked: list[int] = []

    report = dispatch_due(app_db, batch_size=52, more=lambda: asked.append(1))

    assert report.started >= 60 and report.batches >= 2 and asked == [1]
    assert len(scheduled_runs(app_db, org_id)) == 60
    with app_db.tenant(org_id) as session:
        rows = session.execute(
            select(OutboxMessage.id, OutboxMessage.args, OutboxMessage.published_at).where(
                OutboxMessage.task_name == "sync.page"
            )
        ).all()
    assert len(rows) == 60 and all(published is not None for _, _, published in rows)
    broker = redis.Redis.from_url(platform_env["PLUGS_BROKER_URL"])
    ours = {str(row_id): args for row_id, args, _ in rows}
    messages = [json.loads(m) for m in broker.lrange("syncs", 0, -1)]
    mine = [m for m in messages if m["headers"]["id"] in ours]
    assert len(mine) == 60
    for message in mine:  # what a worker and Flower read
        headers = message["headers"]
        [args, kwargs, _] = json.loads(base64.b64decode(message["body"]))
        assert headers["task"] == "sync.page" and (args, kwargs) == (ours[headers["id"]], {})
        assert headers["kwargsrepr"].startswith("acme ") and headers["argsrepr"] == repr(args)
