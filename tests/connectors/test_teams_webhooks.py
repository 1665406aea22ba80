"""Graph change notifications for Teams: subscriptions created, renewed and recreated, the
validationToken handshake, clientState checks, and notifications applied."""

from __future__ import annotations

import json
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from connectors import loading
from connectors.base import WebhookRequest
from connectors.teams import subscriptions
from connectors.teams.connector import Teams
from core.errors import AuthError
from models import Event, Integration, IntegrationLog
from models.session import Database
from models.webhooks import WebhookDelivery, WebhookSubscription
from runs import inbox
from tests.connectors.harness import Vendor, teams, wait_for_run
from workers.http.app import create_app

ORGANIZER = "organizer@contoso.test"


def _connector(vendor: Vendor) -> Teams:
    with vendor.db.tenant(vendor.org_id) as session:
        integration = session.get(Integration, vendor.integration_id)
        session.expunge(integration)
    return loading.open_connector(integration)  # type: ignore[return-value]


def _request(vendor: Vendor, body: bytes = b"", query: str = "") -> WebhookRequest:
    url = f"https://plugs.test/webhooks/teams/{vendor.integration_id}{query}"
    return WebhookRequest("POST", url, {"content-type": "application/json"}, body, time.time())


def _subscription(vendor: Vendor) -> WebhookSubscription:
    with vendor.db.tenant(vendor.org_id) as session:
        return session.scalars(select(WebhookSubscription)).one()


def _apply(vendor: Vendor, body: bytes) -> None:
    connector = _connector(vendor)
    request = _request(vendor, body)
    connector.verify_webhook(request)
    with vendor.db.tenant(vendor.org_id) as session:
        for event in connector.parse_webhook(request):
            assert inbox.apply_event(session, connector, event) is None


@pytest.fixture
def vendor(app_db: Database) -> Any:
    with teams(
        app_db, organizer=ORGANIZER, notification_url="https://plugs.test/webhooks/teams/x"
    ) as vendor:
        yield vendor
        with app_db.tenant(vendor.org_id) as session:  # its simulator is gone: stop following
            session.get(Integration, vendor.integration_id).is_active = False


def test_the_validation_token_is_answered_url_decoded_as_plain_text(vendor: Vendor) -> None:
    token = "Validation: Testing client application reachability for subscription Request-Id: 7f"
    query = "?validationToken=" + urllib.parse.quote(token)
    reply = _connector(vendor).webhook_handshake(_request(vendor, query=query))
    assert reply is not None
    assert (reply.status, reply.body, reply.media_type) == (200, token.encode(), "text/plain")
    assert _connector(vendor).webhook_handshake(_request(vendor, b'{"value": []}')) is None


def test_subscriptions_are_created_with_a_client_state_and_renewed_before_expiry(
    vendor: Vendor, app_db: Database
) -> None:
    row = _subscription(vendor)  # made when the integration was added
    assert subscriptions.renew_expiring(app_db).created == 0
    graph = vendor.sim.store.subscriptions[row.external_id]
    assert row.status == "active" and row.resource == f"/users/{ORGANIZER}/events"
    assert graph.record["notificationUrl"] == "https://plugs.test/webhooks/teams/x"
    state = _connector(vendor).credentials["client_state"].get_secret_value()
    assert graph.client_state == state and len(state) >= 32
    assert row.expires_at > datetime.now(UTC) + timedelta(minutes=4200)

    assert subscriptions.renew_expiring(app_db).renewed == 0  # not past half its life
    report = subscriptions.renew_expiring(app_db, within=timedelta(days=5))
    assert (report.created, report.renewed) == (0, 1)
    assert [r.method for r in vendor.sim.requests if "subscriptions" in r.path] == [
        "POST",
        "PATCH",
    ]
    assert _subscription(vendor).external_id == row.external_id


def test_a_subscription_graph_no_longer_has_is_created_again(
    vendor: Vendor, app_db: Database
) -> None:
    subscriptions.renew_expiring(app_db)
    old = _subscription(vendor).external_id
    del vendor.sim.store.subscriptions[old]  # expired at Graph
    assert subscriptions.renew_expiring(app_db, within=timedelta(days=5)).renewed == 1
    new = _subscription(vendor).external_id
    assert new != old and new in vendor.sim.store.subscriptions


def test_a_notification_with_a_wrong_client_state_is_refused(
    vendor: Vendor, app_db: Database
) -> None:
    subscriptions.renew_expiring(app_db)
    [event_id] = vendor.sim.add_events(ORGANIZER, 1)
    body = vendor.sim.notification(_subscription(vendor).external_id, "updated", event_id)
    connector = _connector(vendor)
    connector.verify_webhook(_request(vendor, body))
    forged = body.replace(b'"clientState": "', b'"clientState": "x')
    with pytest.raises(AuthError):
        connector.verify_webhook(_request(vendor, forged))


def test_lifecycle_notifications_renew_recreate_and_catch_up(
    vendor: Vendor, app_db: Database
) -> None:
    subscriptions.renew_expiring(app_db)
    first = _subscription(vendor).external_id
    _apply(vendor, vendor.sim.lifecycle(first, "reauthorizationRequired"))
    assert [r.method for r in vendor.sim.requests if "subscriptions" in r.path][-1] == "PATCH"

    _apply(vendor, vendor.sim.lifecycle(first, "subscriptionRemoved"))
    second = _subscription(vendor).external_id
    assert second != first and second in vendor.sim.store.subscriptions

    _apply(vendor, vendor.sim.lifecycle(second, "missed"))
    with app_db.tenant(vendor.org_id) as session:
        run = session.scalars(select(IntegrationLog)).one()
        assert run.request_data["trigger"] == "webhook" and run.request_data["streams"] == [
            "events"
        ]


def test_a_deleted_event_notification_soft_deletes_our_event(
    vendor: Vendor, app_db: Database, sync_worker: Any
) -> None:
    [event_id] = vendor.sim.add_events(ORGANIZER, 1)
    vendor.sync(streams=["events"])
    subscriptions.renew_expiring(app_db)
    body = vendor.sim.notification(_subscription(vendor).external_id, "deleted", event_id)
    _apply(vendor, body)
    _apply(vendor, body)  # twice: the same outcome
    assert vendor.count(Event) == 0 and vendor.count(Event, include_deleted=True) == 1


def test_a_notification_through_the_receiver_is_stored_without_its_client_state_and_applied(
    vendor: Vendor, app_db: Database, sync_worker: Any
) -> None:
    [event_id] = vendor.sim.add_events(ORGANIZER, 1)
    vendor.sync(streams=["events"])
    subscriptions.renew_expiring(app_db)
    vendor.sim.update_event(event_id, subject="Renamed in Outlook")
    body = vendor.sim.notification(_subscription(vendor).external_id, "updated", event_id)
    with TestClient(create_app()) as client:
        url = f"/webhooks/teams/{vendor.integration_id}"
        check = client.post(url + "?validationToken=abc%20def", content=b"")
        assert (check.status_code, check.text) == (200, "abc def")
        assert client.post(url, content=body).status_code == 202
        wrong = body.replace(b'"clientState": "', b'"clientState": "x')
        assert client.post(url, content=wrong).status_code == 401
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with app_db.tenant(vendor.org_id) as session:
            titles = session.scalars(select(Event.title)).all()
            processed = session.scalars(select(WebhookDelivery.status)).all()
        if titles == ["Renamed in Outlook"] and processed == ["processed"]:
            break
        time.sleep(0.2)
    assert titles == ["Renamed in Outlook"] and processed == ["processed"]
    state = _connector(vendor).credentials["client_state"].get_secret_value()
    assert state.encode() in body
    with app_db.tenant(vendor.org_id) as session:
        [stored] = session.execute(select(WebhookDelivery.__table__)).mappings().all()
    assert state not in repr(dict(stored)) and state.encode() not in bytes(stored["body"])
    assert json.loads(stored["body"])["value"][0]["clientState"] == "[redacted]"
    with app_db.tenant(vendor.org_id) as session:
        runs = session.scalars(select(IntegrationLog).order_by(IntegrationLog.created_at)).all()
    assert [r.operation for r in runs].count("webhook") == 1
    for run in runs:
        wait_for_run(app_db, vendor.org_id, run.id)


def _our_event(vendor: Vendor, title: str, status: str = "published") -> Any:
    """An event of ours asking for Teams, a day from now."""
    start = datetime.now(UTC) + timedelta(days=1)
    with vendor.db.tenant(vendor.org_id) as session:
        event = Event(
            title=title,
            event_type="meeting",
            status=status,
            start_date=start,
            end_date=start + timedelta(hours=1),
            settings={"meeting_platform": "teams"},
        )
        session.add(event)
        session.flush()
        return event.id


def _graph_id(vendor: Vendor, event_id: Any) -> str:
    with vendor.db.tenant(vendor.org_id) as session:
        row = session.scalars(
            select(Event).where(Event.id == event_id).execution_options(include_deleted=True)
        ).one()
        return row.venue_details["online_meeting"]["event_id"]


def test_the_deleted_notification_echoing_our_own_delete_leaves_our_events_as_they_are(
    vendor: Vendor, app_db: Database, sync_worker: Any
) -> None:
    cancelled, dropped = _our_event(vendor, "Cancelled here"), _our_event(vendor, "Dropped here")
    vendor.sync(streams=["meetings"])
    graph_ids = [_graph_id(vendor, cancelled), _graph_id(vendor, dropped)]
    with app_db.tenant(vendor.org_id) as session:
        session.get(Event, cancelled).status = "cancelled"
        session.get(Event, dropped).soft_delete()
    deleted = vendor.sync(streams=["meetings"])
    assert (deleted.status, deleted.records_processed) == ("success", 2)
    assert vendor.sim.store.events == {}  # our write-back deleted both calendar events

    subscriptions.renew_expiring(app_db)
    for graph_id in graph_ids:  # what Graph then sends, each twice
        body = vendor.sim.notification(_subscription(vendor).external_id, "deleted", graph_id)
        _apply(vendor, body)
        _apply(vendor, body)
    with app_db.tenant(vendor.org_id) as session:
        kept = session.get(Event, cancelled)
        assert (kept.status, kept.is_deleted) == ("cancelled", False)
        assert kept.venue_details["online_meeting"]["event_id"] == graph_ids[0]
    assert vendor.count(Event) == 1 and vendor.count(Event, include_deleted=True) == 2
    again = vendor.sync(streams=["meetings"])  # nothing to push: the echo changed nothing
    assert (again.status, again.records_processed) == ("success", 0)


def test_a_meeting_deleted_in_teams_soft_deletes_our_event_that_is_still_on(
    vendor: Vendor, app_db: Database, sync_worker: Any
) -> None:
    event_id = _our_event(vendor, "Still on here")
    vendor.sync(streams=["meetings"])
    graph_id = _graph_id(vendor, event_id)
    vendor.sim.store.delete_event(graph_id)  # someone deleted it in Outlook or Teams
    subscriptions.renew_expiring(app_db)
    _apply(vendor, vendor.sim.notification(_subscription(vendor).external_id, "deleted", graph_id))
    assert vendor.count(Event) == 0 and vendor.count(Event, include_deleted=True) == 1
