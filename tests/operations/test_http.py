"""/metrics, /healthz and /readyz as a scraper and an orchestrator see them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from celery import Celery
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import delete
from starlette.applications import Starlette
from starlette.testclient import TestClient

from models import OutboxMessage
from models.base import utcnow
from models.session import Database
from models.webhooks import WebhookDelivery
from tests import services
from tests.connectors.harness import hubspot
from tests.operations.conftest import settings_env
from workers.http import health, metrics
from workers.metrics import queue_depths

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture
def client() -> Iterator[TestClient]:
    app = Starlette(routes=[*health.routes, *metrics.routes])
    with TestClient(app) as test_client:
        yield test_client


def scrape(client: TestClient) -> Samples:
    response = client.get("/metrics")
    assert response.status_code == 200
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_show_runs_records_durations_and_lag_after_a_sync(
    app_db: Database, sync_worker: services.WorkerProcess, client: TestClient
) -> None:
    before = scrape(client)
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(12)
        assert vendor.sync(full_refresh=True).status == "success"
    after = scrape(client)
    runs = dict(provider="hubspot", operation="sync", status="success")
    assert value(after, "plugs_sync_runs", **runs) == value(before, "plugs_sync_runs", **runs) + 1
    processed = dict(provider="hubspot", outcome="processed")
    assert (
        value(after, "plugs_sync_records", **processed)
        - value(before, "plugs_sync_records", **processed)
        == 12
    )
    count = "plugs_sync_run_duration_seconds_count"  # a histogram's names, not _gcount
    assert value(after, count, provider="hubspot") == value(before, count, provider="hubspot") + 1
    assert not any(name.endswith(("_gcount", "_gsum")) for name, _ in after)
    assert ("plugs_sync_run_duration_seconds_sum", frozenset({("provider", "hubspot")})) in after
    assert ("plugs_sync_lag_seconds", frozenset({("provider", "hubspot")})) in after
    assert value(after, "plugs_metrics_source_up", source="database") == 1
    assert value(after, "plugs_metrics_source_up", source="broker") == 1
    assert {("queue", q) for q in ("syncs", "webhooks")} <= {
        label for (name, labels) in after if name == "plugs_queue_depth" for label in labels
    }
    assert not any("organization_id" in dict(labels) for _, labels in after)


def test_metrics_count_the_inbox_and_outbox_backlogs(app_db: Database, client: TestClient) -> None:
    with hubspot(app_db) as vendor:
        before = scrape(client)
        with app_db.tenant(vendor.org_id) as session:
            for number in range(2):
                session.add(
                    WebhookDelivery(
                        integration_id=vendor.integration_id,
                        provider="hubspot",
                        delivery_id=f"ops-{number}",
                        method="POST",
                        url="/webhooks/hubspot",
                        headers={},
                        body=b"[]",
                        received_at=utcnow() - timedelta(minutes=5),
                    )
                )
            session.add(
                OutboxMessage(
                    task_name="maintenance.ping", available_at=utcnow() + timedelta(hours=1)
                )
            )
        try:
            after = scrape(client)
        finally:
            with app_db.tenant(vendor.org_id) as session:
                session.execute(delete(WebhookDelivery))
                session.execute(delete(OutboxMessage))
    inbox = "plugs_webhook_inbox_backlog"
    assert value(after, inbox, provider="hubspot") - value(before, inbox, provider="hubspot") == 2
    assert value(after, "plugs_webhook_inbox_oldest_seconds", provider="hubspot") >= 300
    parked = "plugs_outbox_backlog"
    assert value(after, parked, state="parked") - value(before, parked, state="parked") == 1


def test_queue_depth_counts_waiting_messages_on_redis_and_the_filesystem_broker(
    redis_url: str, tmp_path: Path
) -> None:
    other, release = services.claim_redis_db(redis_url.rsplit("/", 1)[0])
    folder = str(tmp_path / "broker")
    (tmp_path / "broker").mkdir()
    brokers = {
        other: {},
        "filesystem://localhost//": {
            "data_folder_in": folder,
            "data_folder_out": folder,
            "control_folder": f"{folder}/control",
        },
    }
    try:
        for url, options in brokers.items():
            app = Celery("ops-depth", broker=url, broker_transport_options=options)
            for _ in range(3):
                app.send_task("sync.page", args=["a", "b"], queue="syncs")
            app.send_task("maintenance.ping", queue="maintenance")
            depths = queue_depths(app)
            app.close()
            assert (depths["syncs"], depths["maintenance"], depths["webhooks"]) == (3, 1, 0), url
    finally:
        release()


def test_readyz_answers_200_when_database_broker_and_schema_are_fine(
    platform_env: dict[str, str], client: TestClient
) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "ready"
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_answers_503_naming_the_database_when_it_is_unreachable(
    platform_env: dict[str, str], client: TestClient
) -> None:
    unreachable = "postgresql+psycopg://plugs_app:canary-pw-123456@127.0.0.1:1/plugs"
    system = "postgresql+psycopg://plugs_system:canary-pw-654321@127.0.0.1:1/plugs"
    with settings_env(PLUGS_DATABASE_URL=unreachable, PLUGS_SYSTEM_DATABASE_URL=system):
        response = client.get("/readyz")
        samples = scrape(client)
        assert client.get("/healthz").status_code == 200
    assert response.status_code == 503
    body = response.json()
    assert body["failed"] == ["database", "migrations"]
    assert body["checks"]["broker"]["ok"] is True
    assert "canary-pw-123456" not in response.text
    assert "canary-pw-654321" not in response.text
    assert value(samples, "plugs_metrics_source_up", source="database") == 0


def test_readyz_answers_503_when_the_schema_is_not_at_head(
    platform_env: dict[str, str], client: TestClient, tmp_path: Path
) -> None:
    with settings_env(PLUGS_DATABASE_URL=f"sqlite:///{tmp_path / 'empty.sqlite3'}"):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["migrations"]
