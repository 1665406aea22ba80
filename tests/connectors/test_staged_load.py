"""Full refreshes are fetched and loaded apart (runs/staged_load.py): staged pages are
written by load tasks on both worker processes, each record exactly once, and a record on
two pages ends with the later page's values even when the earlier page is held up."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta

import orjson
import pytest
from sqlalchemy import func, select

from models import Contact, ExternalId, Integration, StagedPage, SyncPageOutcome, SyncStreamRun
from models.base import utcnow
from models.session import Database
from runs import sync
from tests.connectors.harness import Vendor, hubspot, wait_for_run

pytestmark = pytest.mark.usefixtures("sync_worker")


def test_a_full_sync_is_staged_and_loaded_once_by_the_worker(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(3_000)
        run = vendor.sync(streams=["contacts"], full_refresh=True)
        assert (run.status, run.records_processed, run.records_failed) == ("success", 3_000, 0)
        with app_db.tenant(vendor.org_id) as session:
            stream = session.scalars(
                select(SyncStreamRun).where(SyncStreamRun.run_id == run.id)
            ).one()
            assert (stream.status, stream.staging) == ("done", "extracted")
            assert stream.pages_staged == stream.pages_done == 30
            pages = session.scalar(select(func.count()).where(SyncPageOutcome.run_id == run.id))
            left = session.scalar(select(func.count()).select_from(StagedPage))
            contacts = session.scalar(select(func.count()).select_from(Contact))
            emails = session.scalar(select(func.count(func.distinct(Contact.email))))
            mapped = session.scalar(select(func.count()).select_from(ExternalId))
        assert (pages, left) == (30, 0)
        assert contacts == emails == mapped == 3_000
        # a second full refresh of the same data writes nothing
        again = vendor.sync(streams=["contacts"], full_refresh=True)
        assert (again.status, again.records_processed) == ("success", 3_000)
        assert vendor.audit_rows() == 3_000


def _contact(external_id: str, first_name: str) -> dict[str, object]:
    return {
        "id": external_id,
        "properties": {"firstname": first_name, "email": f"c{external_id}@example.test"},
        "archived": False,
    }


def _staged_stream(
    db: Database, vendor: Vendor, pages: list[list[dict[str, object]]], *, lapsed: bool = False
) -> tuple[uuid.UUID, uuid.UUID]:
    """A contacts full refresh whose pages are all fetched and staged, none loaded yet and
    no load task sent (the run and the stream run ids); ``lapsed``: its lease lapsed."""
    with db.tenant(vendor.org_id) as session:
        integration = session.get(Integration, vendor.integration_id)
        run_id = sync.open_run(session, integration, streams=["contacts"], full_refresh=True)
        stream_run = session.scalars(
            select(SyncStreamRun).where(SyncStreamRun.run_id == run_id)
        ).one()
        # fetched already: its page task finds nothing to do
        stream_run.staging, stream_run.pages_staged = "extracted", len(pages)
        stream_run.status = "running"
        if lapsed:
            stream_run.updated_at = utcnow() - timedelta(minutes=10)
        for sequence, records in enumerate(pages, start=1):
            session.add(
                StagedPage(
                    stream_run_id=stream_run.id,
                    sequence=sequence,
                    page_key=f"page-{sequence}",
                    records=orjson.dumps(records),
                    record_keys=[r["id"] for r in records],
                )
            )
        return run_id, stream_run.id


def _names(db: Database, vendor: Vendor) -> dict[str, str]:
    with db.tenant(vendor.org_id) as session:
        return dict(session.execute(select(Contact.email, Contact.first_name)).all())


def _staged(db: Database, vendor: Vendor) -> int:
    with db.tenant(vendor.org_id) as session:
        return session.scalar(select(func.count()).select_from(StagedPage)) or 0


def test_a_record_on_two_pages_keeps_the_later_pages_values(app_db: Database) -> None:
    """Page 1 and page 2 both hold contact 7; while another loader holds page 1, a loader
    writes nothing of page 2; once page 1 is free the later values win."""
    with hubspot(app_db) as vendor:
        pages = [[_contact("7", "Old"), _contact("8", "Eight")], [_contact("7", "New")]]
        run_id, stream_id = _staged_stream(app_db, vendor, pages)
        held = threading.Event()
        release = threading.Event()

        def hold_page_one() -> None:  # another loader, slow on page 1
            with app_db.tenant(vendor.org_id) as session:
                session.execute(
                    select(StagedPage.id)
                    .where(StagedPage.stream_run_id == stream_id, StagedPage.sequence == 1)
                    .with_for_update()
                )
                held.set()
                release.wait(30)

        holder = threading.Thread(target=hold_page_one)
        holder.start()
        assert held.wait(10)
        loader = threading.Thread(target=sync.load_staged, args=(app_db, vendor.org_id, stream_id))
        loader.start()
        time.sleep(1.0)
        assert vendor.count(Contact) == 0  # page 2 waits for page 1
        release.set()  # the holder ends without loading it (as a killed loader would)
        holder.join()
        loader.join(30)
        run = wait_for_run(app_db, vendor.org_id, run_id, timeout=30)
        assert (run.status, run.records_processed, run.records_failed) == ("success", 3, 0)
        assert _names(app_db, vendor) == {"c7@example.test": "New", "c8@example.test": "Eight"}
        assert _staged(app_db, vendor) == 0


def test_pages_a_killed_loader_left_staged_are_loaded_after_the_lease(app_db: Database) -> None:
    """No load task is left for the staged pages (its loader was killed, its transaction
    rolled back): once the stream's lease lapsed the sweeper sends loads again."""
    with hubspot(app_db) as vendor:
        pages = [
            [_contact(str(n), f"Name {n}") for n in range(p * 10, p * 10 + 10)] for p in range(3)
        ]
        run_id, _ = _staged_stream(app_db, vendor, pages, lapsed=True)
        assert sync.restart_stalled(app_db) >= 1
        run = wait_for_run(app_db, vendor.org_id, run_id, timeout=60)
        assert (run.status, run.records_processed, run.records_failed) == ("success", 30, 0)
        assert vendor.count(Contact) == 30
        assert _staged(app_db, vendor) == 0
