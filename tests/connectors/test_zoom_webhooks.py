"""Zoom webhooks: the worked examples of docs/vendors/zoom.md (verified by our code, not the
simulator's signer), freshness, the URL validation challenge, and what each event changes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select

from connectors.base import WebhookRequest
from connectors.loading import open_connector
from connectors.zoom import webhooks
from core.errors import AuthError, SkippableRecordError
from models import Integration
from models.events import Event, EventAttendee
from models.media import Media, MediaCollectionItem
from models.organizations import User
from models.session import Database
from models.sync_state import ExternalId
from simulators.zoom.server import ZoomSimulator
from tests.connectors.harness import Vendor, zoom
from tests.connectors.test_zoom_conformance import zoom_event

SECRET = "zmWebhookSecret_Test123"
TS = "1767225600"
BODY = (
    b'{"event":"meeting.participant_joined","event_ts":1767225600123,"payload":{"account_id":'
    b'"AcCt_0001","object":{"id":"85746065432","uuid":"4444AAAiAAAAAiAiAiiAii==","host_id":'
    b'"z8yCxjabcdEFGHfp8uQ","topic":"Intro workshop","type":2,"duration":60,"participant":'
    b'{"user_id":"16778240","user_name":"Ada Lovelace","join_time":"2026-01-01T00:00:05Z",'
    b'"email":"ada@example.com"}}}}'
)
SIGNATURE = "v0=481de3d3d38a06db57d019329f6e04f698dcf77103f0ad07a6c76098e4d75936"
CHALLENGE = (
    b'{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1767225600456,'
    b'"event":"endpoint.url_validation"}'
)


def request(
    body: bytes, signature: str, *, ts: str = TS, at: float = 1767225601.0
) -> WebhookRequest:
    headers = {"x-zm-signature": signature, "x-zm-request-timestamp": ts}
    return WebhookRequest("POST", "https://hooks.example/zoom", headers, body, at)


def test_the_worked_example_verifies_on_its_raw_bytes() -> None:
    assert len(BODY) == 369
    webhooks.verify(request(BODY, SIGNATURE), SECRET)
    pretty = json.dumps(json.loads(BODY), indent=2).encode()
    with pytest.raises(AuthError, match="does not match"):
        webhooks.verify(request(pretty, SIGNATURE), SECRET)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"body": BODY.replace(b"Ada", b"Eve")}, "does not match"),
        ({"secret": "another-secret"}, "does not match"),
        ({"at": 1767225600 + 301}, "300-second window"),
        ({"at": 1767225600 - 301}, "300-second window"),
        ({"ts": ""}, "x-zm-request-timestamp"),
    ],
)
def test_a_tampered_stale_or_unstamped_delivery_is_refused(change: dict, message: str) -> None:
    delivery = request(
        change.get("body", BODY),
        SIGNATURE,
        ts=change.get("ts", TS),
        at=change.get("at", 1767225601.0),
    )
    with pytest.raises(AuthError, match=message):
        webhooks.verify(delivery, change.get("secret", SECRET))


def test_the_url_validation_challenge_is_answered_with_the_worked_example() -> None:
    signed = "v0=2e76216fe01245b3fe5df0a88f4bd16172a3ae578f5222e625a66ddd2916b062"
    reply = webhooks.handshake(request(CHALLENGE, signed), SECRET)
    assert reply is not None and reply.status == 200 and reply.media_type == "application/json"
    assert json.loads(reply.body) == {
        "plainToken": "qgg8vlvZRS6UYooatFL8Aw",
        "encryptedToken": "39dec1027feb33a2e4e71cde7c24601435c62a5a177d74209fa7dec98f5e0d43",
    }
    with pytest.raises(AuthError):
        webhooks.handshake(request(CHALLENGE, "v0=forged"), SECRET)
    assert webhooks.handshake(request(BODY, SIGNATURE), SECRET) is None  # a delivery


def test_a_retried_delivery_keeps_its_id_and_another_participant_gets_another() -> None:
    events = webhooks.parse(request(BODY, SIGNATURE))
    again = webhooks.parse(request(BODY, SIGNATURE, at=1767225900.0))
    other = webhooks.parse(request(BODY.replace(b"16778240", b"16778241"), SIGNATURE))
    assert webhooks.delivery_id(events) == webhooks.delivery_id(again)
    assert webhooks.delivery_id(events) != webhooks.delivery_id(other)
    assert events[0].kind == "meeting.participant_joined" and events[0].object_id == "85746065432"
    with pytest.raises(ValueError):
        webhooks.parse(request(b"[1, 2]", SIGNATURE))


# ------------------------------------------------------------ applying events


@pytest.fixture
def vendor(app_db: Database) -> Iterator[Vendor]:
    """An organization with a Zoom event linked to a simulator meeting, two users
    registered for it (ada, bob) and one user who is not (cy)."""
    with zoom(app_db, sim=ZoomSimulator()) as vendor:
        meeting = vendor.sim.add_meeting("Intro workshop")
        with app_db.tenant(vendor.org_id) as session:
            event = zoom_event()
            users = [
                User(email=f"{name}@example.com", first_name=name) for name in ("ada", "bob", "cy")
            ]
            session.add_all([event, *users])
            session.flush()
            session.add(
                ExternalId(
                    integration_id=vendor.integration_id,
                    entity_type="events",
                    external_id=str(meeting.id),
                    local_id=event.id,
                )
            )
            session.add_all(
                [
                    EventAttendee(event_id=event.id, user_id=u.id, status="confirmed")
                    for u in users[:2]
                ]
            )
        vendor.meeting = meeting  # type: ignore[attr-defined]
        yield vendor


def deliver(vendor: Vendor, kind: str, obj: dict) -> None:
    """Verify, parse and apply a signed delivery as the receiver and the worker do."""
    headers, body = vendor.sim.deliver(kind, obj)
    with vendor.db.tenant(vendor.org_id) as session:
        connector = open_connector(session.get(Integration, vendor.integration_id))
    delivery = WebhookRequest(
        "POST", "https://hooks.example/zoom", headers, body, datetime.now(UTC).timestamp()
    )
    assert connector.webhook_handshake(delivery) is None
    connector.verify_webhook(delivery)
    for event in connector.parse_webhook(delivery):
        with vendor.db.tenant(vendor.org_id) as session:
            connector.apply_webhook_event(session, event)


def attendance(vendor: Vendor) -> dict[str, tuple]:
    with vendor.db.tenant(vendor.org_id) as session:
        rows = session.execute(
            select(
                User.email,
                EventAttendee.status,
                EventAttendee.check_in_time,
                EventAttendee.check_out_time,
            ).join(User, User.id == EventAttendee.user_id)
        )
        return {email.split("@")[0]: (status, cin, cout) for email, status, cin, cout in rows}


def meeting_object(vendor: Vendor, **extra: object) -> dict:
    meeting = vendor.meeting  # type: ignore[attr-defined]
    return {"id": str(meeting.id), "uuid": meeting.uuid, "topic": meeting.topic, "type": 2, **extra}


def person(email: str, **times: str) -> dict:
    return {"participant": {"user_id": email[:3], "user_name": email, "email": email, **times}}


def test_joined_and_left_webhooks_check_the_attendee_in_and_out(vendor: Vendor) -> None:
    deliver(
        vendor,
        "meeting.participant_joined",
        meeting_object(vendor, **person("ada@example.com", join_time="2030-01-02T10:01:00Z")),
    )
    deliver(
        vendor,
        "meeting.participant_left",
        meeting_object(vendor, **person("ada@example.com", leave_time="2030-01-02T11:00:00Z")),
    )
    deliver(
        vendor,
        "meeting.participant_joined",
        meeting_object(vendor, **person("ada@example.com", join_time="2030-01-02T10:01:00Z")),
    )  # retried
    status, check_in, check_out = attendance(vendor)["ada"]
    assert status == "attended"
    assert (check_in.isoformat()[:19], check_out.isoformat()[:19]) == (
        "2030-01-02T10:01:00",
        "2030-01-02T11:00:00",
    )
    with pytest.raises(SkippableRecordError, match="matches no user"):
        deliver(
            vendor,
            "meeting.participant_joined",
            meeting_object(
                vendor, **person("stranger@example.com", join_time="2030-01-02T10:05:00Z")
            ),
        )


def test_meeting_end_fills_gaps_from_the_report_and_marks_the_absent_no_show(
    vendor: Vendor,
) -> None:
    meeting = vendor.meeting  # type: ignore[attr-defined]
    meeting.uuid = "/ajXp112QmuoKj4854875=="  # must be double-encoded in the report path
    vendor.sim.add_participant(
        meeting.uuid,
        user_email="bob@example.com",
        join_time="2030-01-02T10:02:00Z",
        leave_time="2030-01-02T10:30:00Z",
    )
    vendor.sim.add_participant(
        meeting.uuid,
        user_email="cy@example.com",
        join_time="2030-01-02T10:10:00Z",
        leave_time="2030-01-02T10:20:00Z",
    )
    deliver(vendor, "meeting.started", meeting_object(vendor))
    with vendor.db.tenant(vendor.org_id) as session:
        assert session.scalar(select(Event.status)) == "ongoing"
    deliver(vendor, "meeting.ended", meeting_object(vendor, end_time="2030-01-02T11:30:00Z"))
    rows = attendance(vendor)
    assert {name: row[0] for name, row in rows.items()} == {
        "ada": "no_show",
        "bob": "attended",
        "cy": "attended",
    }
    assert rows["bob"][1].isoformat()[:19] == "2030-01-02T10:02:00"
    with vendor.db.tenant(vendor.org_id) as session:
        assert session.scalar(select(Event.status)) == "completed"
    paths = [r.path for r in vendor.sim.requests if "past_meetings" in r.path]
    assert paths == ["/v2/past_meetings/%2FajXp112QmuoKj4854875%3D%3D/participants"]


def test_a_completed_recording_becomes_media_of_the_event_once(vendor: Vendor) -> None:
    files = [
        {
            "id": "f-video",
            "file_type": "MP4",
            "file_extension": "MP4",
            "file_size": 7_340_032,
            "play_url": "https://zoom.us/rec/play/abc",
            "download_url": "https://zoom.us/rec/download/abc",
            "recording_type": "shared_screen_with_speaker_view",
            "status": "completed",
        },
        {
            "id": "f-audio",
            "file_type": "M4A",
            "file_extension": "M4A",
            "file_size": 1_048_576,
            "download_url": "https://zoom.us/rec/download/def",
            "recording_type": "audio_only",
            "status": "completed",
        },
    ]
    for _ in range(2):  # Zoom retries; the second delivery changes nothing
        deliver(vendor, "recording.completed", meeting_object(vendor, recording_files=files))
    with vendor.db.tenant(vendor.org_id) as session:
        media = {m.media_type: m for m in session.scalars(select(Media))}
        event_id = session.scalar(select(Event.id))
        assert set(media) == {"video", "audio"}
        assert (media["video"].mime_type, media["video"].file_size) == ("video/mp4", 7_340_032)
        assert media["video"].file_url == "https://zoom.us/rec/play/abc"
        assert {m.related_event for m in media.values()} == {event_id}
        assert session.scalar(select(func.count()).select_from(MediaCollectionItem)) == 2


def _gone_in_zoom(vendor: Vendor, meeting: Any) -> dict:
    """The meeting deleted at Zoom (as its DELETE does), and the ``meeting.deleted`` object."""
    del vendor.sim.store.meetings[meeting.id]
    vendor.sim.store.deleted.add(meeting.id)
    return {"id": str(meeting.id), "uuid": meeting.uuid, "topic": meeting.topic, "type": 2}


def test_a_meeting_deleted_in_zoom_leaves_the_event_on_and_the_next_export_replaces_it(
    app_db: Database, sync_worker: Any
) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            event, ada = zoom_event(), User(email="ada@example.com", first_name="Ada")
            session.add_all([event, ada])
            session.flush()
            session.add(EventAttendee(event_id=event.id, user_id=ada.id, status="confirmed"))
        vendor.sync(streams=["meetings_export"])
        vendor.sync(streams=["registrants_export"])
        [old] = vendor.sim.store.meetings.values()

        gone = _gone_in_zoom(vendor, old)  # someone deleted it in Zoom
        deliver(vendor, "meeting.deleted", gone)
        deliver(vendor, "meeting.deleted", gone)  # retried: the same outcome
        with app_db.tenant(vendor.org_id) as session:
            row = session.get(Event, event.id)
            assert (row.status, row.venue_details, row.venue, row.registration_url) == (
                "published",
                {},
                None,
                None,
            )
        assert vendor.count(Event, include_deleted=True) == vendor.count(Event) == 1
        assert vendor.count(EventAttendee) == 1

        run = vendor.sync(streams=["meetings_export"])
        assert (run.status, run.records_processed) == ("success", 1)
        [new] = vendor.sim.store.meetings.values()
        assert new.id != old.id
        registered = vendor.sync(streams=["registrants_export"])
        assert (registered.status, registered.records_processed) == ("success", 1)
        assert [r["email"] for r in new.registrants] == ["ada@example.com"]
        with app_db.tenant(vendor.org_id) as session:
            assert session.get(Event, event.id).venue_details["meeting_id"] == str(new.id)


def test_the_meeting_deleted_webhook_echoing_our_own_delete_changes_nothing(
    app_db: Database, sync_worker: Any
) -> None:
    with zoom(app_db) as vendor:
        with app_db.tenant(vendor.org_id) as session:
            session.add_all([zoom_event("Cancelled here"), zoom_event("Dropped here")])
        vendor.sync(streams=["meetings_export"])
        meetings = {m.topic: m for m in vendor.sim.store.meetings.values()}
        with app_db.tenant(vendor.org_id) as session:
            events = {e.title: e for e in session.scalars(select(Event))}
            events["Cancelled here"].status = "cancelled"
            events["Dropped here"].soft_delete()
        deleted = vendor.sync(streams=["meetings_export"])
        assert (deleted.status, deleted.records_processed) == ("success", 2)
        assert vendor.sim.store.meetings == {}  # our write-back deleted both meetings

        for meeting in meetings.values():  # what Zoom then sends
            obj = {"id": str(meeting.id), "uuid": meeting.uuid, "topic": meeting.topic}
            deliver(vendor, "meeting.deleted", obj)
        with app_db.tenant(vendor.org_id) as session:
            kept = session.get(Event, events["Cancelled here"].id)
            assert (kept.status, kept.venue) == ("cancelled", "Zoom")
            assert kept.venue_details["meeting_id"] == str(meetings["Cancelled here"].id)
        assert vendor.count(Event) == 1 and vendor.count(Event, include_deleted=True) == 2
        again = vendor.sync(streams=["meetings_export"])
        assert (again.status, again.records_processed) == ("success", 0)


def test_a_deleted_meeting_of_no_event_here_is_ignored(vendor: Vendor) -> None:
    stranger = vendor.sim.add_meeting("Someone else's meeting")
    deliver(vendor, "meeting.deleted", _gone_in_zoom(vendor, stranger))
    with vendor.db.tenant(vendor.org_id) as session:
        assert session.scalars(select(Event.status)).all() == ["published"]
