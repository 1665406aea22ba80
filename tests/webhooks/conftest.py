"""A HubSpot customer whose webhooks point at the receiver, served in-process."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from models import WebhookDelivery
from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from tests.connectors.harness import Vendor, hubspot
from workers.http import webhooks
from workers.http.app import create_app

SECRET = "8a2f5c1e-3b7d-4e9a-b6c0-1d2e3f4a5b6c"
BASE = "http://testserver"


@dataclass
class Hooked:
    """A HubSpot integration with webhooks, and a client of the receiver."""

    vendor: Vendor
    client: TestClient
    secret: str = SECRET

    @property
    def sim(self) -> HubSpotSimulator:
        return self.vendor.sim  # type: ignore[return-value]

    @property
    def path(self) -> str:
        return f"/webhooks/hubspot/{self.vendor.integration_id}"

    def signed(self, events: list[dict[str, Any]], **kwargs: Any) -> tuple[dict[str, str], bytes]:
        return self.sim.webhook_delivery(events, BASE + self.path, self.secret, **kwargs)

    def wait_processed(self, timeout: float = 60) -> list[WebhookDelivery]:
        """The deliveries once the worker has processed every one of them."""
        deadline = time.monotonic() + timeout
        while True:
            with self.vendor.db.tenant(self.vendor.org_id) as session:
                rows = list(session.scalars(select(WebhookDelivery)))
                session.expunge_all()
            if rows and all(row.status != "received" for row in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"deliveries not processed within {timeout}s: {rows}")
            time.sleep(0.1)

    def post(self, events: list[dict[str, Any]], **kwargs: Any) -> httpx.Response:
        headers, body = self.signed(events, **kwargs)
        return self.client.post(self.path, content=body, headers=headers)


@pytest.fixture
def hooked(app_db: Database, sync_worker: Any) -> Iterator[Hooked]:
    webhooks.forget_cached()
    credentials = {"private_app_token": "pat-na1-simulator", "client_secret": SECRET}
    with hubspot(app_db, credentials=credentials, rate_limit="1000") as vendor:
        with TestClient(create_app(), base_url=BASE) as client:
            yield Hooked(vendor, client)
    webhooks.forget_cached()
