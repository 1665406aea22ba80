"""Mailchimp deliveries end to end: through the webhook receiver (``create_app()``), the
inbox and a real worker, into contacts and an ``integration_logs`` row per delivery."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models import Contact, IntegrationLog, WebhookDelivery
from models.session import Database
from tests.connectors.harness import Vendor, mailchimp
from workers.http import webhooks
from workers.http.app import create_app

SECRET = "s3cr3t-url-token"


@pytest.fixture
def receiver(app_db: Database, sync_worker: Any) -> Iterator[tuple[Vendor, TestClient]]:
    webhooks.forget_cached()
    credentials = {"api_key": "0123456789abcdef0123456789abcdef-us21", "webhook_secret": SECRET}
    with mailchimp(app_db, credentials=credentials) as vendor:
        with TestClient(create_app(), base_url="https://hooks.example.com") as client:
            yield vendor, client
    webhooks.forget_cached()


def processed(vendor: Vendor, timeout: float = 60) -> list[WebhookDelivery]:
    deadline = time.monotonic() + timeout
    while True:
        with vendor.db.tenant(vendor.org_id) as session:
            rows = list(session.scalars(select(WebhookDelivery)))
            session.expunge_all()
        if rows and all(row.status != "received" for row in rows):
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"deliveries not processed within {timeout}s")
        time.sleep(0.1)


def test_a_delivery_is_validated_stored_once_and_applied(
    receiver: tuple[Vendor, TestClient],
) -> None:
    vendor, client = receiver
    path = f"/webhooks/mailchimp/{vendor.integration_id}"
    validator = vendor.sim.validation_request_headers()
    assert client.get(f"{path}?secret={SECRET}", headers=validator).status_code == 200
    assert client.get(f"{path}?secret=wrong", headers=validator).status_code == 401

    member = vendor.sim.add_member("kim@example.test", merge_fields={"FNAME": "Kim"})
    headers, body = vendor.sim.webhook_delivery("subscribe", member)
    assert client.post(f"{path}?secret=wrong", content=body, headers=headers).status_code == 401
    assert client.post(path, content=body, headers=headers).status_code == 401
    bad = client.post(f"{path}?secret={SECRET}", content=b"not=a&form[", headers=headers)
    assert bad.status_code == 400
    for _ in range(2):  # Mailchimp retries a delivery it thinks failed
        answer = client.post(f"{path}?secret={SECRET}", content=body, headers=headers)
        assert answer.status_code == 200

    [delivery] = processed(vendor)
    assert delivery.status == "processed" and SECRET not in delivery.url
    with vendor.db.tenant(vendor.org_id) as session:
        kim = session.scalars(select(Contact)).one()
        run = session.get(IntegrationLog, delivery.run_id)
        assert (kim.email, kim.first_name) == ("kim@example.test", "Kim")
        assert (run.operation, run.status, run.records_processed, run.records_failed) == (
            "webhook",
            "success",
            1,
            0,
        )
