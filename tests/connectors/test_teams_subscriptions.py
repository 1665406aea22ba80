"""Graph subscriptions are made when a Teams integration is added or changed, ask for a
little less than Graph's longest lifetime (Graph checks it against its own clock), and one
Graph refuses ends ``failed`` with Graph's reason and is made on the next round."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from connectors.integrations import update_integration
from connectors.teams import subscriptions
from core.settings import get_settings
from models import Integration
from models.session import Database
from models.webhooks import WebhookSubscription
from simulators.teams.server import GraphSimulator
from simulators.teams.store import MAX_SUBSCRIPTION_MINUTES, expiry_in
from tests.connectors.harness import ORGANIZER, Vendor, teams

TEMPLATE = "https://plugs.test/webhooks/teams/{integration_id}"


def rows(vendor: Vendor) -> list[WebhookSubscription]:
    with vendor.db.tenant(vendor.org_id) as session:
        return list(session.scalars(select(WebhookSubscription)))


def created(vendor: Vendor) -> list[dict[str, str]]:
    """The bodies of the subscriptions Graph was asked to create."""
    return [
        json.loads(r.body)
        for r in vendor.sim.requests
        if r.method == "POST" and r.path.endswith("/subscriptions")
    ]


@pytest.fixture
def stop_following(app_db: Database) -> Iterator[list[Vendor]]:
    """Vendors whose integration stops following changes once its simulator is gone (the
    renewal round reads every active integration)."""
    vendors: list[Vendor] = []
    yield vendors
    for vendor in vendors:
        with app_db.tenant(vendor.org_id) as session:
            integration = session.get(Integration, vendor.integration_id)
            assert integration is not None
            integration.is_active = False


def test_graph_refuses_an_expiry_past_its_own_clock_plus_the_longest_lifetime() -> None:
    ours = time.time()
    behind = GraphSimulator(clock=lambda: ours - 2)  # Graph's clock 2 s behind ours
    body = {
        "changeType": "created",
        "notificationUrl": "https://plugs.test/x",
        "resource": f"/users/{ORGANIZER}/events",
    }
    with pytest.raises(ValueError, match="can only be 4230 minutes in the future"):
        behind.store.create_subscription(
            body | {"expirationDateTime": expiry_in(ours, MAX_SUBSCRIPTION_MINUTES)}, ours - 2
        )
    asked = expiry_in(ours, subscriptions.DEFAULT_MINUTES)
    assert behind.store.create_subscription(body | {"expirationDateTime": asked}, ours - 2)


def test_adding_the_integration_subscribes_with_the_templated_url_graph_behind_us(
    app_db: Database, stop_following: list[Vendor]
) -> None:
    sim = GraphSimulator(clock=lambda: time.time() - 120)  # Graph two minutes behind
    with teams(app_db, sim=sim, notification_url=TEMPLATE) as vendor:
        stop_following.append(vendor)
        [row] = rows(vendor)  # made by `add`, no renewal round needed
        assert (row.status, row.last_error) == ("active", None) and row.external_id
        graph = sim.store.subscriptions[row.external_id]
        expected = f"https://plugs.test/webhooks/teams/{vendor.integration_id}"
        assert graph.record["notificationUrl"] == expected
        assert graph.record["lifecycleNotificationUrl"] == expected
        [body] = created(vendor)
        asked = datetime.fromisoformat(body["expirationDateTime"].replace("Z", "+00:00"))
        longest = timedelta(minutes=MAX_SUBSCRIPTION_MINUTES)
        assert datetime.now(UTC) + longest - timedelta(minutes=30) < asked
        assert asked < datetime.now(UTC) + longest - subscriptions.SKEW_MARGIN / 2
        assert subscriptions.renew_expiring(app_db).created == 0  # nothing left to make


def test_a_refused_subscription_ends_failed_with_the_reason_and_is_made_next_round(
    app_db: Database, stop_following: list[Vendor]
) -> None:
    sim = GraphSimulator()
    sim.store.max_subscription_minutes = 60  # Graph refuses the lifetime we ask for
    with teams(app_db, sim=sim, notification_url=TEMPLATE) as vendor:
        stop_following.append(vendor)
        [row] = rows(vendor)
        assert (row.status, row.external_id) == ("failed", None)
        assert "can only be 60 minutes in the future" in (row.last_error or "")

        sim.store.max_subscription_minutes = MAX_SUBSCRIPTION_MINUTES
        subscriptions.renew_expiring(app_db)
        [row] = rows(vendor)
        assert (row.status, row.last_error) == ("active", None)
        assert row.external_id in sim.store.subscriptions


def test_setting_the_url_later_subscribes_at_once(
    app_db: Database, stop_following: list[Vendor]
) -> None:
    with teams(app_db) as vendor:
        stop_following.append(vendor)
        assert rows(vendor) == [] and created(vendor) == []
        update_integration(app_db, vendor.integration_id, settings={"notification_url": TEMPLATE})
        [row] = rows(vendor)
        assert row.status == "active" and row.external_id in vendor.sim.store.subscriptions
        assert len(created(vendor)) == 1


def test_the_url_is_derived_from_the_public_base_url(monkeypatch: pytest.MonkeyPatch) -> None:
    integration = Integration(id=uuid.uuid4(), provider="teams", settings={})
    assert subscriptions.notification_url(integration) is None
    monkeypatch.setenv("PLUGS_PUBLIC_BASE_URL", "https://plugs.example.com/")
    get_settings.cache_clear()
    try:
        expected = f"https://plugs.example.com/webhooks/teams/{integration.id}"
        assert subscriptions.notification_url(integration) == expected
        integration.settings = {"notification_url": "https://hooks.example.com/t/{integration_id}"}
        assert subscriptions.notification_url(integration) == (
            f"https://hooks.example.com/t/{integration.id}"
        )
    finally:
        monkeypatch.delenv("PLUGS_PUBLIC_BASE_URL")
        get_settings.cache_clear()
