"""The inbox over time: a delivery that keeps failing is retried and then marked failed
with its reason; `plugs webhooks replay` processes it again; old deliveries are pruned."""

from __future__ import annotations

import json
import os
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from connectors import loading
from connectors.base import WebhookRequest
from core.errors import RetryableError
from core.settings import get_settings
from models import Contact, Integration, IntegrationLog, WebhookDelivery
from models.base import utcnow
from models.session import Database
from runs import inbox
from tests.webhooks.conftest import Hooked


def _store_unannounced(hooked: Hooked, db: Database, events: list[dict], key: str):  # type: ignore[no-untyped-def]
    """A stored delivery no worker was told about (as if its message was lost)."""
    with db.tenant(hooked.vendor.org_id) as session:
        connector = loading.open_connector(session.get(Integration, hooked.vendor.integration_id))
    request = WebhookRequest("POST", "http://testserver/x", {}, json.dumps(events).encode(), 0.0)
    return inbox.store(db, connector, request, key, len(events))


@pytest.fixture
def two_attempts(app_db: Database):  # type: ignore[no-untyped-def]
    """This process gives a delivery two attempts (the shared worker keeps its eight)."""
    os.environ["PLUGS_WEBHOOK_MAX_ATTEMPTS"] = "2"
    get_settings.cache_clear()
    yield app_db
    del os.environ["PLUGS_WEBHOOK_MAX_ATTEMPTS"]
    get_settings.cache_clear()


def test_a_delivery_that_keeps_failing_is_retried_then_failed_with_the_reason(
    hooked: Hooked,
    two_attempts: Database,
    plugs,
    platform_env: dict[str, str],  # type: ignore[no-untyped-def]
) -> None:
    db = two_attempts
    [contact_id] = hooked.sim.add_contacts(1)
    stored = _store_unannounced(
        hooked, db, [hooked.sim.contact_event("creation", contact_id)], "keeps-failing"
    )
    hooked.sim.fail_next(10, status=503)  # the vendor is down for two attempts (5 tries each)

    for _ in range(2):
        with pytest.raises(RetryableError):
            inbox.process(db, stored.organization_id, stored.delivery_id)
    final = inbox.process(db, stored.organization_id, stored.delivery_id)

    assert final.state == "failed"
    with db.tenant(hooked.vendor.org_id) as session:
        delivery = session.get(WebhookDelivery, stored.delivery_id)
        assert (delivery.status, delivery.attempts) == ("failed", 3)
        assert "gave up after 2 attempts" in delivery.last_error
        assert "503" in delivery.last_error
        run = session.get(IntegrationLog, delivery.run_id)
        assert (run.operation, run.status, run.records_failed) == ("webhook", "failed", 1)

    # the vendor is fine again: the operator replays the failed deliveries
    result = plugs(
        "webhooks", "replay", "--integration", str(hooked.vendor.integration_id), "--failed",
        env=platform_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "1 deliveries enqueued" in result.stdout
    [replayed] = hooked.wait_processed()
    assert replayed.status == "processed" and hooked.vendor.count(Contact) == 1


def test_finished_deliveries_are_pruned_after_the_retention_and_open_ones_kept(
    hooked: Hooked, app_db: Database
) -> None:
    old = _store_unannounced(hooked, app_db, [{"eventId": 1}], "old-and-done")
    waiting = _store_unannounced(hooked, app_db, [{"eventId": 2}], "old-but-waiting")
    long_ago = utcnow() - timedelta(days=40)
    with app_db.tenant(hooked.vendor.org_id) as session:
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id.in_([old.delivery_id, waiting.delivery_id]))
            .values(received_at=long_ago, updated_at=utcnow())
        )
        session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == old.delivery_id)
            .values(status="processed")
        )

    assert inbox.prune(app_db, retention_days=30) >= 1  # the platform's, this one's included
    assert inbox.prune(app_db, retention_days=30) == 0
    with app_db.tenant(hooked.vendor.org_id) as session:
        left = set(session.scalars(select(WebhookDelivery.id)))
    assert left == {waiting.delivery_id}
