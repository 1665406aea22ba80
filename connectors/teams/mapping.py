"""Graph calendar events and attendance records as our rows, and our events as Graph bodies.

Which events ask for Teams: ``events.settings["meeting_platform"] == "teams"`` (see
:mod:`connectors.meetings`, shared with Zoom).  What Graph gives back is the event's venue:
once the meeting exists the connector owns that event's ``venue_details``, ``{"online_meeting":
{"provider": "teams", "join_url", "event_id"}}`` (the Teams join link and the Graph calendar
event; a calendar event read from the organizer's mailbox gets it too).  The online
meeting's id goes to ``metadata["teams"]["meeting_id"]`` and the external-id map (entity
``online_meetings``) when attendance is first read.  The event's type travels as an
Outlook category, so a round trip through Graph keeps it.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from connectors.base import JSONDict, MappedRecord
from core.errors import SkippableRecordError
from models.events import EVENT_TYPES

PROVIDER = "teams"
#: The columns of ``events`` the calendar mapping writes (and write-back compares).
EVENT_COLUMNS = (
    "title",
    "description",
    "event_type",
    "status",
    "start_date",
    "end_date",
    "location",
    "venue_details",
)


def graph_event_id(venue_details: Any) -> str | None:
    return _online(venue_details).get("event_id")


def join_url(venue_details: Any) -> str | None:
    """The Teams join link in an event's venue_details (None: it has no Teams meeting)."""
    return _online(venue_details).get("join_url")


def _online(venue_details: Any) -> dict[str, Any]:
    online = (venue_details or {}).get("online_meeting")
    if isinstance(online, dict) and str(online.get("provider") or "").lower() == PROVIDER:
        return online
    return {}


def graph_datetime(value: Any) -> datetime | None:
    """A Graph ``dateTimeTimeZone`` as an aware datetime (we ask Graph for UTC)."""
    if not isinstance(value, dict) or not value.get("dateTime"):
        return None
    if str(value.get("timeZone") or "UTC").upper() not in ("UTC", "ETC/UTC"):
        raise ValueError(f"time zone {value['timeZone']!r} (the connector asks Graph for UTC)")
    moment = datetime.fromisoformat(str(value["dateTime"]).removesuffix("Z"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def map_event(record: JSONDict) -> MappedRecord:
    """A Graph calendar event as an ``events`` row (see :data:`EVENT_COLUMNS`)."""
    event_id = str(record["id"])
    try:
        start, end = graph_datetime(record.get("start")), graph_datetime(record.get("end"))
    except ValueError as exc:
        raise SkippableRecordError(f"unreadable start or end: {exc}", record_id=event_id) from None
    if start is None:
        raise SkippableRecordError("the event has no start time", record_id=event_id)
    join_url = (record.get("onlineMeeting") or {}).get("joinUrl")
    venue: JSONDict = {}
    if record.get("isOnlineMeeting") and join_url:
        venue = {
            "online_meeting": {"provider": PROVIDER, "join_url": join_url, "event_id": event_id}
        }
    body = record.get("body") or {}
    categories = [str(c).lower() for c in record.get("categories") or []]
    values = {
        "title": str(record.get("subject") or "(no title)")[:255],
        "description": body.get("content") or None,
        "event_type": next((c for c in categories if c in EVENT_TYPES), "meeting"),
        "status": "cancelled" if record.get("isCancelled") else "published",
        "start_date": start,
        "end_date": end,
        "location": ((record.get("location") or {}).get("displayName") or None),
        "venue_details": venue,
    }
    return MappedRecord(event_id, values, cursor_value=record.get("lastModifiedDateTime"))


def event_body(row: Any) -> JSONDict:
    """Our event as a Graph calendar event with a Teams meeting (times sent in UTC)."""
    end = row.end_date or row.start_date
    return {
        "subject": row.title,
        "body": {"contentType": "text", "content": row.description or ""},
        "start": {"dateTime": _utc(row.start_date), "timeZone": "UTC"},
        "end": {"dateTime": _utc(end), "timeZone": "UTC"},
        "location": {"displayName": row.location or ""},
        "categories": [row.event_type],
        "isOnlineMeeting": True,
        "onlineMeetingProvider": "teamsForBusiness",
    }


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0")


def map_attendance(record: JSONDict) -> MappedRecord:
    """An attendance record, enriched by the paginator with ``_event`` (the Graph calendar
    event id), ``_user_id`` (our user with that email, or None) and ``_meeting``/``_report``,
    as an ``event_attendees`` row: attended, first join to last leave."""
    email = str(record.get("emailAddress") or "").strip().lower()
    external_id = f"{record['_event']}:{email or (record.get('identity') or {}).get('id')}"
    if not email:
        raise SkippableRecordError(
            "attendance record without an email address", record_id=external_id
        )
    if not record.get("_user_id"):
        raise SkippableRecordError(
            f"no user with email {email} in this organization", record_id=external_id
        )
    intervals = record.get("attendanceIntervals") or []
    joins = [_instant(i.get("joinDateTime")) for i in intervals if i.get("joinDateTime")]
    leaves = [_instant(i.get("leaveDateTime")) for i in intervals if i.get("leaveDateTime")]
    values = {
        "user_id": uuid.UUID(str(record["_user_id"])),
        "status": "attended",
        "check_in_time": min(joins) if joins else None,
        "check_out_time": max(leaves) if leaves else None,
        "metadata_": {
            "teams": {
                "meeting_id": record.get("_meeting"),
                "report_id": record.get("_report"),
                "role": record.get("role"),
                "seconds": record.get("totalAttendanceInSeconds"),
            }
        },
    }
    return MappedRecord(external_id, values, references={"event_id": ("events", record["_event"])})


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
