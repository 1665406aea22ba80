"""What Zoom's webhooks change here: attendance, the event's state, its recordings.

* ``meeting.participant_joined`` / ``_left``: the attendee (the organization's user with
  the participant's email) gets ``check_in_time`` (earliest join) / ``check_out_time``
  (latest leave) and status ``attended``; a participant who never registered but is a user
  gets an attendee row.  A participant matching no user is a per-event failure.
* ``meeting.started`` / ``meeting.ended``: the event becomes ``ongoing`` / ``completed``.
  On ``ended`` the past-participants report (``GET /past_meetings/{uuid}/participants``,
  the uuid double-encoded when Zoom needs it) fills what the webhooks missed, and
  attendees still registered or confirmed become ``no_show``.
* ``recording.completed``: each file becomes a ``media`` row related to the event (video,
  audio or document) in the event's "Zoom recordings" collection, once per file id.
* ``meeting.deleted``: for an event cancelled or deleted here it is the echo of our own
  write-back's DELETE and changes nothing (:func:`connectors.meetings.closed_here`).  For
  an event still on, someone deleted its meeting in Zoom: the event keeps its status and
  loses the dead meeting (Zoom's ``venue_details``, ``venue`` and ``registration_url`` are
  cleared, its links to the meeting and its registrants dropped), so while it still asks
  for Zoom the next ``meetings_export`` gives it a new meeting and ``registrants_export``
  registers its attendees there.  Nothing is marked deleted.  A deleted occurrence (a
  recurring meeting; ours are one-off) and a meeting of no event here are ignored.

Every handler is idempotent: times only move outward, rows are found before created.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import delete, or_, select

from connectors.base import JSONDict, WebhookEvent
from connectors.http import VendorClient
from connectors.meetings import closed_here
from connectors.zoom.mapping import encode_uuid, parse_time, recording_media, registrant_key
from core.errors import SkippableRecordError
from models.events import Event, EventAttendee
from models.media import Media, MediaCollection, MediaCollectionItem
from models.organizations import User
from models.session import PlugsSession
from models.sync_state import ExternalId

REPORT_PAGE = 300
ABSENT = ("registered", "confirmed")


class Attendance:
    """Applies one Zoom event for one integration inside the caller's session."""

    def __init__(
        self, session: PlugsSession, integration_id: uuid.UUID, client: Callable[[], VendorClient]
    ) -> None:
        self.session, self.integration_id, self._client = session, integration_id, client

    def apply(self, event: WebhookEvent) -> None:
        obj: JSONDict = event.payload["payload"]["object"]
        handler = {
            "meeting.participant_joined": self._joined,
            "meeting.participant_left": self._left,
            "meeting.started": self._started,
            "meeting.ended": self._ended,
            "recording.completed": self._recorded,
            "meeting.deleted": self._deleted,
        }.get(event.kind)
        if handler is not None:
            handler(obj)

    # --------------------------------------------------------------- lookups

    def _event(self, obj: JSONDict) -> Event:
        meeting_id = str(obj.get("id") or "")
        local_id = self.session.scalar(
            select(ExternalId.local_id).where(
                ExternalId.integration_id == self.integration_id,
                ExternalId.entity_type == "events",
                ExternalId.external_id == meeting_id,
            )
        )
        event = self.session.get(Event, local_id) if local_id else None
        if event is None:
            raise SkippableRecordError(f"Zoom meeting {meeting_id} belongs to no event here")
        return event

    def _attendee(self, event: Event, email: str) -> EventAttendee:
        email = email.strip().lower()
        user = self.session.scalar(select(User).where(User.email == email)) if email else None
        if user is None:
            raise SkippableRecordError(
                f"participant {email or '(no email)'} matches no user of this organization"
            )
        attendee = self.session.scalar(
            select(EventAttendee).where(
                EventAttendee.event_id == event.id, EventAttendee.user_id == user.id
            )
        )
        if attendee is None:
            attendee = EventAttendee(event_id=event.id, user_id=user.id, status="attended")
            self.session.add(attendee)
        return attendee

    # --------------------------------------------------------------- handlers

    def _joined(self, obj: JSONDict) -> None:
        person = obj.get("participant") or {}
        attendee = self._attendee(self._event(obj), str(person.get("email") or ""))
        _attended(attendee, parse_time(person.get("join_time")), None)

    def _left(self, obj: JSONDict) -> None:
        person = obj.get("participant") or {}
        attendee = self._attendee(self._event(obj), str(person.get("email") or ""))
        _attended(attendee, None, parse_time(person.get("leave_time")))

    def _started(self, obj: JSONDict) -> None:
        event = self._event(obj)
        if event.status not in ("completed", "cancelled"):
            event.status = "ongoing"

    def _ended(self, obj: JSONDict) -> None:
        event = self._event(obj)
        if event.status != "cancelled":
            event.status = "completed"
        self.fill_from_report(event, str(obj.get("uuid") or obj.get("id")))

    def fill_from_report(self, event: Event, meeting_uuid: str) -> None:
        """Attendance from the past-participants report, then no_show for the absent."""
        seen: set[uuid.UUID] = set()
        for row in self._report(meeting_uuid):
            email = str(row.get("user_email") or "")
            if not email:
                continue  # a dial-in or anonymous participant
            try:
                attendee = self._attendee(event, email)
            except SkippableRecordError:
                continue  # not one of ours
            join, leave = parse_time(row.get("join_time")), parse_time(row.get("leave_time"))
            _attended(attendee, join, leave)
            seen.add(attendee.user_id)
        self.session.flush()
        absent = self.session.scalars(
            select(EventAttendee).where(
                EventAttendee.event_id == event.id, EventAttendee.status.in_(ABSENT)
            )
        )
        for attendee in absent:
            if attendee.user_id not in seen:
                attendee.status = "no_show"

    def _report(self, meeting_uuid: str) -> Iterator[JSONDict]:
        client, token = self._client(), ""
        path = f"/past_meetings/{encode_uuid(meeting_uuid)}/participants"
        while True:
            params: dict[str, Any] = {"page_size": REPORT_PAGE}
            if token:
                params["next_page_token"] = token
            response = client.request("GET", path, params=params)
            if response.status_code == 404:
                raise SkippableRecordError(f"Zoom has no participant report for {meeting_uuid} yet")
            body = response.json()
            yield from body.get("participants") or []
            token = body.get("next_page_token") or ""
            if not token:
                return

    def _recorded(self, obj: JSONDict) -> None:
        event = self._event(obj)
        collection = self._collection(event)
        topic = str(obj.get("topic") or event.title)
        for file in obj.get("recording_files") or []:
            external_id = str(file.get("id") or "")
            if not external_id or self._linked("media", external_id):
                continue
            media = Media(
                related_event=event.id, access_level="organization", **recording_media(file, topic)
            )
            self.session.add(media)
            self.session.flush()
            self._link("media", external_id, media.id)
            self.session.add(MediaCollectionItem(collection_id=collection.id, media_id=media.id))

    def _deleted(self, obj: JSONDict) -> None:
        meeting_id = str(obj.get("id") or "")
        local_id = self._linked("events", meeting_id) if meeting_id else None
        if local_id is None or obj.get("occurrences"):
            return  # not a meeting of ours, or one occurrence of a recurring one
        event = self.session.scalars(
            select(Event).where(Event.id == local_id).execution_options(include_deleted=True)
        ).one_or_none()
        venue = (event.venue_details or {}) if event is not None else {}
        if event is None or closed_here(event) or str(venue.get("meeting_id")) != meeting_id:
            return  # our own DELETE's echo, or the event has another meeting by now
        if event.venue == "Zoom":
            event.venue = None
        if event.registration_url and event.registration_url == venue.get("registration_url"):
            event.registration_url = None
        event.venue_details = {}
        registrants = ExternalId.external_id.startswith(
            registrant_key(meeting_id, ""), autoescape=True
        )
        self.session.execute(
            delete(ExternalId).where(
                ExternalId.integration_id == self.integration_id,
                or_(
                    (ExternalId.entity_type == "events") & (ExternalId.external_id == meeting_id),
                    (ExternalId.entity_type == EventAttendee.__tablename__) & registrants,
                ),
            )
        )

    def _collection(self, event: Event) -> MediaCollection:
        key = f"recordings:{event.id}"
        found = self._linked("media_collections", key)
        collection = self.session.get(MediaCollection, found) if found else None
        if collection is None:
            collection = MediaCollection(
                name=f"Zoom recordings: {event.title}"[:255],
                collection_type="general",
                settings={"event_id": str(event.id), "source": "zoom"},
            )
            self.session.add(collection)
            self.session.flush()
            self._link("media_collections", key, collection.id)
        return collection

    def _linked(self, entity_type: str, external_id: str) -> uuid.UUID | None:
        return self.session.scalar(
            select(ExternalId.local_id).where(
                ExternalId.integration_id == self.integration_id,
                ExternalId.entity_type == entity_type,
                ExternalId.external_id == external_id,
            )
        )

    def _link(self, entity_type: str, external_id: str, local_id: uuid.UUID) -> None:
        self.session.add(
            ExternalId(
                integration_id=self.integration_id,
                entity_type=entity_type,
                external_id=external_id,
                local_id=local_id,
            )
        )


def _attended(attendee: EventAttendee, join: datetime | None, leave: datetime | None) -> None:
    """Check-in moves only earlier, check-out only later; the attendee attended."""
    if join is not None and (attendee.check_in_time is None or join < attendee.check_in_time):
        attendee.check_in_time = join
    if leave is not None and (attendee.check_out_time is None or leave > attendee.check_out_time):
        attendee.check_out_time = leave
    if (
        attendee.check_in_time is not None
        and attendee.check_out_time is not None
        and attendee.check_out_time < attendee.check_in_time
    ):
        attendee.check_out_time = attendee.check_in_time
    attendee.status = "attended"
