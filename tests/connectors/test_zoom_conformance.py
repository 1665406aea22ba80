"""Zoom passes the connector conformance suite against its simulator: registrants ->
event_attendees is the pull stream, events -> meetings the write-back."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.testing import ConformanceConfig, ConnectorConformance, Vendor
from connectors.upsert import content_hash
from connectors.zoom.mapping import map_meeting
from models import EventAttendee
from models.events import Event
from models.organizations import User
from models.sync_state import ExternalId
from simulators.zoom.server import ZoomSimulator
from tests.connectors.harness import zoom_credentials, zoom_settings


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


def link_a_meeting(vendor: Vendor) -> None:
    """A Zoom meeting linked to an event of ours, as an earlier export left it: the
    registrants stream reads the registrants of linked meetings."""
    meeting = vendor.sim.add_meeting("Registered workshop")
    exported = map_meeting(meeting.json()).values
    with vendor.db.tenant(vendor.org_id) as session:
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
    vendor.scratch["meeting_id"] = meeting.id


def register_guests(vendor: Vendor, count: int) -> list[str]:
    """``count`` users of ours registered for the meeting; ``meeting:registrant`` keys."""
    meeting_id = vendor.scratch["meeting_id"]
    emails = vendor.scratch.setdefault("emails", {})
    start = time.time() - count - 5
    keys = []
    with vendor.db.tenant(vendor.org_id) as session:
        for i in range(count):
            email = f"guest{i}@example.test"
            session.add(User(email=email, first_name=f"Guest{i}"))
            registrant = vendor.sim.register(meeting_id, email, f"Guest{i}", at=start + i)
            keys.append(f"{meeting_id}:{registrant['id']}")
            emails[keys[-1]] = email
    return keys


def change_registrant(vendor: Vendor, key: str) -> None:
    meeting_id, _, registrant_id = key.partition(":")
    vendor.sim.reregister(int(meeting_id), registrant_id, first_name="Changed")


def break_registrant(vendor: Vendor, key: str, broken: bool) -> None:
    """A registrant whose email is no user of ours (or theirs again)."""
    meeting_id, _, registrant_id = key.partition(":")
    email = "stranger@example.test" if broken else vendor.scratch["emails"][key]
    vendor.sim.registrant(int(meeting_id), registrant_id)["email"] = email


def make_events(vendor: Vendor, good: int, bad: int) -> None:
    with vendor.db.tenant(vendor.org_id) as session:
        session.add_all([zoom_event(f"Workshop {i}") for i in range(good)])
        session.add_all([zoom_event("   ") for _ in range(bad)])  # Zoom: topic required


class TestZoomConformance(ConnectorConformance):
    config = ConformanceConfig(
        provider="zoom",
        stream="registrants",
        entity=EventAttendee,
        simulator=ZoomSimulator,
        credentials=zoom_credentials,
        bad_credentials=lambda sim: zoom_credentials(sim, "wrong-secret"),
        settings=zoom_settings,
        prepare=link_a_meeting,
        seed=register_guests,
        change=change_registrant,
        break_record=break_registrant,
        export_stream="meetings_export",
        make_local_rows=make_events,
    )
