"""A worker killed with SIGKILL in the middle of a 20,000-contact sync loses nothing and
duplicates nothing once a worker runs again."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy import func, select

from models import Contact, ExternalId, SyncStreamRun
from models.session import Database
from runs import sync
from simulators.hubspot.server import HubSpotSimulator
from tests import services
from tests.connectors.harness import hubspot, wait_for_run

CONTACTS = 20_000
#: Short limits so a lost page is noticed in seconds: a stream with no progress for
#: STALLED_AFTER seconds gets its page enqueued again by the sweeper.
FAST_RECOVERY = {
    "PLUGS_STALLED_AFTER": "8",
    "PLUGS_PAGE_LEASE": "8",
    "PLUGS_TASK_TIME_LIMIT": "60",
    "PLUGS_TASK_SOFT_TIME_LIMIT": "50",
    "PLUGS_VISIBILITY_TIMEOUT": "600",
}


def _pages_done(db: Database, org_id, run_id) -> int:  # type: ignore[no-untyped-def]
    with db.tenant(org_id) as session:
        return (
            session.scalar(
                select(func.sum(SyncStreamRun.pages_done)).where(SyncStreamRun.run_id == run_id)
            )
            or 0
        )


def test_sigkill_mid_sync_then_restart_syncs_every_contact_exactly_once(
    platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    sim = HubSpotSimulator(enforce_limits=False)
    sim.add_contacts(CONTACTS)
    with hubspot(app_db, sim=sim) as vendor:
        first = services.start_worker(platform_env, tmp_path, concurrency=2, extra=FAST_RECOVERY)
        run_id = sync.start_run(
            app_db, vendor.org_id, vendor.integration_id, streams=["contacts"], full_refresh=True
        )
        deadline = time.monotonic() + 180
        while _pages_done(app_db, vendor.org_id, run_id) < 40 and time.monotonic() < deadline:
            time.sleep(0.1)
        first.kill()  # the main process and its children, mid-page
        killed_at = _pages_done(app_db, vendor.org_id, run_id)
        assert 40 <= killed_at < CONTACTS // 100

        second = services.start_worker(platform_env, tmp_path, concurrency=2, extra=FAST_RECOVERY)
        try:
            run = _finish_with_sweeper(app_db, vendor.org_id, run_id, platform_env)
        finally:
            second.stop()
        assert (run.status, run.records_processed, run.records_failed) == ("success", CONTACTS, 0)
        with app_db.tenant(vendor.org_id) as session:
            contacts = session.scalar(select(func.count()).select_from(Contact))
            distinct_emails = session.scalar(select(func.count(func.distinct(Contact.email))))
            mapped = session.scalar(select(func.count()).select_from(ExternalId))
            # a full refresh is staged: the kill hit its loaders mid-transaction too
            staged = session.scalar(
                select(SyncStreamRun.staging).where(SyncStreamRun.run_id == run_id)
            )
        assert contacts == distinct_emails == mapped == CONTACTS
        assert staged == "extracted"


def test_a_worker_killed_mid_page_is_replaced_within_a_minute_with_default_settings(
    platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    """No fast-recovery settings: the running page's lease lapses (PLUGS_PAGE_LEASE, 30 s)
    and beat's sweeper enqueues it again; a new worker makes progress within 60 s."""
    sim = HubSpotSimulator(enforce_limits=False)
    sim.add_contacts(5_000)
    with hubspot(app_db, sim=sim) as vendor:
        first = services.start_worker(platform_env, tmp_path, concurrency=2)
        run_id = sync.start_run(
            app_db, vendor.org_id, vendor.integration_id, streams=["contacts"], full_refresh=True
        )
        deadline = time.monotonic() + 120
        while _pages_done(app_db, vendor.org_id, run_id) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        first.kill()
        killed_at, killed = _pages_done(app_db, vendor.org_id, run_id), time.monotonic()
        assert 5 <= killed_at < 50

        second = services.start_worker(platform_env, tmp_path, concurrency=2)
        beat = services.start_beat(platform_env, tmp_path / "beat", tick_seconds=5.0)
        try:
            while _pages_done(app_db, vendor.org_id, run_id) == killed_at:
                assert time.monotonic() - killed < 60, "no progress 60 s after the kill"
                time.sleep(0.2)
            recovered = time.monotonic() - killed
            run = wait_for_run(app_db, vendor.org_id, run_id, timeout=120)
        finally:
            beat.stop()
            second.stop()
        print(f"progress again {recovered:.1f} s after the kill")
        assert (run.status, run.records_processed, run.records_failed) == ("success", 5_000, 0)
        with app_db.tenant(vendor.org_id) as session:
            assert session.scalar(select(func.count()).select_from(Contact)) == 5_000


def _finish_with_sweeper(db: Database, org_id, run_id, env):  # type: ignore[no-untyped-def]
    """Run the outbox/stall sweeper every few seconds, as beat would, until the run ends."""
    from celery import Celery

    client = Celery("sweeper", broker=env["PLUGS_BROKER_URL"])
    client.conf.task_routes = {
        "maintenance.*": {"queue": "maintenance", "routing_key": "maintenance"}
    }
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            client.send_task("maintenance.sweep_outbox")
            try:
                return wait_for_run(db, org_id, run_id, timeout=4)
            except AssertionError:
                continue
    finally:
        client.close()
    raise AssertionError("the run did not finish after the restart")
