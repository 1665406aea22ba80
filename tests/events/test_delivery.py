"""Events reach the host product signed, through a real worker: after real syncs against
the HubSpot simulator, after a 500, never across organizations; an endpoint that keeps
failing is disabled and the admins are told; a replay sends the event again."""

from __future__ import annotations

import json
import uuid

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from connectors import loading
from connectors.base import WebhookRequest
from events import delivery
from events.endpoints import add_endpoint, set_enabled
from models import Contact, Integration, Notification
from models.accounts import create_organization, create_user
from models.base import utcnow
from models.host_events import (
    EVENT_TYPES,
    EventAttempt,
    EventDelivery,
    EventEndpoint,
    HostEvent,
    emit,
)
from models.session import Database
from notifications import fanout
from notifications.fanout import Content
from notifications.recipients import Audience
from runs import inbox
from tests.connectors.harness import hubspot
from tests.events.conftest import Receiver, wait_for

pytestmark = pytest.mark.usefixtures("events_worker")


def _verified(receiver: Receiver, path: str, secret: str) -> list[dict]:
    """Every event received at ``path``, each checked with the standardwebhooks library."""
    return [Webhook(secret).verify(r.body, r.headers) for r in receiver.at(path)]


def _types(receiver: Receiver, path: str, secret: str) -> list[str]:
    return [event["type"] for event in _verified(receiver, path, secret)]


def test_syncs_send_signed_run_and_record_events_to_their_organization_only(
    app_db: Database, receiver: Receiver
) -> None:
    other = create_organization(app_db, f"Other {uuid.uuid4().hex[:6]}")
    _, other_secret = add_endpoint(app_db, other.id, f"{receiver.url}/other", list(EVENT_TYPES))
    with hubspot(app_db) as vendor:
        _, secret = add_endpoint(app_db, vendor.org_id, f"{receiver.url}/a", list(EVENT_TYPES))
        vendor.sim.add_contacts(3)
        assert vendor.sync(streams=["contacts"]).status == "success"
        wait_for(lambda: len(receiver.at("/a")) >= 2, what="run.succeeded and records.changed")
        events = {e["type"]: e for e in _verified(receiver, "/a", secret)}
        assert events["run.succeeded"]["data"]["records_processed"] == 3
        changed = events["records.changed"]["data"]["entities"]["contacts"]
        assert (changed["changed"], len(changed["ids"]), changed["ids_truncated"]) == (3, 3, False)
        with app_db.tenant(vendor.org_id) as session:
            stored = set(session.scalars(select(HostEvent.id)))
            local = set(session.scalars(select(Contact.id)))
        assert {uuid.UUID(r.headers["webhook-id"]) for r in receiver.at("/a")} == stored
        assert {uuid.UUID(i["id"]) for i in changed["ids"]} == local

        with app_db.tenant(vendor.org_id) as session:
            session.add_all([Contact(first_name="Ann", email="ann@example.test"), Contact()])
        assert vendor.sync(streams=["contacts_export"]).status == "partial"
        wait_for(lambda: "run.partial" in _types(receiver, "/a", secret), what="run.partial")

        vendor.sim.revoke_tokens()
        assert vendor.sync(streams=["contacts"]).status == "failed"
        wait_for(
            lambda: {"run.failed", "integration.error"} <= set(_types(receiver, "/a", secret)),
            what="run.failed and integration.error",
        )
        error = next(
            e for e in _verified(receiver, "/a", secret) if e["type"] == "integration.error"
        )
        assert error["data"]["integration_id"] == str(vendor.integration_id)
    assert receiver.at("/other") == []
    with app_db.tenant(other.id) as session:
        assert session.scalars(select(HostEvent)).all() == []
    assert other_secret != secret


def _org_with_admin(db: Database) -> uuid.UUID:
    org = create_organization(db, f"Host {uuid.uuid4().hex[:6]}")
    create_user(db, org.id, "admin@host.test", is_admin=True)
    return org.id


def _emit(db: Database, org_id: uuid.UUID, reason: str) -> uuid.UUID:
    with db.tenant(org_id) as session:
        event_id = emit(session, org_id, "webhook.failed", {"reason": reason})
    assert event_id is not None
    return event_id


def _deliveries(db: Database, org_id: uuid.UUID, event_id: uuid.UUID) -> list[EventDelivery]:
    with db.tenant(org_id) as session:
        return list(
            session.scalars(select(EventDelivery).where(EventDelivery.event_id == event_id))
        )


def test_a_500_is_retried_and_the_same_webhook_id_comes_again(
    app_db: Database, receiver: Receiver
) -> None:
    org_id = _org_with_admin(app_db)
    endpoint, secret = add_endpoint(app_db, org_id, f"{receiver.url}/flaky", ["webhook.failed"])
    receiver.answers["/flaky"].extend([500])
    event_id = _emit(app_db, org_id, "first")
    wait_for(
        lambda: [d.status for d in _deliveries(app_db, org_id, event_id)] == ["succeeded"],
        what="the retry to succeed",
    )
    got = receiver.at("/flaky")
    assert [r.headers["webhook-id"] for r in got] == [str(event_id)] * 2
    assert [Webhook(secret).verify(r.body, r.headers)["data"] for r in got] == [
        {"reason": "first"}
    ] * 2
    with app_db.tenant(org_id) as session:
        attempts = session.execute(
            select(EventAttempt.number, EventAttempt.outcome, EventAttempt.status_code).order_by(
                EventAttempt.number
            )
        ).all()
    assert attempts == [(1, "failed", 500), (2, "succeeded", 200)]

    assert delivery.replay_event(app_db, org_id, event_id) == 1
    wait_for(lambda: len(receiver.at("/flaky")) == 3, what="the replay")
    assert receiver.at("/flaky")[-1].headers["webhook-id"] == str(event_id)


def test_an_endpoint_failing_every_attempt_is_disabled_and_the_admins_told(
    app_db: Database, receiver: Receiver
) -> None:
    org_id = _org_with_admin(app_db)
    endpoint, _ = add_endpoint(app_db, org_id, f"{receiver.url}/down", ["webhook.failed"])
    receiver.answers["/down"].extend([503] * 6)  # three attempts of each of two events
    first, second = _emit(app_db, org_id, "one"), _emit(app_db, org_id, "two")

    def disabled() -> EventEndpoint | None:
        with app_db.tenant(org_id) as session:
            row = session.get(EventEndpoint, endpoint.id)
            return row if row is not None and not row.enabled else None

    row = wait_for(disabled, what="the endpoint to be disabled")
    assert isinstance(row, EventEndpoint)
    assert "2 deliveries in a row failed" in (row.disabled_reason or "")
    for event_id in (first, second):
        [failed] = _deliveries(app_db, org_id, event_id)
        assert (failed.status, failed.attempts, failed.last_status_code) == ("failed", 3, 503)
    told = wait_for(lambda: _notifications(app_db, org_id), what="the admins' notification")
    assert set(told) == {"Event endpoint disabled"}
    with app_db.tenant(org_id) as session:
        assert emit(session, org_id, "webhook.failed", {"reason": "ignored"}) is None

    set_enabled(app_db, org_id, endpoint.id, True)
    assert delivery.replay_failed(app_db, org_id, utcnow().replace(year=2000)) == 2
    wait_for(
        lambda: all(
            d.status == "succeeded" for e in (first, second) for d in _deliveries(app_db, org_id, e)
        ),
        what="the replayed deliveries",
    )
    bodies = [json.loads(r.body)["data"]["reason"] for r in receiver.at("/down")]
    assert bodies.count("one") == 4 and bodies.count("two") == 4


def _notifications(db: Database, org_id: uuid.UUID) -> list[str]:
    with db.tenant(org_id) as session:
        return list(session.scalars(select(Notification.title)))


def test_a_webhook_delivery_that_fails_for_good_is_told_to_the_host(
    app_db: Database, receiver: Receiver
) -> None:
    with hubspot(app_db) as vendor:
        _, secret = add_endpoint(app_db, vendor.org_id, f"{receiver.url}/hooks", ["webhook.failed"])
        with app_db.tenant(vendor.org_id) as session:
            connector = loading.open_connector(session.get(Integration, vendor.integration_id))
        request = WebhookRequest("POST", "http://testserver/x", {}, b"not json", 0.0)
        stored = inbox.store(app_db, connector, request, "garbled", 1)
        assert inbox.process(app_db, vendor.org_id, stored.delivery_id).state == "failed"
        wait_for(lambda: receiver.at("/hooks"), what="webhook.failed")
        [event] = _verified(receiver, "/hooks", secret)
    assert event["type"] == "webhook.failed"
    assert event["data"]["delivery_id"] == str(stored.delivery_id)
    assert "does not parse" in event["data"]["reason"]


def test_a_notification_that_fails_for_good_is_told_to_the_host(
    app_db: Database, receiver: Receiver
) -> None:
    org = create_organization(app_db, f"Notify {uuid.uuid4().hex[:6]}")
    user = create_user(app_db, org.id, "someone@host.test")
    _, secret = add_endpoint(app_db, org.id, f"{receiver.url}/notes", ["notification.failed"])
    content = Content(title="Hello", message="Hi", channels=("email",))
    fanout.send(app_db, org.id, Audience(user_ids=(user.id,)), content)
    wait_for(lambda: receiver.at("/notes"), what="notification.failed")
    [event] = _verified(receiver, "/notes", secret)
    assert event["type"] == "notification.failed"
    assert (event["data"]["user_id"], event["data"]["channel"]) == (str(user.id), "email")
