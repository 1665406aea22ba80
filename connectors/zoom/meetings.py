"""Write-back to Zoom: events become meetings, attendees become registrants.

Events that ask for Zoom (``settings["meeting_platform"] == "zoom"``, see
:mod:`connectors.meetings`) and are published get a meeting (``POST
/users/{host}/meetings``); a later change of title, description or times updates it
(``PATCH /meetings/{id}``); the meeting of an event cancelled or soft-deleted is deleted
(``DELETE``; a 404 means it is gone already) and the event settled, so it is not deleted
again on the next export.  A draft keeps the meeting it has until it is published again or
cancelled.  Only :data:`MEETING_ROWS` are looked at: drafts, cancelled events without a
meeting and events that do not ask for Zoom are not pushed nor counted.  The meeting id
comes back through the pull stream ``meetings`` into the external-id map and
``venue_details``, so a second export creates nothing.

Attendees (:data:`REGISTRANT_ROWS`) of an event with a Zoom meeting that has neither
started nor ended (its status, and its start time still ahead) are written back:
``registered`` and ``confirmed`` ones are registered (``POST /meetings/{id}/registrants``)
with their user's email and name; a ``cancelled`` one that Zoom knows (its registrant id)
is cancelled there (``PUT /meetings/{id}/registrants/status``, action ``cancel``).
Attendance (``attended``, ``no_show``) is what the meeting itself said and never becomes a
registration call, and nothing is registered once a meeting has started: Zoom refuses it
(code 3038, "Meeting is over").  Zoom refusing one row (400) fails that row only, with
Zoom's reason.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select

from connectors.base import PushResult
from connectors.http import VendorClient
from connectors.meetings import asking_for
from connectors.zoom.mapping import (
    PLATFORM,
    asks_for_zoom,
    meeting_body,
    registrant_body,
    registrant_key,
)
from core.errors import SkippableRecordError
from models.events import Event, EventAttendee
from models.organizations import User
from models.session import get_database

#: Events asking for Zoom (:func:`connectors.zoom.mapping.asks_for_zoom` in SQL).
_ASKS_FOR_ZOOM = asking_for(PLATFORM)
_HAS_MEETING = Event.venue_details["meeting_id"].as_string().is_not(None)
#: The events the meetings export looks at: those asking for Zoom that have a meeting (to
#: update or delete) or should get one (neither a draft nor cancelled).
MEETING_ROWS: ColumnElement[bool] = and_(
    _ASKS_FOR_ZOOM, or_(_HAS_MEETING, Event.status.not_in(("draft", "cancelled")))
)
#: Attendee statuses that ask for a registration at Zoom.
REGISTERING = ("registered", "confirmed")
#: An event whose meeting has neither started nor ended: the only ones Zoom registers for.
_NOT_STARTED = and_(
    Event.status.not_in(("ongoing", "completed")),
    or_(Event.start_date.is_(None), Event.start_date > func.now()),
)
_KNOWN_TO_ZOOM = EventAttendee.metadata_["zoom"]["registrant_id"].as_string().is_not(None)
#: The attendees the registrants export looks at, of a Zoom event that has its meeting (an
#: attendee of a draft is registered once the meeting exists) not started yet: those to
#: register, and cancelled ones Zoom knows, to cancel there.
REGISTRANT_ROWS: ColumnElement[bool] = and_(
    or_(
        EventAttendee.status.in_(REGISTERING),
        and_(EventAttendee.status == "cancelled", _KNOWN_TO_ZOOM),
    ),
    EventAttendee.event_id.in_(select(Event.id).where(_ASKS_FOR_ZOOM, _HAS_MEETING, _NOT_STARTED)),
)


def push_meetings(
    client: VendorClient, rows: Sequence[Any], *, host: str = "me"
) -> list[PushResult]:
    """Create, update or delete each event's meeting; one :class:`PushResult` per event."""
    return [_push_meeting(client, row, host) for row in rows]


def _push_meeting(client: VendorClient, event: Any, host: str) -> PushResult:
    meeting_id = (event.venue_details or {}).get("meeting_id")
    try:
        if event.is_deleted or event.status == "cancelled":
            if meeting_id:
                client.request("DELETE", f"/meetings/{meeting_id}")  # 404: already gone
            external_id = str(meeting_id) if meeting_id else None
            return PushResult(event.id, external_id=external_id, settled=True)
        if event.status == "draft":  # unpublished: its meeting waits as it is
            return PushResult(event.id, settled=True)
        body = meeting_body(event)
        if meeting_id:
            response = client.request("PATCH", f"/meetings/{meeting_id}", json=body)
            if response.status_code != 404:
                return PushResult(event.id, external_id=str(meeting_id))
        created = client.request("POST", f"/users/{host}/meetings", json=body)
        if created.status_code == 404:
            return PushResult(event.id, error=f"Zoom has no host user {host!r} (setting host_user)")
        record = created.json()
        return PushResult(event.id, external_id=str(record["id"]), record=record)
    except SkippableRecordError as exc:
        return PushResult(event.id, error=str(exc))


def push_registrants(client: VendorClient, rows: Sequence[Any]) -> list[PushResult]:
    """Register each attendee of a Zoom event with its user's email and name, or cancel
    its registration (see the module docstring)."""
    if not rows:
        return []
    users, events = _lookups(rows)
    results = []
    for attendee in rows:
        event, user = events.get(attendee.event_id), users.get(attendee.user_id)
        meeting_id = ((event.venue_details or {}) if event else {}).get("meeting_id")
        if event is None or not asks_for_zoom(event) or started(event):
            results.append(PushResult(attendee.id))
        elif attendee.status == "cancelled":
            results.append(_cancel(client, attendee, meeting_id, user))
        elif attendee.status not in REGISTERING:  # attendance: never a registration
            results.append(PushResult(attendee.id))
        elif not meeting_id:
            results.append(PushResult(attendee.id, error="the event has no Zoom meeting yet"))
        elif user is None:
            results.append(PushResult(attendee.id, error="the attendee's user is gone"))
        else:
            results.append(_register(client, attendee.id, meeting_id, user))
    return results


def _register(client: VendorClient, local_id: uuid.UUID, meeting_id: str, user: Any) -> PushResult:
    try:
        response = client.request(
            "POST", f"/meetings/{meeting_id}/registrants", json=registrant_body(user)
        )
    except SkippableRecordError as exc:
        return PushResult(local_id, error=str(exc))
    if response.status_code == 404:
        reason = str(response.json().get("message") or "meeting or registration not found")
        return PushResult(local_id, error=f"Zoom: {reason}")
    key = registrant_key(meeting_id, response.json()["registrant_id"])
    return PushResult(local_id, external_id=key)


def started(event: Any) -> bool:
    """Whether the event's meeting has started or ended (Zoom registers nobody then)."""
    if event.status in ("ongoing", "completed"):
        return True
    return event.start_date is not None and event.start_date <= datetime.now(UTC)


def _cancel(client: VendorClient, attendee: Any, meeting_id: Any, user: Any) -> PushResult:
    """Cancel at Zoom the registration of an attendee cancelled here."""
    zoom = (attendee.metadata_ or {}).get("zoom") or {}
    registrant_id = zoom.get("registrant_id")
    if not registrant_id or not meeting_id or str(zoom.get("meeting_id")) != str(meeting_id):
        return PushResult(attendee.id)  # not registered at this meeting: nothing to cancel
    registrant: dict[str, Any] = {"id": str(registrant_id)}
    if user is not None:
        registrant["email"] = user.email
    body = {"action": "cancel", "registrants": [registrant]}
    try:  # done, or (404) the meeting is gone and its registration with it
        client.request("PUT", f"/meetings/{meeting_id}/registrants/status", json=body)
    except SkippableRecordError as exc:
        return PushResult(attendee.id, error=str(exc))
    return PushResult(
        attendee.id, external_id=registrant_key(meeting_id, registrant_id), settled=True
    )


def _lookups(rows: Sequence[Any]) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """The users and events of these attendees (detached), in two queries."""
    with get_database().tenant(rows[0].organization_id) as session:
        users = session.scalars(select(User).where(User.id.in_({r.user_id for r in rows})))
        events = session.scalars(select(Event).where(Event.id.in_({r.event_id for r in rows})))
        found_users, found_events = {u.id: u for u in users}, {e.id: e for e in events}
        session.expunge_all()
    return found_users, found_events
