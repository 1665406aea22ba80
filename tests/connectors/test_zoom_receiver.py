"""Zoom webhooks through the receiver (``create_app()`` over HTTP, in-process) and the inbox
processed by a real worker: the URL validation challenge, a signed participant_joined
stored once and turned into a check-in, and refused signatures and stale timestamps."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models import IntegrationLog, WebhookDelivery
from models.events import EventAttendee
from models.organizations import User
from models.session import Database
from models.sync_state import ExternalId
from tests.connectors.harness import Vendor, zoom
from tests.connectors.test_zoom_conformance import zoom_event
from workers.http import webhooks
from workers.http.app import create_app

BASE = "http://testserver"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Zoom's x-zm-signature, computed here from docs/vendors/zoom.md, not by our code."""
    message = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


@dataclass
class Hooked:
    """A Zoom integration with an event linked to a simulator meeting, ada registered for
    it, and a client of the receiver."""

    vendor: Vendor
    client: TestClient

    @property
    def path(self) -> str:
        return f"/webhooks/zoom/{self.vendor.integration_id}"

    def post(self, headers: dict[str, str], body: bytes) -> Any:
        return self.client.post(self.path, content=body, headers=headers)

    def deliveries(self) -> list[WebhookDelivery]:
        with self.vendor.db.tenant(self.vendor.org_id) as session:
            rows = list(session.scalars(select(WebhookDelivery)))
            session.expunge_all()
        return rows

    def wait_processed(self, timeout: float = 60) -> list[WebhookDelivery]:
        deadline = time.monotonic() + timeout
        while True:
            rows = self.deliveries()
            if rows and all(row.status != "received" for row in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries not processed within {timeout}s: {rows}")
            time.sleep(0.1)


@pytest.fixture
def hooked(app_db: Database, sync_worker: Any) -> Iterator[Hooked]:
    webhooks.forget_cached()
    with zoom(app_db) as vendor:
        meeting = vendor.sim.add_meeting("Intro workshop")
        with app_db.tenant(vendor.org_id) as session:
            event, ada = zoom_event(), User(email="ada@example.com", first_name="Ada")
            session.add_all([event, ada])
            session.flush()
            session.add(EventAttendee(event_id=event.id, user_id=ada.id, status="confirmed"))
            session.add(
                ExternalId(
                    integration_id=vendor.integration_id,
                    entity_type="events",
                    external_id=str(meeting.id),
                    local_id=event.id,
                )
            )
        vendor.meeting = meeting  # type: ignore[attr-defined]
        with TestClient(create_app(), base_url=BASE) as client:
            yield Hooked(vendor, client)
    webhooks.forget_cached()


def joined(hooked: Hooked, *, at: float | None = None) -> tuple[dict[str, str], bytes]:
    meeting = hooked.vendor.meeting  # type: ignore[attr-defined]
    participant = {
        "user_id": "16778240",
        "user_name": "Ada Lovelace",
        "email": "ada@example.com",
        "join_time": "2030-01-02T10:01:00Z",
    }
    obj = {"id": str(meeting.id), "uuid": meeting.uuid, "type": 2, "participant": participant}
    return hooked.vendor.sim.deliver("meeting.participant_joined", obj, at=at)


def test_the_url_validation_challenge_is_answered_over_http(hooked: Hooked) -> None:
    body = json.dumps(
        {
            "payload": {"plainToken": "qgg8vlvZRS6UYooatFL8Aw"},
            "event_ts": int(time.time() * 1000),
            "event": "endpoint.url_validation",
        }
    ).encode()
    timestamp = str(int(time.time()))
    secret = hooked.vendor.sim.webhook_secret
    headers = {"x-zm-request-timestamp": timestamp, "x-zm-signature": sign(secret, timestamp, body)}

    reply = hooked.post(headers, body)
    forged = hooked.post({**headers, "x-zm-signature": "v0=" + "0" * 64}, body)

    assert reply.status_code == 200 and reply.headers["content-type"] == "application/json"
    expected = hmac.new(secret.encode(), b"qgg8vlvZRS6UYooatFL8Aw", hashlib.sha256).hexdigest()
    assert reply.json() == {"plainToken": "qgg8vlvZRS6UYooatFL8Aw", "encryptedToken": expected}
    assert forged.status_code == 401
    assert hooked.deliveries() == []  # a handshake is not a delivery


def test_a_participant_joined_twice_is_stored_once_and_checks_the_attendee_in(
    hooked: Hooked, app_db: Database
) -> None:
    headers, body = joined(hooked)
    retry_at = str(int(headers["x-zm-request-timestamp"]) + 30)  # Zoom's retry: same body
    retry = {**headers, "x-zm-request-timestamp": retry_at}
    retry["x-zm-signature"] = sign(hooked.vendor.sim.webhook_secret, retry_at, body)

    first, second = hooked.post(headers, body), hooked.post(retry, body)

    assert (first.status_code, second.status_code) == (200, 200)
    [stored] = hooked.wait_processed()
    assert (stored.status, stored.event_count, stored.provider) == ("processed", 1, "zoom")
    with app_db.tenant(hooked.vendor.org_id) as session:
        attendee = session.scalars(select(EventAttendee)).one()
        assert attendee.status == "attended"
        assert attendee.check_in_time is not None
        assert attendee.check_in_time.isoformat()[:19] == "2030-01-02T10:01:00"
        run = session.get(IntegrationLog, stored.run_id)
        assert (run.operation, run.status, run.records_processed, run.records_failed) == (
            "webhook",
            "success",
            1,
            0,
        )


def test_a_bad_signature_or_a_stale_timestamp_is_refused_with_401(hooked: Hooked) -> None:
    headers, body = joined(hooked)
    tampered = hooked.post(headers, body.replace(b"Ada Lovelace", b"Eve Mallory"))
    wrong_secret = {
        **headers,
        "x-zm-signature": sign("not-the-secret", headers["x-zm-request-timestamp"], body),
    }
    forged = hooked.post(wrong_secret, body)
    stale_headers, stale_body = joined(hooked, at=time.time() - 400)  # signed, 400 s old
    stale = hooked.post(stale_headers, stale_body)

    assert [r.status_code for r in (tampered, forged, stale)] == [401] * 3
    assert hooked.deliveries() == []
    with hooked.vendor.db.tenant(hooked.vendor.org_id) as session:
        assert session.scalars(select(EventAttendee)).one().check_in_time is None
