"""Zoom passes the connector conformance suite against its simulator: registrants ->
event_attendees is the pull stream, events -> meetings the write-back."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.upsert import content_hash
from connectors.zoom.mapping import map_meeting
from models import EventAttendee
from models.events import Event
from models.organizations import User
from models.session import Database
from models.sync_state import ExternalId
from simulators.zoom.server import ZoomSimulator
from tests.connectors.conformance import ConnectorConformance
from tests.connectors.harness import Vendor, zoom


def zoom_event(title: str = "Intro workshop", **fields: Any) -> Event:
    """An event that asks for a Zoom meeting."""
    start = datetime(2030, 1, 2, 10, 0, tzinfo=UTC)
    values: dict[str, Any] = {
        "title": title,
        "event_type": "workshop",
        "status": "published",
        "start_date": start,
        "end_date": start + timedelta(minutes=90),
        "timezone": "UTC",
        "settings": {"meeting_platform": "zoom"},
    }
    return Event(**{**values, **fields})


class ZoomHarness:
    stream = "registrants"
    export_stream = "meetings_export"
    entity = EventAttendee

    def __init__(self) -> None:
        self.meetings: dict[uuid.UUID, int] = {}
        self.emails: dict[str, str] = {}

    @contextmanager
    def connect(self, db: Database, *, bad_credentials: bool = False) -> Iterator[Vendor]:
        secret = "wrong-secret" if bad_credentials else None
        with zoom(db, sim=ZoomSimulator(), client_secret=secret) as vendor:
            meeting = vendor.sim.add_meeting("Registered workshop")
            exported = map_meeting(meeting.json()).values  # as an earlier export left it
            with db.tenant(vendor.org_id) as session:
                event = zoom_event(**exported)
                session.add(event)
                session.flush()
                session.add(
                    ExternalId(
                        integration_id=vendor.integration_id,
                        entity_type="events",
                        external_id=str(meeting.id),
                        local_id=event.id,
                        content_hash=content_hash(exported),
                    )
                )
            self.meetings[vendor.org_id] = meeting.id
            yield vendor

    def seed(self, vendor: Vendor, count: int) -> list[str]:
        meeting_id = self.meetings[vendor.org_id]
        start = time.time() - count - 5
        keys = []
        with vendor.db.tenant(vendor.org_id) as session:
            for i in range(count):
                email = f"guest{i}@example.test"
                session.add(User(email=email, first_name=f"Guest{i}"))
                registrant = vendor.sim.register(meeting_id, email, f"Guest{i}", at=start + i)
                keys.append(f"{meeting_id}:{registrant['id']}")
                self.emails[keys[-1]] = email
        return keys

    def change(self, vendor: Vendor, record_id: str) -> None:
        meeting_id, _, registrant_id = record_id.partition(":")
        vendor.sim.reregister(int(meeting_id), registrant_id, first_name="Changed")

    def break_record(self, vendor: Vendor, record_id: str, *, broken: bool = True) -> None:
        meeting_id, _, registrant_id = record_id.partition(":")
        email = "stranger@example.test" if broken else self.emails[record_id]
        vendor.sim.registrant(int(meeting_id), registrant_id)["email"] = email

    def throttle(self, vendor: Vendor, count: int, retry_after: float) -> None:
        vendor.sim.throttle_next(count, retry_after=retry_after)

    def fail(self, vendor: Vendor, count: int, status: int) -> None:
        vendor.sim.fail_next(count, status=status)

    def make_local_rows(self, vendor: Vendor, good: int, bad: int) -> None:
        with vendor.db.tenant(vendor.org_id) as session:
            session.add_all([zoom_event(f"Workshop {i}") for i in range(good)])
            session.add_all([zoom_event("   ") for _ in range(bad)])  # Zoom: topic required

    def requests(self, vendor: Vendor) -> list[Any]:
        return vendor.sim.requests


class TestZoomConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> ZoomHarness:
        return ZoomHarness()
