"""The state of the Microsoft Graph simulator: users, calendar events, online meetings with
their attendance reports, and change-notification subscriptions (docs/vendors/teams.md).

Plain bookkeeping used under the simulator's lock; ``now`` comes from its clock.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

#: Teams/Outlook subscriptions live at most this long (docs/vendors/teams.md; configurable).
MAX_SUBSCRIPTION_MINUTES = 4230


def graph_time(moment: float) -> str:
    """Epoch seconds as Graph writes ``lastModifiedDateTime``: UTC with 7 fraction digits."""
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def parse_graph_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class Meeting:
    """An online meeting, with one attendance report per session that ended."""

    id: str
    organizer_id: str
    record: dict[str, Any]
    reports: list[dict[str, Any]] = field(default_factory=list)
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass
class Subscription:
    id: str
    record: dict[str, Any]
    expires_at: float
    client_state: str


class GraphStore:
    """Everything the simulated tenant holds."""

    def __init__(self, tenant_id: str, join_host: str = "teams.microsoft.com") -> None:
        self.tenant_id, self.join_host = tenant_id, join_host
        self.users: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}  # id -> record (with "_owner")
        self.meetings: dict[str, Meeting] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.deleted_events: list[str] = []
        self.max_subscription_minutes = MAX_SUBSCRIPTION_MINUTES
        self._seq = itertools.count(1)
        self._last_change = 0

    # --- users ---------------------------------------------------------------------------

    def add_user(self, upn: str, display_name: str = "") -> str:
        user_id = str(uuid.uuid4())
        self.users[user_id] = {
            "id": user_id,
            "userPrincipalName": upn,
            "mail": upn,
            "displayName": display_name or upn.split("@")[0],
        }
        return user_id

    def user(self, key: str) -> dict[str, Any] | None:
        """A user by object id or user principal name (Graph takes both in paths)."""
        if key in self.users:
            return self.users[key]
        return next(
            (u for u in self.users.values() if u["userPrincipalName"].lower() == key.lower()),
            None,
        )

    # --- calendar events -----------------------------------------------------------------

    def create_event(self, owner_id: str, body: dict[str, Any], now: float) -> dict[str, Any]:
        """A calendar event; ``isOnlineMeeting`` gives it a Teams meeting and join URL."""
        transaction = body.get("transactionId")
        if transaction:
            for existing in self.events.values():
                if existing["_owner"] == owner_id and existing.get("transactionId") == transaction:
                    return existing
        event_id = f"AAMkAG{next(self._seq):08d}="
        event: dict[str, Any] = {
            "id": event_id,
            "_owner": owner_id,
            "createdDateTime": graph_time(now),
            "isCancelled": False,
            "onlineMeeting": None,
            "onlineMeetingProvider": "unknown",
            "isOnlineMeeting": False,
            "categories": [],
            "organizer": {"emailAddress": {"address": self.users[owner_id]["mail"]}},
        }
        self.events[event_id] = event
        self.update_event(event_id, body, now)
        return event

    def update_event(self, event_id: str, changes: dict[str, Any], now: float) -> dict[str, Any]:
        event = self.events[event_id]
        for key in ("subject", "body", "start", "end", "location", "categories", "transactionId"):
            if key in changes:
                event[key] = changes[key]
        if changes.get("isOnlineMeeting") and not event["isOnlineMeeting"]:
            meeting = self.create_meeting(
                event["_owner"],
                {
                    "subject": event.get("subject"),
                    "startDateTime": (event.get("start") or {}).get("dateTime"),
                    "endDateTime": (event.get("end") or {}).get("dateTime"),
                },
                now,
            )
            event["isOnlineMeeting"] = True
            event["onlineMeetingProvider"] = "teamsForBusiness"
            event["onlineMeeting"] = {"joinUrl": meeting.record["joinWebUrl"]}
        self._last_change = max(int(now * 1e6), self._last_change + 1)  # all differ
        event["lastModifiedDateTime"] = graph_time(self._last_change / 1e6)
        event["@odata.etag"] = f'W/"{next(self._seq)}"'
        return event

    def delete_event(self, event_id: str) -> None:
        del self.events[event_id]
        self.deleted_events.append(event_id)

    def events_of(self, owner_id: str) -> list[dict[str, Any]]:
        return [e for e in self.events.values() if e["_owner"] == owner_id]

    # --- online meetings -----------------------------------------------------------------

    def create_meeting(self, organizer_id: str, body: dict[str, Any], now: float) -> Meeting:
        meeting_id = f"MSo{uuid.uuid4().hex}"
        thread = f"19%3ameeting_{uuid.uuid4().hex[:16]}%40thread.v2"
        record = {
            "id": meeting_id,
            "creationDateTime": graph_time(now),
            "subject": body.get("subject"),
            "startDateTime": body.get("startDateTime"),
            "endDateTime": body.get("endDateTime"),
            "joinWebUrl": f"https://{self.join_host}/l/meetup-join/{thread}/0",
            "participants": body.get("participants")
            or {"organizer": {"identity": {"user": {"id": organizer_id}}}},
        }
        meeting = Meeting(meeting_id, organizer_id, record)
        self.meetings[meeting_id] = meeting
        return meeting

    def meeting_by_join_url(self, organizer_id: str, url: str) -> Meeting | None:
        return next(
            (
                m
                for m in self.meetings.values()
                if m.organizer_id == organizer_id and m.record["joinWebUrl"] == url
            ),
            None,
        )

    def end_session(
        self, meeting_id: str, attendance: list[dict[str, Any]], start: str, end: str
    ) -> str:
        """Close a session of the meeting: its attendance report and records appear."""
        meeting = self.meetings[meeting_id]
        report_id = str(uuid.uuid4())
        meeting.reports.append(
            {
                "id": report_id,
                "totalParticipantCount": len(attendance),
                "meetingStartDateTime": start,
                "meetingEndDateTime": end,
            }
        )
        meeting.records[report_id] = attendance
        return report_id

    # --- subscriptions -------------------------------------------------------------------

    def create_subscription(self, body: dict[str, Any], now: float) -> Subscription:
        sub_id = str(uuid.uuid4())
        expires = self._capped_expiry(body.get("expirationDateTime"), now)
        record = {
            "id": sub_id,
            "resource": body["resource"],
            "changeType": body["changeType"],
            "notificationUrl": body["notificationUrl"],
            "lifecycleNotificationUrl": body.get("lifecycleNotificationUrl"),
            "clientState": body.get("clientState"),
        }
        subscription = Subscription(sub_id, record, expires, str(body.get("clientState") or ""))
        self.subscriptions[sub_id] = subscription
        return subscription

    def renew_subscription(self, sub_id: str, expiry: str | None, now: float) -> Subscription:
        subscription = self.subscriptions[sub_id]
        subscription.expires_at = self._capped_expiry(expiry, now)
        return subscription

    def live_subscription(self, sub_id: str, now: float) -> Subscription | None:
        """The subscription if it exists and has not expired (Graph deletes expired ones)."""
        subscription = self.subscriptions.get(sub_id)
        if subscription is not None and subscription.expires_at <= now:
            del self.subscriptions[sub_id]
            return None
        return subscription

    def _capped_expiry(self, requested: str | None, now: float) -> float:
        """The expiry asked for, checked against this clock (Graph's): one past the
        longest lifetime is refused, as Graph refuses it (400)."""
        cap = now + self.max_subscription_minutes * 60
        if not requested:
            return cap
        expiry = parse_graph_time(requested).timestamp()
        if expiry > cap:
            raise ValueError(
                "Subscription expiration can only be "
                f"{self.max_subscription_minutes} minutes in the future."
            )
        if expiry <= now:
            raise ValueError("Subscription expiration must be in the future.")
        return expiry

    def subscription_json(self, subscription: Subscription) -> dict[str, Any]:
        return {
            **subscription.record,
            "expirationDateTime": datetime.fromtimestamp(subscription.expires_at, UTC)
            .isoformat()
            .replace("+00:00", "Z"),
        }


def expiry_in(now: float, minutes: float) -> str:
    """An ``expirationDateTime`` ``minutes`` after ``now``."""
    moment = datetime.fromtimestamp(now, UTC) + timedelta(minutes=minutes)
    return moment.isoformat().replace("+00:00", "Z")
