"""Keeping Teams meetings in step with our events (the ``meetings`` export stream).

An event that asks for Teams (``venue_details.online_meeting.provider == "teams"``, see
:mod:`connectors.teams.mapping`) becomes a calendar event of the organizer with a Teams
meeting (``POST /users/{organizer}/events`` with ``isOnlineMeeting``; our row id is its
``transactionId``, so a retried create does not make a second one).  A change of title,
time, description, location or type PATCHes it; status ``cancelled`` DELETEs it (Graph
sends the cancellation to attendees).  The write-back engine reads the pushed events back
through the ``events`` stream, which stores the join URL and Graph's event id in
``venue_details``.

Limitation: the write-back engine does not look at soft-deleted rows
(:func:`connectors.export.changed_rows`), so a meeting is deleted when its event is
cancelled, not when the event row is soft-deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from connectors.base import JSONDict, PushResult, Stream
from connectors.errors import AuthError, ConfigError, FatalError
from connectors.teams.mapping import asks_for_teams, cancelled_record, event_body, graph_event_id
from connectors.teams.paging import PREFER, fetch_events_by_ids

if TYPE_CHECKING:
    from connectors.http import VendorClient


class MeetingWriter:
    """The push and read-back of one connector instance (``events_path`` is the
    organizer's calendar); remembers what it cancelled for the read-back."""

    def __init__(self, events_path: str) -> None:
        self.events_path = events_path
        self.cancelled: dict[str, JSONDict] = {}

    def push(self, client: VendorClient, rows: Sequence[Any]) -> list[PushResult]:
        """Create, update or cancel the Teams meeting of each row that asks for one; rows
        that do not are left out (neither pushed nor counted)."""
        results = []
        for row in rows:
            if not asks_for_teams(row.venue_details):
                continue
            try:
                result = self._push_one(client, row)
            except (AuthError, ConfigError):
                raise
            except FatalError as exc:  # Graph refused this event (400): a per-row failure
                result = PushResult(row.id, error=str(exc)[:300])
            if result is not None:
                results.append(result)
        return results

    def _push_one(self, client: VendorClient, row: Any) -> PushResult | None:
        event_id = graph_event_id(row.venue_details)
        if row.status == "cancelled":
            if event_id is None:
                return None  # cancelled before it ever had a meeting
            client.request("DELETE", f"{self.events_path}/{event_id}")  # 404: already gone
            join_url = (row.venue_details.get("online_meeting") or {}).get("join_url")
            self.cancelled[event_id] = cancelled_record(row, event_id, join_url)
            return PushResult(row.id, external_id=event_id)
        body = event_body(row)
        if event_id is None:
            response = client.request(
                "POST",
                self.events_path,
                json={**body, "transactionId": str(row.id)},
                headers=PREFER,
            )
        else:
            response = client.request(
                "PATCH", f"{self.events_path}/{event_id}", json=body, headers=PREFER
            )
            if response.status_code == 404:
                return PushResult(row.id, error=f"the Teams event {event_id} no longer exists")
        record = response.json()
        return PushResult(row.id, external_id=str(record["id"]), record=record)

    def fetch_by_ids(
        self, client: VendorClient, stream: Stream, ids: Sequence[str]
    ) -> list[JSONDict]:
        """Events by id; one this writer cancelled reads back as cancelled."""
        found = {str(e["id"]): e for e in fetch_events_by_ids(client, stream, ids)}
        return [found.get(i) or self.cancelled[i] for i in ids if i in found or i in self.cancelled]
