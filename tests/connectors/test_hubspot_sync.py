"""HubSpot end to end beyond the conformance suite (connectors.testing):
engagements, search-based incremental syncs, parking, write-back echo suppression, OAuth,
and a shared rate limit -- run by real workers into PostgreSQL against the simulator."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors.integrations import add_integration
from models import (
    Contact,
    ContactInteraction,
    ExternalId,
    Integration,
    OutboxMessage,
    SyncStreamRun,
)
from models.base import utcnow
from models.session import Database
from runs import sync
from simulators.hubspot.server import HubSpotSimulator
from tests import services
from tests.connectors.harness import hubspot, wait_for_run

pytestmark = pytest.mark.usefixtures("sync_worker")


def test_a_full_sync_brings_contacts_and_their_engagements(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(250)
        contact_id = vendor.sim.add_contacts(1)[0]
        vendor.sim.add_engagement("notes", contact_id, hs_note_body="Met at the summit")
        vendor.sim.add_engagement("meetings", contact_id, hs_meeting_title="Intro call")
        run = vendor.sync(full_refresh=True)
        assert (run.status, run.records_processed, run.records_failed) == ("success", 253, 0)
        assert vendor.count(Contact) == 251
        assert vendor.count(ContactInteraction) == 2
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            assert integration.status == "connected" and integration.last_sync is not None
            types = set(session.scalars(select(ContactInteraction.interaction_type)))
        assert types == {"follow_up", "meeting"}


def test_an_incremental_sync_resumes_from_the_saved_cursor(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        ids = vendor.sim.add_contacts(120)
        assert vendor.sync(streams=["contacts"]).status == "success"
        vendor.sim.update_contact(ids[5], firstname="Renamed")
        vendor.sim.add_contacts(2, modified_from=utcnow() + timedelta(seconds=1))
        searches_before = len(vendor.sim.requests.where(path_contains="/search"))
        run = vendor.sync(streams=["contacts"])
        assert run.status == "success" and run.records_processed < 10
        assert len(vendor.sim.requests.where(path_contains="/search")) > searches_before
        assert vendor.count(Contact) == 122
        with app_db.tenant(vendor.org_id) as session:
            names = set(session.scalars(select(Contact.first_name)))
        assert "Renamed" in names


def test_a_long_retry_after_is_parked_in_the_database(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(5)
        vendor.sim.fail_next(status=429, retry_after=7200)
        run_id = sync.start_run(app_db, vendor.org_id, vendor.integration_id, streams=["contacts"])
        parked = None
        for _ in range(150):
            with app_db.tenant(vendor.org_id) as session:
                parked = session.scalars(
                    select(SyncStreamRun).where(SyncStreamRun.run_id == run_id)
                ).one()
                if parked.resume_at is not None:
                    break
            import time

            time.sleep(0.2)
        assert parked is not None and parked.resume_at is not None
        assert parked.resume_at - utcnow() > timedelta(minutes=110)
        with app_db.tenant(vendor.org_id) as session:
            waiting = session.scalars(
                select(OutboxMessage).where(OutboxMessage.published_at.is_(None))
            ).all()
        assert [m.available_at > utcnow() + timedelta(minutes=110) for m in waiting] == [True]


def test_write_back_pushes_local_changes_once_and_counts_partial_failures(app_db: Database) -> None:
    with hubspot(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add_all(
                [
                    Contact(first_name="Ann", email="ann@example.test", company="Acme"),
                    Contact(first_name="Bob", email="bob@example.test"),
                    Contact(first_name="Bad", email="bad@@example.test"),
                    Contact(first_name="Nomail"),
                ]
            )
        run = vendor.sync(streams=["contacts_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("partial", 2, 2)
        reasons = " ".join(f["reason"] for f in run.error_details["failures"])
        assert "no email" in reasons and "bad@@example.test" in reasons
        assert vendor.sim.get_contact("ann@example.test")["company"] == "Acme"

        pull = vendor.sync(streams=["contacts"])  # our own push comes back: no change
        assert pull.status == "success"
        again = vendor.sync(streams=["contacts_export"])
        assert again.records_processed == 0  # nothing changed here since

        with app_db.tenant(vendor.org_id) as session:
            ann = session.scalars(select(Contact).where(Contact.email == "ann@example.test")).one()
            ann.job_title = "CTO"
            mapped = session.scalars(select(ExternalId).where(ExternalId.local_id == ann.id)).one()
            assert mapped.external_id == vendor.sim.get_contact("ann@example.test")["hs_object_id"]
        third = vendor.sync(streams=["contacts_export"])
        assert third.records_processed == 1
        assert vendor.sim.get_contact("ann@example.test")["jobtitle"] == "CTO"


def test_an_expiring_oauth_token_is_refreshed_once_and_stored_encrypted(app_db: Database) -> None:
    from connectors.credentials import decrypt_credentials

    sim = HubSpotSimulator(private_app_token=None)
    expired = (utcnow() - timedelta(minutes=1)).isoformat()
    credentials = {
        "access_token": "long-expired",
        "refresh_token": "sim-refresh-token",
        "expires_at": expired,
        "client_id": "sim-client-id",
        "client_secret": "sim-client-secret",
    }
    with hubspot(app_db, sim=sim, credentials=credentials) as vendor:
        sim.add_contacts(120)
        sim.archive_contact(sim.add_contacts(1)[0])
        run = vendor.sync(streams=["contacts", "archived_contacts"], full_refresh=True)
        assert (run.status, run.records_processed) == ("success", 121)
        assert sim.token_refreshes == 1  # two streams at once, one refresh
        assert vendor.count(Contact) == 120 and vendor.count(Contact, include_deleted=True) == 121
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            fresh = decrypt_credentials(integration)
        assert fresh["access_token"].get_secret_value().startswith("sim-at-")
        assert fresh.expires_at > utcnow() + timedelta(minutes=20)
        assert "sim-at-" not in str(integration.credentials)


def test_ten_workers_syncing_one_account_stay_under_its_rate_limit(
    app_db: Database, platform_env: dict[str, str], tmp_path: Path
) -> None:
    """The shared worker's 2 processes plus 8 more: 10 processes, 6 integrations of one
    HubSpot account (free tier: 100 requests / 10 s), all syncing at once."""
    sim = HubSpotSimulator(tier="free")
    more = services.start_worker(platform_env, tmp_path, concurrency=8)
    try:
        with hubspot(app_db, sim=sim, account_id="portal-62515") as first:
            sim.add_contacts(2500)
            integrations = [first.integration_id] + [
                add_integration(
                    app_db,
                    first.org_id,
                    "hubspot",
                    {"private_app_token": "pat-na1-simulator"},
                    {"base_url": first.base_url, "account_id": "portal-62515"},
                ).id
                for _ in range(5)
            ]
            runs = [
                sync.start_run(app_db, first.org_id, i, full_refresh=True) for i in integrations
            ]
            finished = [wait_for_run(app_db, first.org_id, run, timeout=300) for run in runs]
    finally:
        more.stop()
    assert {run.status for run in finished} == {"success"}
    assert len(sim.requests) > 150  # enough traffic that an unshared limit would exceed it
    assert sim.max_requests_in_window() <= 100
    assert not sim.requests.where(status=429)
