"""The state of the Zoom simulator: meetings, registrants, past participants, recordings,
and the ``next_page_token`` paging Zoom lists use (docs/vendors/zoom.md)."""

from __future__ import annotations

import base64
import itertools
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

#: Zoom's list page size: 30 by default, at most 300.
DEFAULT_PAGE = 30
MAX_PAGE = 300
#: A next_page_token expires after 15 minutes.
PAGE_TOKEN_TTL = 900.0


def iso(moment: float) -> str:
    """Epoch seconds as Zoom writes times: ``yyyy-MM-ddTHH:mm:ssZ``."""
    return datetime.fromtimestamp(moment, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def new_uuid() -> str:
    """A meeting instance UUID as Zoom makes them (base64, 24 characters)."""
    return base64.b64encode(secrets.token_bytes(16)).decode()


class PageError(Exception):
    """An expired or unknown next_page_token (Zoom: 300 "Invalid next_page_token")."""


@dataclass
class Meeting:
    id: int
    uuid: str
    topic: str
    start_time: str
    duration: int
    timezone: str
    agenda: str
    settings: dict[str, Any]
    created_at: str
    status: str = "waiting"
    registrants: list[dict[str, Any]] = field(default_factory=list)

    def json(self) -> dict[str, Any]:
        body = {
            "id": self.id,
            "uuid": self.uuid,
            "host_id": "z8yCxjabcdEFGHfp8uQ",
            "host_email": "host@example.com",
            "topic": self.topic,
            "type": 2,
            "status": self.status,
            "start_time": self.start_time,
            "duration": self.duration,
            "timezone": self.timezone,
            "agenda": self.agenda,
            "created_at": self.created_at,
            "join_url": f"https://zoom.us/j/{self.id}?pwd=sim",
            "start_url": f"https://zoom.us/s/{self.id}?zak=sim",
            "password": "sim123",
            "settings": self.settings,
        }
        if self.settings.get("approval_type", 2) != 2:
            body["registration_url"] = f"https://zoom.us/meeting/register/{self.id}"
        return body


class ZoomStore:
    """Everything the simulator holds; the simulator's lock guards it."""

    def __init__(self) -> None:
        self.meetings: dict[int, Meeting] = {}
        self.deleted: set[int] = set()
        self.participants: dict[str, list[dict[str, Any]]] = {}  # by instance uuid
        self.recordings: dict[str, list[dict[str, Any]]] = {}
        self._ids = itertools.count(85746065432)
        self._pages: dict[str, tuple[str, int, float]] = {}

    def create_meeting(self, body: dict[str, Any], now: float) -> Meeting:
        meeting = Meeting(
            id=next(self._ids),
            uuid=new_uuid(),
            topic=str(body.get("topic") or "Zoom meeting"),
            start_time=str(body.get("start_time") or iso(now)),
            duration=int(body.get("duration") or 60),
            timezone=str(body.get("timezone") or "UTC"),
            agenda=str(body.get("agenda") or ""),
            settings={"approval_type": 2, **(body.get("settings") or {})},
            created_at=iso(now),
        )
        self.meetings[meeting.id] = meeting
        return meeting

    def update_meeting(self, meeting: Meeting, body: dict[str, Any]) -> None:
        for name in ("topic", "start_time", "timezone", "agenda"):
            if name in body:
                setattr(meeting, name, str(body[name]))
        if "duration" in body:
            meeting.duration = int(body["duration"])
        meeting.settings.update(body.get("settings") or {})

    def add_registrant(
        self, meeting: Meeting, fields: dict[str, Any], now: float
    ) -> dict[str, Any]:
        """A registrant; registering the same email again returns the existing one."""
        email = str(fields["email"]).lower()
        for registrant in meeting.registrants:
            if registrant["email"] == email:
                return registrant
        registrant = {
            "id": secrets.token_urlsafe(16)[:22],
            "email": email,
            "first_name": fields["first_name"],
            "last_name": fields.get("last_name", ""),
            "status": "approved" if meeting.settings.get("approval_type") != 1 else "pending",
            "create_time": iso(now),
            "join_url": f"https://zoom.us/w/{meeting.id}?tk={secrets.token_urlsafe(8)}",
            "custom_questions": list(fields.get("custom_questions") or []),
        }
        meeting.registrants.append(registrant)
        return registrant

    def page(
        self, key: str, items: list[dict[str, Any]], query: dict[str, str], now: float
    ) -> dict[str, Any]:
        """One page of ``items`` as Zoom pages lists; ``key`` names the query so a token
        only continues the query it came from."""
        size = min(int(query.get("page_size") or DEFAULT_PAGE), MAX_PAGE)
        token = query.get("next_page_token") or ""
        start = 0
        if token:
            found = self._pages.get(token)
            if found is None or found[0] != key or found[2] < now:
                raise PageError("Invalid next_page_token.")
            start = found[1]
        following = ""
        if start + size < len(items):
            following = secrets.token_urlsafe(24)
            self._pages[following] = (key, start + size, now + PAGE_TOKEN_TTL)
        return {
            "page_count": max(1, -(-len(items) // size)),
            "page_size": size,
            "total_records": len(items),
            "next_page_token": following,
            "_items": items[start : start + size],
        }

    def expire_page_tokens(self) -> None:
        self._pages.clear()
