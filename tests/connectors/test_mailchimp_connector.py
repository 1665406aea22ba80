"""Mailchimp auth (API key data centers, OAuth), audience settings, and the limit of 10
simultaneous connections shared by every client of one API key (docs/vendors/mailchimp.md)."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from connectors.http import Throttle, VendorClient
from connectors.mailchimp.connector import Mailchimp, data_center
from connectors.ratelimit import limiter_from_settings
from core.errors import ConfigError
from core.settings import get_settings
from models import Integration
from simulators.mailchimp.server import MailchimpSimulator

KEY = "0123456789abcdef0123456789abcdef-us21"


def connector(credentials: dict[str, Any], **settings: Any) -> Mailchimp:
    integration = Integration(id=uuid.uuid4(), settings={"list_id": "a6b5da1054", **settings})
    return Mailchimp(integration, credentials)


def sent(conn: Mailchimp) -> httpx.Request:
    """The request the connector's auth and base URL produce for GET /ping."""
    seen: list[httpx.Request] = []

    def vendor(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"health_status": "Everything's Chimpy!"})

    with VendorClient(
        base_url=conn.base_url, auth=conn.auth(), transport=httpx.MockTransport(vendor)
    ) as client:
        client.request("GET", "/ping")
    return seen[0]


def test_an_api_key_names_its_data_center_and_is_sent_as_basic_auth() -> None:
    request = sent(connector({"api_key": KEY}))
    assert str(request.url) == "https://us21.api.mailchimp.com/3.0/ping"
    assert request.headers["Authorization"].startswith("Basic ")
    assert httpx.BasicAuth("plugs", KEY)._auth_header == request.headers["Authorization"]
    assert data_center("abc-us6") == "us6"


@pytest.mark.parametrize(
    "bad", ["0123456789abcdef0123456789abcdef", "0123456789abcdef-", "key-us21/evil", "k-US 6"]
)
def test_an_api_key_without_a_data_center_is_refused_without_showing_it(bad: str) -> None:
    conn = connector({"api_key": bad})
    with pytest.raises(ConfigError, match="data-center suffix") as caught:
        conn.auth()
    assert bad not in str(caught.value)
    with pytest.raises(ConfigError):
        _ = conn.base_url


def test_an_oauth_token_is_a_bearer_on_the_data_center_of_its_metadata() -> None:
    request = sent(connector({"access_token": "tok-123"}, dc="us6"))
    assert str(request.url) == "https://us6.api.mailchimp.com/3.0/ping"
    assert request.headers["Authorization"] == "Bearer tok-123"
    from_metadata = connector({"access_token": "t"}, api_endpoint="https://us19.api.mailchimp.com")
    assert from_metadata.base_url == "https://us19.api.mailchimp.com/3.0"
    with pytest.raises(ConfigError, match="data center"):
        _ = connector({"access_token": "t"}).base_url


def test_the_base_url_setting_overrides_the_data_center() -> None:
    conn = connector({"api_key": KEY}, base_url="http://127.0.0.1:9/3.0/")
    assert conn.base_url == "http://127.0.0.1:9/3.0"


def test_missing_credentials_or_audience_are_clear_config_errors() -> None:
    with pytest.raises(ConfigError, match="api_key or an OAuth access_token"):
        connector({}).auth()
    conn = Mailchimp(Integration(id=uuid.uuid4(), settings={}), {"api_key": KEY})
    with pytest.raises(ConfigError, match="list_id"):
        conn.stream("members")
    with pytest.raises(ConfigError, match="status_if_new"):
        connector({"api_key": KEY}, status_if_new="resubscribe").export_stream("members_export")


def test_streams_are_bound_to_the_audience() -> None:
    conn = connector({"api_key": KEY}, page_size="250")
    members = conn.stream("members")
    assert (members.path, members.page_size) == ("/lists/a6b5da1054/members", 250)
    assert conn.stream("activity").paginator.list_id == "a6b5da1054"  # type: ignore[attr-defined]


def test_the_rate_limit_key_names_the_api_key_by_a_hash() -> None:
    first, second = connector({"api_key": KEY}), connector({"api_key": KEY})
    assert first.account_key() == second.account_key()
    assert KEY not in first.account_key() and "0123456789abcdef" not in first.account_key()
    assert connector({"api_key": "ffff-us21"}).account_key() != first.account_key()


def _burst(clients: list[VendorClient], calls: int) -> list[int]:
    start = threading.Barrier(calls)

    def call(number: int) -> int:
        start.wait()
        client = clients[number % len(clients)]
        return client.request("GET", "/lists/a6b5da1054/members").status_code

    with ThreadPoolExecutor(max_workers=calls) as pool:
        return list(pool.map(call, range(calls)))


def client_of(conn: Mailchimp, sim: MailchimpSimulator, *, throttled: bool) -> VendorClient:
    """The connector's client as :func:`connectors.loading.open_client` builds it (its
    declared limit on the shared Redis limiter, keyed by its account), in-process."""
    throttle = None
    if throttled:
        limiter = limiter_from_settings(get_settings())
        throttle = Throttle(limiter, f"mailchimp:{conn.account_key()}", conn.rate_limit)
    return VendorClient(
        base_url=conn.base_url,
        auth=conn.auth(),
        throttle=throttle,
        transport=httpx.MockTransport(sim),
    )


@pytest.mark.usefixtures("platform_env")
def test_clients_of_one_key_never_hold_more_than_ten_connections() -> None:
    sim = MailchimpSimulator(api_key=f"{uuid.uuid4().hex}-us21", latency=0.2)  # its own limit
    conns = [connector({"api_key": sim.api_key}) for _ in range(2)]  # two integrations
    clients = [client_of(conn, sim, throttled=True) for conn in conns for _ in range(2)]
    try:
        assert _burst(clients, 30) == [200] * 30
    finally:
        for client in clients:
            client.close()
    assert sim.max_in_flight == 10
    assert [r.status for r in sim.requests].count(429) == 0


def test_a_429_for_too_many_connections_is_retried() -> None:
    sim = MailchimpSimulator(latency=0.2)
    clients = [client_of(connector({"api_key": sim.api_key}), sim, throttled=False)]
    try:
        assert _burst(clients * 3, 24) == [200] * 24  # unthrottled: Mailchimp refuses some
    finally:
        clients[0].close()
    assert [r.status for r in sim.requests].count(429) > 0
    assert sim.max_in_flight > 10
