"""Keeping Teams meetings in step with our events (the ``meetings`` export stream).

Only :data:`MEETING_ROWS` are looked at: events that ask for Teams
(``settings["meeting_platform"] == "teams"``, see :mod:`connectors.meetings`) and either
have a meeting (to update or delete) or should get one (neither a draft nor cancelled);
drafts and cancelled events without a meeting and events that do not ask for Teams are
neither pushed nor counted.  A calendar event read from the organizer's mailbox is written
back only once our event asks for Teams too.

Such an event becomes a calendar event of the organizer with a Teams meeting (``POST
/users/{organizer}/events`` with ``isOnlineMeeting``; our row id is its ``transactionId``,
so a retried create does not make a second one).  A change of title, time, description,
location or type PATCHes it.  The calendar event of an event cancelled or soft-deleted is
DELETEd (Graph sends the cancellation to attendees; a 404 means it is gone already) and the
row settled, so it is not deleted again on the next export.  A draft keeps the meeting it
has until it is published again or cancelled.  The write-back engine reads created and
updated events back through the ``events`` stream, which stores the join URL and Graph's
event id in ``venue_details``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, and_, or_

from connectors.base import PushResult
from connectors.meetings import asking_for
from connectors.teams.mapping import PROVIDER, event_body, graph_event_id
from connectors.teams.paging import PREFER
from core.errors import AuthError, ConfigError, FatalError
from models.events import Event

if TYPE_CHECKING:
    from connectors.http import VendorClient

_ASKS_FOR_TEAMS = asking_for(PROVIDER)
_HAS_MEETING = Event.venue_details["online_meeting"]["event_id"].as_string().is_not(None)
#: The events the meetings export looks at: those asking for Teams that have a meeting (to
#: update or delete) or should get one (neither a draft nor cancelled).
MEETING_ROWS: ColumnElement[bool] = and_(
    _ASKS_FOR_TEAMS, or_(_HAS_MEETING, Event.status.not_in(("draft", "cancelled")))
)


def push_meetings(
    client: VendorClient, rows: Sequence[Any], *, events_path: str
) -> list[PushResult]:
    """Create, update or delete the Teams meeting of each event in the organizer's calendar
    (``events_path``); one :class:`PushResult` per event."""
    results = []
    for row in rows:
        try:
            results.append(_push_one(client, row, events_path))
        except (AuthError, ConfigError):
            raise
        except FatalError as exc:  # Graph refused this event (400): a per-row failure
            results.append(PushResult(row.id, error=str(exc)[:300]))
    return results


def _push_one(client: VendorClient, row: Any, events_path: str) -> PushResult:
    event_id = graph_event_id(row.venue_details)
    if row.is_deleted or row.status == "cancelled":
        if event_id:
            client.request("DELETE", f"{events_path}/{event_id}")  # 404: already gone
        return PushResult(row.id, external_id=event_id, settled=True)
    if row.status == "draft":  # unpublished: its meeting waits as it is
        return PushResult(row.id, external_id=event_id, settled=True)
    body = event_body(row)
    if event_id is None:
        body["transactionId"] = str(row.id)
        response = client.request("POST", events_path, json=body, headers=PREFER)
    else:
        path = f"{events_path}/{event_id}"
        response = client.request("PATCH", path, json=body, headers=PREFER)
        if response.status_code == 404:
            return PushResult(row.id, error=f"the Teams event {event_id} no longer exists")
    record = response.json()
    return PushResult(row.id, external_id=str(record["id"]), record=record)
