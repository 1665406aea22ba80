"""The real receiver (`plugs webhooks`, uvicorn in its own process) and a real worker.

* 1,000 distinct events, each delivered 10 times (HubSpot's retries, each signed anew),
  shuffled, over 50 concurrent connections: exactly 1,000 inbox rows and 1,000 effects.
* The database goes away while requests arrive: 503s and never a 2xx without a stored
  row; once it is back, everything stored is processed.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from sqlalchemy import func, select

from models import Contact, WebhookDelivery
from models.session import Database
from tests import services
from tests.connectors.harness import Vendor, hubspot
from tests.webhooks.conftest import SECRET
from tests.webhooks.proxy import Proxy, proxy_to


@pytest.fixture(scope="module")
def receiver(
    platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    handle = services.start_http(platform_env, tmp_path_factory.mktemp("receiver"))
    yield handle.env["base_url"]
    handle.stop()


@pytest.fixture
def customer(app_db: Database, sync_worker: Any) -> Iterator[Vendor]:
    credentials = {"private_app_token": "pat-na1-simulator", "client_secret": SECRET}
    with hubspot(app_db, credentials=credentials, rate_limit="1000") as vendor:
        yield vendor


def _deliveries(vendor: Vendor, base_url: str, events: list[dict[str, Any]]) -> list[dict]:
    path = f"/webhooks/hubspot/{vendor.integration_id}"
    requests = []
    for event in events:
        headers, body = vendor.sim.webhook_delivery([event], base_url + path, SECRET)
        requests.append({"url": path, "content": body, "headers": headers})
    return requests


async def _send_all(base_url: str, requests: list[dict], connections: int) -> list[int]:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    gate = asyncio.Semaphore(connections)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def send(request: dict) -> int:
            async with gate:
                response = await client.post(**request)
                return response.status_code

        return await asyncio.gather(*(send(r) for r in requests))


def _wait_processed(vendor: Vendor, expected: int, timeout: float = 240) -> list[WebhookDelivery]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        with vendor.db.tenant(vendor.org_id) as session:
            rows = list(session.scalars(select(WebhookDelivery)))
            session.expunge_all()
        if len(rows) >= expected and all(r.status != "received" for r in rows):
            return rows
        if time.monotonic() > deadline:
            done = sum(r.status != "received" for r in rows)
            raise AssertionError(f"{done} of {len(rows)} deliveries processed in {timeout}s")
        time.sleep(0.25)


def test_a_thousand_events_ten_times_each_are_stored_and_applied_once(
    customer: Vendor, receiver: str
) -> None:
    ids = customer.sim.add_contacts(1000)
    customer.sync()
    audit_before = customer.audit_rows()
    events = [customer.sim.contact_event("deletion", i) for i in ids]
    retries = [e | {"attemptNumber": attempt} for e in events for attempt in range(10)]
    random.Random(7).shuffle(retries)

    statuses = asyncio.run(_send_all(receiver, _deliveries(customer, receiver, retries), 50))

    assert len(statuses) == 10_000 and set(statuses) == {200}
    rows = _wait_processed(customer, 1000)
    assert len(rows) == 1000 and {r.status for r in rows} == {"processed"}
    assert customer.count(Contact) == 0
    assert customer.count(Contact, include_deleted=True) == 1000
    assert customer.audit_rows() - audit_before == 1000  # one soft delete per contact


def _through(url: str, proxy: Proxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def test_with_the_database_gone_the_answer_is_503_and_nothing_is_lost(
    customer: Vendor, platform_env: dict[str, str], tmp_path: Path
) -> None:
    ids = customer.sim.add_contacts(60)
    customer.sync()
    app_url = urlsplit(platform_env["PLUGS_DATABASE_URL"])
    with proxy_to(app_url.hostname or "127.0.0.1", app_url.port or 5432) as proxy:
        env = {
            **platform_env,
            "PLUGS_DATABASE_URL": _through(platform_env["PLUGS_DATABASE_URL"], proxy),
            "PLUGS_SYSTEM_DATABASE_URL": _through(platform_env["PLUGS_SYSTEM_DATABASE_URL"], proxy),
        }
        handle = services.start_http(env, tmp_path)
        base = handle.env["base_url"]
        try:
            events = [customer.sim.contact_event("deletion", i) for i in ids]
            before = asyncio.run(_send_all(base, _deliveries(customer, base, events[:20]), 10))
            proxy.cut()
            during = asyncio.run(_send_all(base, _deliveries(customer, base, events[20:40]), 10))
            proxy.restore()
            # the vendor retries what was refused, and goes on sending
            after = asyncio.run(_send_all(base, _deliveries(customer, base, events[20:]), 10))
        finally:
            handle.stop()

    assert set(before) == {200} and set(after) == {200}
    assert set(during) == {503}, during
    rows = _wait_processed(customer, 60)
    assert len(rows) == 60 and {r.status for r in rows} == {"processed"}
    assert customer.count(Contact) == 0
    with customer.db.tenant(customer.org_id) as session:
        stored = session.scalar(select(func.count()).select_from(WebhookDelivery))
    assert stored == 60
