"""Events become Zoom meetings and attendees registrants, through a real worker; the S2S
token is fetched once, cached encrypted, and fetched again after Zoom rejects it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from connectors.credentials import decrypt_credentials
from models import Integration
from models.events import Event, EventAttendee
from models.organizations import User
from models.session import Database
from models.sync_state import ExternalId
from tests.connectors.harness import Vendor, zoom
from tests.connectors.test_zoom_conformance import zoom_event


@pytest.fixture(autouse=True)
def _worker(sync_worker: Any) -> Iterator[None]:
    yield


def calls(vendor: Vendor, method: str, fragment: str) -> int:
    return len(vendor.sim.requests.where(method=method, path_contains=fragment))


def test_an_event_gets_one_meeting_which_follows_its_changes_and_cancellation(
    app_db: Database,
) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add(zoom_event("Intro workshop"))
            session.add(zoom_event("Not on Zoom", settings={}))
        run = vendor.sync(streams=["meetings_export"])
        assert run.status == "success"
        with app_db.tenant(vendor.org_id) as session:
            event = session.scalars(select(Event).where(Event.title == "Intro workshop")).one()
            link = session.scalars(
                select(ExternalId).where(ExternalId.entity_type == "events")
            ).one()
        [meeting] = vendor.sim.store.meetings.values()
        assert event.venue_details["join_url"] == f"https://zoom.us/j/{meeting.id}?pwd=sim"
        assert (event.venue_details["meeting_id"], link.external_id) == (str(meeting.id),) * 2
        assert (meeting.topic, meeting.duration) == ("Intro workshop", 90)

        vendor.sync(streams=["meetings_export"])
        assert calls(vendor, "POST", "/meetings") == 1 and len(vendor.sim.store.meetings) == 1

        with app_db.tenant(vendor.org_id) as session:
            session.get(Event, event.id).title = "Advanced workshop"
        assert vendor.sync(streams=["meetings_export"]).status == "success"
        assert meeting.topic == "Advanced workshop" and calls(vendor, "PATCH", "/meetings/") == 1

        with app_db.tenant(vendor.org_id) as session:
            session.get(Event, event.id).status = "cancelled"
        assert vendor.sync(streams=["meetings_export"]).status == "success"
        assert vendor.sim.store.meetings == {} and calls(vendor, "DELETE", "/meetings/") == 1

        again = vendor.sync(streams=["meetings_export"])  # the cancellation is settled
        assert (again.status, again.records_processed) == ("success", 0)
        assert calls(vendor, "DELETE", "/meetings/") == 1


def test_a_soft_deleted_event_has_its_meeting_deleted_once(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add_all([zoom_event("Kept"), zoom_event("Dropped")])
        vendor.sync(streams=["meetings_export"])
        assert len(vendor.sim.store.meetings) == 2
        with app_db.tenant(vendor.org_id) as session:
            session.scalars(select(Event).where(Event.title == "Dropped")).one().soft_delete()
            never_synced = zoom_event("Deleted before any export")
            session.add(never_synced)
            session.flush()
            never_synced.soft_delete()

        run = vendor.sync(streams=["meetings_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        assert [m.topic for m in vendor.sim.store.meetings.values()] == ["Kept"]
        assert (
            calls(vendor, "DELETE", "/meetings/") == 1 and calls(vendor, "POST", "/meetings") == 2
        )

        again = vendor.sync(streams=["meetings_export"])
        assert (again.status, again.records_processed) == ("success", 0)
        assert calls(vendor, "DELETE", "/meetings/") == 1
        assert vendor.count(Event) == 1 and vendor.count(Event, include_deleted=True) == 3


def test_drafts_and_events_not_on_zoom_are_neither_pushed_nor_counted(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add_all(
                [
                    zoom_event("Published"),
                    zoom_event("Draft", status="draft"),
                    zoom_event("Cancelled before it had a meeting", status="cancelled"),
                    zoom_event("In person", settings={}),
                    zoom_event("On Teams", settings={"meeting_platform": "teams"}),
                ]
            )
        first = vendor.sync(streams=["meetings_export"])
        second = vendor.sync(streams=["meetings_export"])
        assert (first.records_processed, second.records_processed) == (1, 0)
        assert [m.topic for m in vendor.sim.store.meetings.values()] == ["Published"]

        with app_db.tenant(vendor.org_id) as session:  # unpublished: its meeting waits
            session.scalars(select(Event).where(Event.title == "Published")).one().status = "draft"
        unpublished = vendor.sync(streams=["meetings_export"])
        assert (unpublished.records_processed, len(vendor.sim.store.meetings)) == (1, 1)
        assert vendor.sync(streams=["meetings_export"]).records_processed == 0


def test_attendees_are_registered_and_unmatched_registrants_fail_with_a_reason(
    app_db: Database,
) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            event, ada = zoom_event(), User(email="ada@example.com", first_name="Ada")
            session.add_all([event, ada])
            session.flush()
            session.add(EventAttendee(event_id=event.id, user_id=ada.id))
            draft, bob = zoom_event("Draft", status="draft"), User(email="bob@example.com")
            session.add_all([draft, bob])
            session.flush()
            session.add(EventAttendee(event_id=draft.id, user_id=bob.id))  # no meeting yet
        vendor.sync(streams=["meetings_export"])
        run = vendor.sync(streams=["registrants_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        assert vendor.sync(streams=["registrants_export"]).records_processed == 0
        [meeting] = vendor.sim.store.meetings.values()
        assert [r["email"] for r in meeting.registrants] == ["ada@example.com"]

        vendor.sim.register(meeting.id, "stranger@example.com", "Stranger")
        pulled = vendor.sync(streams=["registrants"], full_refresh=True)
        assert (pulled.status, pulled.records_processed, pulled.records_failed) == ("partial", 1, 1)
        [failure] = pulled.error_details["failures"]
        assert "stranger@example.com matches no user" in failure["reason"]
        with app_db.tenant(vendor.org_id) as session:
            attendee = session.scalars(
                select(EventAttendee).where(EventAttendee.user_id == ada.id)
            ).one()
            assert attendee.status == "confirmed" and attendee.metadata_["zoom"]["join_url"]


def test_the_token_is_cached_encrypted_and_fetched_again_after_a_401(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add(zoom_event())
        vendor.sync(streams=["meetings_export"])
        vendor.sync(streams=["meetings"])
        assert calls(vendor, "POST", "/oauth/token") == 1
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            first = decrypt_credentials(integration)["access_token"].get_secret_value()
            assert first not in str(integration.credentials)

        vendor.sim.expire_tokens()  # Zoom now answers 401 (code 124) to the cached token
        run = vendor.sync(streams=["meetings"])
        assert (run.status, run.records_processed) == ("success", 1)
        assert calls(vendor, "POST", "/oauth/token") == 2
        assert len(vendor.sim.requests.where(status=401)) == 1
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            assert decrypt_credentials(integration)["access_token"].get_secret_value() != first
