"""Pure mapping between Zoom records and our rows (no I/O).

Which events get a Zoom meeting: ``events.settings["meeting_platform"] == "zoom"`` (see
:mod:`connectors.meetings`, shared with Teams).  What Zoom gave back is the event's venue:
``events.venue_details`` holds ``{"platform": "zoom", "meeting_id", "uuid", "join_url",
"registration_url"}``, ``events.venue`` is "Zoom" and ``events.registration_url`` Zoom's
registration link; the meeting id is also the event's external id.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from connectors.base import JSONDict, MappedRecord
from connectors.meetings import asks_for
from core.errors import SkippableRecordError

PLATFORM = "zoom"
#: The event columns the meeting mapping owns (compared to decide what to push).
MEETING_COLUMNS = (
    "title",
    "start_date",
    "end_date",
    "timezone",
    "status",
    "venue",
    "venue_details",
    "registration_url",
)
#: Zoom meeting status -> our events.status (a meeting that exists is not cancelled).
MEETING_STATUS = {"waiting": "published", "started": "ongoing", "finished": "completed"}
#: The attendee columns the registrant mapping owns.
REGISTRANT_COLUMNS = ("event_id", "user_id", "status", "registration_date", "metadata_")
#: Zoom registrant status -> our event_attendees.status.
REGISTRANT_STATUS = {"approved": "confirmed", "pending": "registered", "denied": "cancelled"}
AGENDA_MAX = 2000
#: Zoom recording file_type -> (our media_type, mime type).
RECORDING_TYPES = {
    "MP4": ("video", "video/mp4"),
    "M4A": ("audio", "audio/mp4"),
    "TRANSCRIPT": ("document", "text/vtt"),
    "CC": ("document", "text/vtt"),
    "CHAT": ("document", "text/plain"),
    "TIMELINE": ("document", "application/json"),
}


def asks_for_zoom(event: Any) -> bool:
    return asks_for(event, PLATFORM)


def parse_time(value: Any) -> datetime | None:
    """A Zoom time (``yyyy-MM-ddTHH:mm:ssZ``) as an aware UTC datetime."""
    if value in (None, ""):
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).astimezone(UTC)


def zoom_time(moment: datetime) -> str:
    """An aware (or naive UTC) datetime as Zoom's UTC format."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def encode_uuid(meeting_uuid: str) -> str:
    """A meeting UUID ready for a path: double-encoded when it starts with ``/`` or
    contains ``//`` (Zoom decodes such paths twice), else unchanged
    (docs/vendors/zoom.md#endpoints-we-call)."""
    if meeting_uuid.startswith("/") or "//" in meeting_uuid:
        return quote(quote(meeting_uuid, safe=""), safe="")
    return meeting_uuid


def meeting_body(event: Any) -> JSONDict:
    """Our event as the body of Zoom's create/update meeting (a scheduled meeting, type 2,
    registration approved automatically so attendees can be registered)."""
    end = event.end_date or event.start_date + timedelta(hours=1)
    minutes = max(1, round((end - event.start_date).total_seconds() / 60))
    body: JSONDict = {
        "topic": event.title[:200],
        "type": 2,
        "start_time": zoom_time(event.start_date),
        "duration": minutes,
        "timezone": event.timezone or "UTC",
        "settings": {"approval_type": 0},
    }
    if event.description:
        body["agenda"] = event.description[:AGENDA_MAX]
    return body


def map_meeting(record: JSONDict) -> MappedRecord:
    """A Zoom meeting as the venue, title and times of the event it was created for."""
    start = parse_time(record.get("start_time"))
    if start is None:
        raise SkippableRecordError("meeting has no start_time", record_id=str(record.get("id")))
    meeting_id = str(record["id"])
    venue = {
        "platform": PLATFORM,
        "meeting_id": meeting_id,
        "uuid": record.get("uuid"),
        "join_url": record.get("join_url"),
        "registration_url": record.get("registration_url"),
    }
    return MappedRecord(
        external_id=meeting_id,
        values={
            "title": str(record.get("topic") or "")[:255],
            "start_date": start,
            "end_date": start + timedelta(minutes=int(record.get("duration") or 0)),
            "timezone": record.get("timezone") or None,
            "status": MEETING_STATUS.get(str(record.get("status") or "waiting"), "published"),
            "venue": "Zoom",
            "venue_details": venue,
            "registration_url": (record.get("registration_url") or None),
        },
    )


def registrant_key(meeting_id: Any, registrant_id: Any) -> str:
    """A registrant's external id: Zoom's registrant ids are per meeting."""
    return f"{meeting_id}:{registrant_id}"


def map_registrant(record: JSONDict) -> MappedRecord:
    """A registrant (with ``meeting_id`` and the matched ``user_id`` added by the paginator)
    as an attendee of the meeting's event."""
    key = registrant_key(record.get("meeting_id"), record.get("id"))
    email = str(record.get("email") or "").strip().lower()
    if not email:
        raise SkippableRecordError("registrant has no email", record_id=key)
    if not record.get("user_id"):
        raise SkippableRecordError(
            f"registrant {email} matches no user of this organization (by email); "
            "add the user, then replay this run",
            record_id=key,
        )
    status = REGISTRANT_STATUS.get(str(record.get("status") or "approved"), "registered")
    return MappedRecord(
        external_id=key,
        values={
            "user_id": uuid.UUID(str(record["user_id"])),
            "status": status,
            "registration_date": parse_time(record.get("create_time")),
            "metadata_": {
                "zoom": {
                    "registrant_id": str(record["id"]),
                    "meeting_id": str(record["meeting_id"]),
                    "join_url": record.get("join_url"),
                    "status": str(record.get("status") or "approved"),
                }
            },
        },
        references={"event_id": ("events", str(record["meeting_id"]))},
        cursor_value=record.get("create_time") or None,
    )


def registrant_body(user: Any) -> JSONDict:
    """A user as the body of Zoom's add-registrant call."""
    return {
        "email": user.email,
        "first_name": user.first_name or user.email.split("@")[0],
        "last_name": user.last_name or "",
        "auto_approve": True,
    }


def recording_media(file: JSONDict, topic: str) -> JSONDict:
    """One file of a ``recording.completed`` delivery as media column values."""
    file_type = str(file.get("file_type") or "").upper()
    media_type, mime = RECORDING_TYPES.get(file_type, ("document", "application/octet-stream"))
    extension = str(file.get("file_extension") or file_type or "bin").lower()
    kind = str(file.get("recording_type") or "recording").replace("_", " ")
    return {
        "title": f"{topic} ({kind})"[:255],
        "file_name": f"zoom-{file.get('id')}.{extension}"[:255],
        "file_url": str(file.get("play_url") or file.get("download_url") or "")[:500] or None,
        "media_type": media_type,
        "mime_type": mime,
        "file_size": int(file["file_size"]) if file.get("file_size") is not None else None,
        "status": "ready"
        if str(file.get("status") or "completed") == "completed"
        else "processing",
        "metadata_": {
            "zoom": {
                "file_id": str(file.get("id")),
                "recording_type": file.get("recording_type"),
                "recording_start": file.get("recording_start"),
                "recording_end": file.get("recording_end"),
            }
        },
    }
