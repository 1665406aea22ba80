"""The ``attendance`` stream: Teams attendance records into ``event_attendees``.

For each of this integration's Teams events that started within the last
``attendance_days`` (setting, default 30) the paginator finds the online meeting by its
join URL (``GET /users/{organizer}/onlineMeetings?$filter=JoinWebUrl eq '...'``; the id is
kept in the event's metadata and the external-id map, entity ``online_meetings``), lists
its attendance reports (one per session that ended) and walks each report's
``attendanceRecords`` a page at a time.  Records are matched to our users by email before
they are mapped (outside any transaction); an existing registration of that user for that
event is linked, so it is filled in rather than duplicated.  A record whose email is no
user of ours fails with that reason.
"""

from __future__ import annotations

import copy
import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from connectors.base import JSONDict, Page, Stream
from connectors.teams.mapping import join_url
from core.errors import ConfigError
from models.base import utcnow
from models.events import Event, EventAttendee
from models.organizations import User
from models.session import get_database
from models.sync_state import ExternalId

if TYPE_CHECKING:
    from connectors.http import VendorClient
    from models.integrations import Integration

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class AttendancePaginator:
    """Walks meetings -> reports -> records; bound to an integration by the connector."""

    integration: Integration | None = field(default=None, compare=False)
    meetings_path: str = ""

    def fetch(
        self, client: VendorClient, stream: Stream, cursor: JSONDict | None, state: JSONDict
    ) -> Page:
        if self.integration is None:
            raise ConfigError("the attendance stream must be opened through its connector")
        cursor = copy.deepcopy(cursor or {})  # the engine compares it with the stored one
        if "queue" not in cursor:
            cursor = {"queue": self._events_to_read(), "reports": [], "next": None}
        if cursor.get("next"):
            link = cursor["next"]
            key = "records:" + hashlib.sha256(link.encode()).hexdigest()[:40]
            return self._records(client, client.follow(link).json(), cursor, key)
        if cursor["reports"]:
            event_ext, meeting_id, report_id = cursor["reports"].pop(0)
            cursor["current"] = [event_ext, meeting_id, report_id]
            path = (
                f"{self.meetings_path}/{meeting_id}/attendanceReports/{report_id}/attendanceRecords"
            )
            body = client.request("GET", path, params={"$top": stream.page_size}).json()
            return self._records(client, body, cursor, f"records:{report_id}")
        if cursor["queue"]:
            event_ext, local_id, join_url = cursor["queue"].pop(0)
            meeting_id = self._meeting_id(client, uuid.UUID(local_id), join_url)
            if meeting_id:
                reports = self._reports(client, meeting_id)
                cursor["reports"] = [[event_ext, meeting_id, r] for r in reports]
            return Page([], _more(cursor), f"reports:{event_ext}")
        return Page([], None, "none")

    def _records(self, client: VendorClient, body: JSONDict, cursor: JSONDict, key: str) -> Page:
        event_ext, meeting_id, report_id = cursor["current"]
        cursor["next"] = body.get("@odata.nextLink")
        records = [
            {**r, "_event": event_ext, "_meeting": meeting_id, "_report": report_id}
            for r in body.get("value") or []
        ]
        self._match_users(records)
        return Page(records, _more(cursor), key)

    def _events_to_read(self) -> list[list[str]]:
        """[graph event id, local id, join URL] of the Teams events to read attendance of."""
        assert self.integration is not None
        days = int(self.integration.settings.get("attendance_days") or DEFAULT_DAYS)
        now = utcnow()
        with get_database().tenant(self.integration.organization_id) as session:
            rows = session.execute(
                select(ExternalId.external_id, Event.id, Event.venue_details)
                .join(Event, Event.id == ExternalId.local_id)
                .where(
                    ExternalId.integration_id == self.integration.id,
                    ExternalId.entity_type == "events",
                    Event.start_date >= now - timedelta(days=days),
                    Event.start_date <= now,
                )
                .order_by(Event.start_date)
            ).all()
        return [
            [external_id, str(local_id), url]
            for external_id, local_id, venue in rows
            if (url := join_url(venue))
        ]

    def _meeting_id(self, client: VendorClient, event_id: uuid.UUID, join_url: str) -> str | None:
        """The online meeting's id: remembered on the event, else looked up by join URL."""
        assert self.integration is not None
        db = get_database()
        with db.tenant(self.integration.organization_id) as session:
            event = session.get(Event, event_id)
            known = (
                ((event.metadata_ or {}).get("teams") or {}).get("meeting_id") if event else None
            )
        if known:
            return str(known)
        quoted = join_url.replace("'", "''")
        body = client.request(
            "GET", self.meetings_path, params={"$filter": f"JoinWebUrl eq '{quoted}'"}
        ).json()
        found = body.get("value") or []
        if not found:
            return None
        meeting_id = str(found[0]["id"])
        with db.tenant(self.integration.organization_id) as session:
            event = session.get(Event, event_id)
            if event is not None:
                teams = {**(event.metadata_ or {}).get("teams", {}), "meeting_id": meeting_id}
                event.metadata_ = {**(event.metadata_ or {}), "teams": teams}
                _link(session, self.integration.id, "online_meetings", meeting_id, event_id)
        return meeting_id

    def _reports(self, client: VendorClient, meeting_id: str) -> list[str]:
        body = client.request("GET", f"{self.meetings_path}/{meeting_id}/attendanceReports").json()
        ids = [str(r["id"]) for r in body.get("value") or []]
        while body.get("@odata.nextLink"):
            body = client.follow(body["@odata.nextLink"]).json()
            ids += [str(r["id"]) for r in body.get("value") or []]
        return ids

    def _match_users(self, records: list[JSONDict]) -> None:
        """Set ``_user_id`` by email, and link existing registrations to their records."""
        assert self.integration is not None
        emails = {str(r.get("emailAddress") or "").lower() for r in records} - {""}
        if not emails:
            return
        with get_database().tenant(self.integration.organization_id) as session:
            users: dict[str, uuid.UUID] = dict(
                session.execute(
                    select(func.lower(User.email), User.id).where(
                        func.lower(User.email).in_(emails)
                    )
                ).all()
            )
            events = dict(
                session.execute(
                    select(ExternalId.external_id, ExternalId.local_id).where(
                        ExternalId.integration_id == self.integration.id,
                        ExternalId.entity_type == "events",
                        ExternalId.external_id.in_({r["_event"] for r in records}),
                    )
                ).all()
            )
            for record in records:
                email = str(record.get("emailAddress") or "").lower()
                user_id = users.get(email)
                record["_user_id"] = str(user_id) if user_id else None
                if user_id and record["_event"] in events:
                    _link_registration(
                        session,
                        self.integration.id,
                        f"{record['_event']}:{email}",
                        events[record["_event"]],
                        user_id,
                    )


def _more(cursor: JSONDict) -> JSONDict | None:
    return cursor if cursor.get("next") or cursor["reports"] or cursor["queue"] else None


def _link_registration(
    session: Any, integration_id: uuid.UUID, external_id: str, event_id: uuid.UUID, user_id: Any
) -> None:
    attendee = session.scalar(
        select(EventAttendee.id).where(
            EventAttendee.event_id == event_id, EventAttendee.user_id == user_id
        )
    )
    if attendee is not None:
        _link(session, integration_id, "event_attendees", external_id, attendee)


def _link(
    session: Any, integration_id: uuid.UUID, entity_type: str, external_id: str, local_id: uuid.UUID
) -> None:
    """Map ``external_id`` to ``local_id`` unless either side is mapped already."""
    taken = session.scalar(
        select(func.count())
        .select_from(ExternalId)
        .where(
            ExternalId.integration_id == integration_id,
            ExternalId.entity_type == entity_type,
            (ExternalId.external_id == external_id) | (ExternalId.local_id == local_id),
        )
    )
    if not taken:
        session.add(
            ExternalId(
                integration_id=integration_id,
                entity_type=entity_type,
                external_id=external_id,
                local_id=local_id,
            )
        )
