"""Zoom registrants of every status come in, cancellations here go out as cancellations,
and neither attendance nor a meeting that has started ever becomes a registration --
through a real worker against the Zoom simulator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from models.events import Event, EventAttendee
from models.organizations import User
from models.session import Database
from tests.connectors.harness import Vendor, zoom
from tests.connectors.test_zoom_conformance import zoom_event


@pytest.fixture(autouse=True)
def _worker(sync_worker: Any) -> Iterator[None]:
    yield


def soon(title: str = "Workshop", **fields: Any) -> Event:
    """A Zoom event a month from now (whatever the date the test runs on)."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    return zoom_event(title, start_date=start, end_date=start + timedelta(hours=1), **fields)


def with_attendees(vendor: Vendor, **statuses: str) -> Event:
    """An exported event (it has its meeting) with a user per name, attending with the
    given status (``""``: a user who is no attendee)."""
    with vendor.db.tenant(vendor.org_id) as session:
        event = soon()
        session.add(event)
        for name, status in statuses.items():
            user = User(email=f"{name}@example.com", first_name=name.title())
            session.add(user)
            session.flush()
            if status:
                session.add(EventAttendee(event_id=event.id, user_id=user.id, status=status))
    assert vendor.sync(streams=["meetings_export"]).status == "success"
    return event


def statuses(vendor: Vendor) -> dict[str, str]:
    with vendor.db.tenant(vendor.org_id) as session:
        rows = session.execute(
            select(User.email, EventAttendee.status).join(
                EventAttendee, EventAttendee.user_id == User.id
            )
        )
        return {email.split("@")[0]: status for email, status in rows}


def set_status(vendor: Vendor, name: str, status: str) -> None:
    with vendor.db.tenant(vendor.org_id) as session:
        attendee = session.scalars(
            select(EventAttendee)
            .join(User, EventAttendee.user_id == User.id)
            .where(User.email == f"{name}@example.com")
        ).one()
        attendee.status = status


def calls(vendor: Vendor, method: str, fragment: str) -> list[Any]:
    return list(vendor.sim.requests.where(method=method, path_contains=fragment))


def test_registrants_of_every_status_are_pulled_and_mapped(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        with_attendees(vendor, ada="", bob="", cy="")
        [meeting] = vendor.sim.store.meetings.values()
        for name, status in (("ada", "approved"), ("bob", "pending"), ("cy", "denied")):
            registrant = vendor.sim.register(meeting.id, f"{name}@example.com", name.title())
            vendor.sim.set_registrant_status(meeting.id, registrant["id"], status)
        run = vendor.sync(streams=["registrants"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 3, 0)
        assert statuses(vendor) == {"ada": "confirmed", "bob": "registered", "cy": "cancelled"}

        ada = next(r for r in meeting.registrants if r["email"] == "ada@example.com")
        vendor.sim.set_registrant_status(meeting.id, ada["id"], "denied")  # same create_time
        assert vendor.sync(streams=["registrants"]).status == "success"
        assert statuses(vendor)["ada"] == "cancelled"


def test_a_cancellation_here_cancels_the_registration_at_zoom(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        with_attendees(vendor, ada="confirmed", bob="cancelled")
        run = vendor.sync(streams=["registrants_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        [meeting] = vendor.sim.store.meetings.values()
        assert [r["email"] for r in meeting.registrants] == ["ada@example.com"]

        set_status(vendor, "ada", "cancelled")
        run = vendor.sync(streams=["registrants_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        [put] = calls(vendor, "PUT", "/registrants/status")
        body = json.loads(put.body)
        assert body["action"] == "cancel"
        assert body["registrants"][0]["id"] == meeting.registrants[0]["id"]
        assert meeting.registrants[0]["status"] == "denied"
        assert vendor.sync(streams=["registrants_export"]).records_processed == 0
        assert vendor.sync(streams=["registrants"], full_refresh=True).status == "success"
        assert statuses(vendor) == {"ada": "cancelled", "bob": "cancelled"}
        assert vendor.sync(streams=["registrants_export"]).records_processed == 0
        assert len(calls(vendor, "PUT", "/registrants/status")) == 1


def test_attendance_and_started_meetings_never_become_registrations(app_db: Database) -> None:
    with zoom(app_db) as vendor:
        event = with_attendees(vendor, ada="attended", bob="no_show", cy="registered", dan="")
        run = vendor.sync(streams=["registrants_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 1, 0)
        [meeting] = vendor.sim.store.meetings.values()
        assert [r["email"] for r in meeting.registrants] == ["cy@example.com"]

        # Zoom has started the meeting before we heard of it: Zoom refuses, the row fails.
        vendor.sim.set_meeting_status(meeting.id, "started")
        with vendor.db.tenant(vendor.org_id) as session:
            dan = session.scalars(select(User).where(User.email == "dan@example.com")).one()
            session.add(EventAttendee(event_id=event.id, user_id=dan.id))
        run = vendor.sync(streams=["registrants_export"])
        assert (run.records_processed, run.records_failed) == (0, 1)
        assert "Meeting is over" in run.error_details["failures"][0]["reason"]

        # Once we know it started, nobody is pushed at all, attendance included.
        with vendor.db.tenant(vendor.org_id) as session:
            started = session.get(Event, event.id)
            assert started is not None
            started.status = "ongoing"
        set_status(vendor, "cy", "attended")
        set_status(vendor, "ada", "no_show")
        posts = len(calls(vendor, "POST", "/registrants"))
        run = vendor.sync(streams=["registrants_export"])
        assert (run.status, run.records_processed, run.records_failed) == ("success", 0, 0)
        assert len(calls(vendor, "POST", "/registrants")) == posts
        assert [r["email"] for r in meeting.registrants] == ["cy@example.com"]
