"""The shared HTTP client: retries, vendor waits, error mapping, scrubbing, the SSRF guard.

Vendors are faked at the HTTP boundary only (httpx.MockTransport); waits go to a recorder
instead of the clock, so a two-hour Retry-After costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from connectors.http import (
    STATUS_ACTIONS,
    Action,
    Throttle,
    UnsafeURLError,
    VendorClient,
    action_for,
    check_url,
    parse_retry_after,
    rate_limit_wait,
)
from connectors.http_rate_headers import seconds_until_utc_midnight
from connectors.ratelimit import Concurrency, InProcessRateLimiter, Limit
from core.errors import (
    AuthError,
    ConfigError,
    FatalError,
    RateLimitedError,
    RetryableError,
    SkippableRecordError,
)

HUBSPOT = "https://api.hubapi.com"
CANARY = "canary-9f3b2c7d1e"
JSON = {"Content-Type": "application/json;charset=utf-8"}


class Vendor:
    """A scripted vendor: answers in order (the last one repeats) and records requests.

    An answer is an :class:`httpx.Response` or an httpx exception class to raise.
    """

    def __init__(self, *answers: httpx.Response | type[httpx.TransportError]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, type):
            raise answer("the vendor did not answer", request=request)
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)


def reply(status: int, headers: dict[str, str] | None = None, json: Any = None) -> httpx.Response:
    if json is None:
        return httpx.Response(status, headers=headers)
    return httpx.Response(status, headers={**JSON, **(headers or {})}, json=json)


def hubspot_429(policy: str, message: str) -> httpx.Response:
    body = {"status": "error", "message": message, "errorType": "RATE_LIMIT", "policyName": policy}
    return reply(429, json=body)


OK = reply(200, json={"results": []})


@pytest.fixture
def waits() -> list[float]:
    return []


@pytest.fixture
def client_for(waits: list[float]) -> Iterator[Callable[..., VendorClient]]:
    clients: list[VendorClient] = []

    def make(vendor: Vendor, **options: Any) -> VendorClient:
        options.setdefault("allow_private", False)
        client = VendorClient(
            name="hubspot",
            base_url=HUBSPOT,
            transport=httpx.MockTransport(vendor),
            sleep=waits.append,
            **options,
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


# --- vendor waits ---------------------------------------------------------------------------


def test_a_retry_after_in_seconds_is_slept_before_the_next_attempt(client_for, waits):
    vendor = Vendor(reply(429, {"Retry-After": "3"}), OK)
    response = client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    assert response.status_code == 200
    assert waits == [3.0]
    assert len(vendor.requests) == 2


def test_a_retry_after_http_date_is_slept_until_that_moment(client_for, waits):
    moment = format_datetime(datetime.now(UTC) + timedelta(seconds=6), usegmt=True)
    vendor = Vendor(reply(503, {"Retry-After": moment}), OK)
    client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    assert len(waits) == 1 and 4.0 < waits[0] <= 6.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("120", 120.0),
        (" 1.5 ", 1.5),
        ("-5", 0.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("2015-10-21T07:29:00Z", 60.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_retry_after_reads_seconds_and_dates_and_ignores_garbage(value, seconds):
    now = datetime(2015, 10, 21, 7, 28, tzinfo=UTC)
    assert parse_retry_after(value, now) == seconds


def test_a_429_asking_for_two_hours_raises_rate_limited_at_once_without_sleeping(client_for, waits):
    vendor = Vendor(reply(429, {"Retry-After": "7200"}), OK)
    with pytest.raises(RateLimitedError) as caught:
        client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    assert caught.value.retry_after == 7200
    assert caught.value.status_code == 429
    assert waits == [] and len(vendor.requests) == 1


def test_a_503_asking_for_longer_than_the_cap_is_handed_back_as_retryable(client_for, waits):
    vendor = Vendor(reply(503, {"Retry-After": "600"}), OK)
    with pytest.raises(RetryableError) as caught:
        client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    assert caught.value.retry_after == 600 and waits == []


def test_a_hubspot_ten_secondly_429_waits_ten_seconds_then_retries(client_for, waits):
    limit = hubspot_429("TEN_SECONDLY_ROLLING", "You have reached your ten_secondly_rolling limit.")
    vendor = Vendor(limit, OK)
    assert client_for(vendor).request("GET", "/crm/v3/objects/contacts").status_code == 200
    assert waits == [10.0]


def test_a_hubspot_search_secondly_429_waits_one_second(client_for, waits):
    vendor = Vendor(hubspot_429("SECONDLY", "You have reached your secondly limit."), OK)
    client_for(vendor).request("POST", "/crm/v3/objects/contacts/search", json={})
    assert waits == [1.0]


def _ends_at_a_utc_midnight(wait: float, before: datetime, after: datetime) -> bool:
    """Whether ``wait`` seconds, counted from a moment between ``before`` and ``after``,
    end at a UTC midnight no more than a day away (whatever the hour of the run, even
    when midnight falls between ``before`` and ``after``)."""
    slack = timedelta(milliseconds=1)
    latest = after + timedelta(seconds=wait) + slack
    midnight = latest.replace(hour=0, minute=0, second=0, microsecond=0)
    return 0 < wait <= 86_400 and before + timedelta(seconds=wait) - slack <= midnight


def test_a_hubspot_daily_429_raises_at_once_until_utc_midnight(client_for, waits):
    vendor = Vendor(hubspot_429("DAILY", "You have reached your daily limit."), OK)
    before = datetime.now(UTC)
    with pytest.raises(RateLimitedError) as caught:
        client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    after = datetime.now(UTC)
    wait = caught.value.retry_after
    assert wait is not None and _ends_at_a_utc_midnight(wait, before, after)
    assert waits == [] and len(vendor.requests) == 1


@pytest.mark.parametrize(
    ("now", "seconds"),
    [
        (datetime(2026, 12, 5, 23, 59, 59, tzinfo=UTC), 1.0),
        (datetime(2026, 12, 31, 22, 41, tzinfo=UTC), 4740.0),  # into the next year
        (datetime(2026, 3, 29, 0, 0, tzinfo=UTC), 86_400.0),  # a midnight: the next one
        (datetime(2026, 3, 29, 1, 30, tzinfo=ZoneInfo("Europe/Paris")), 84_600.0),
    ],
)
def test_seconds_until_utc_midnight_counts_to_the_next_one(now, seconds):
    assert seconds_until_utc_midnight(now) == seconds


def test_hubspot_remaining_zero_without_a_body_waits_the_interval(client_for, waits):
    headers = {
        "X-HubSpot-RateLimit-Remaining": "0",
        "X-HubSpot-RateLimit-Interval-Milliseconds": "2500",
    }
    client_for(Vendor(reply(429, headers), OK)).request("GET", "/crm/v3/objects/contacts")
    assert waits == [2.5]


def test_a_zoom_per_second_429_without_retry_after_waits_one_second(client_for, waits):
    zoom_429 = reply(429, {"X-RateLimit-Type": "QPS", "X-RateLimit-Category": "Light"})
    client_for(Vendor(zoom_429, OK)).request("GET", "/v2/users")
    assert waits == [1.0]


def test_a_zoom_daily_429_is_parked_until_its_retry_after_date(client_for, waits):
    before = datetime.now(UTC)
    # a UTC midnight a day or two away, whatever the hour of the run
    until = (before + timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    retry_after = until.strftime("%Y-%m-%dT%H:%M:%SZ")
    zoom_daily = reply(429, {"X-RateLimit-Type": "Daily-limit", "Retry-After": retry_after})
    with pytest.raises(RateLimitedError) as caught:
        client_for(Vendor(zoom_daily)).request("GET", "/v2/users")
    after = datetime.now(UTC)
    wait = caught.value.retry_after
    assert wait is not None and until - after <= timedelta(seconds=wait) <= until - before
    assert waits == []


@pytest.mark.parametrize("reset", ["1445412530", "30"])
def test_a_generic_rate_limit_reset_is_read_as_epoch_or_seconds(reset):
    now = datetime.fromtimestamp(1445412500, UTC)
    response = reply(200, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset})
    assert rate_limit_wait(response, now) == 30.0


def test_a_generic_rate_limit_reset_is_no_wait_while_requests_remain():
    response = reply(200, {"X-RateLimit-Remaining": "12", "X-RateLimit-Reset": "30"})
    assert rate_limit_wait(response) is None


# --- transient failures ---------------------------------------------------------------------


def test_a_503_then_a_200_succeeds_after_one_backoff(client_for, waits):
    vendor = Vendor(reply(503), OK)
    assert client_for(vendor).request("GET", "/crm/v3/objects/contacts").status_code == 200
    assert len(waits) == 1 and 0 <= waits[0] <= 30


def test_timeouts_are_retried_then_raise_a_retryable_error_after_max_attempts(client_for, waits):
    vendor = Vendor(httpx.ReadTimeout)
    with pytest.raises(RetryableError) as caught:
        client_for(vendor, max_attempts=5).request("GET", "/crm/v3/objects/contacts")
    assert type(caught.value) is RetryableError
    assert caught.value.retry_after is None and caught.value.status_code is None
    assert "ReadTimeout" in str(caught.value)
    assert len(vendor.requests) == 5 and len(waits) == 4
    assert all(0 <= wait <= 30 for wait in waits)


def test_a_refused_connection_is_retried(client_for, waits):
    vendor = Vendor(httpx.ConnectError, OK)
    assert client_for(vendor).request("GET", "/crm/v3/objects/contacts").status_code == 200
    assert len(vendor.requests) == 2


def test_repeated_429s_give_up_as_rate_limited_with_the_vendors_wait(client_for, waits):
    vendor = Vendor(reply(429, {"Retry-After": "2"}))
    with pytest.raises(RateLimitedError) as caught:
        client_for(vendor, max_attempts=3).request("GET", "/crm/v3/objects/contacts")
    assert caught.value.retry_after == 2.0
    assert waits == [2.0, 2.0] and len(vendor.requests) == 3


def test_429_waits_that_add_up_past_the_inline_budget_park_the_work(client_for, waits):
    vendor = Vendor(reply(429, {"Retry-After": "1"}))
    with pytest.raises(RateLimitedError) as caught:
        client_for(vendor, max_inline_wait=2.5).request("GET", "/crm/v3/objects/contacts")
    assert caught.value.retry_after == 1.0
    assert waits == [1.0, 1.0] and len(vendor.requests) == 3


# --- final answers and scrubbing ------------------------------------------------------------


def test_a_401_raises_auth_error_without_the_token_or_the_query_string(client_for):
    body = {
        "status": "error",
        "message": f"Invalid token Bearer {CANARY}",
        "category": "INVALID_AUTHENTICATION",
    }
    vendor = Vendor(reply(401, json=body))
    client = client_for(vendor, headers={"Authorization": f"Bearer {CANARY}"})
    with pytest.raises(AuthError) as caught:
        client.request("GET", "/crm/v3/objects/contacts", params={"hapikey": CANARY, "after": "7"})
    text = f"{caught.value} {caught.value!r} {caught.value.args}"
    assert CANARY not in text
    assert "?" not in text and "hapikey" not in text
    assert "GET /crm/v3/objects/contacts -> 401" in text
    assert "INVALID_AUTHENTICATION" in text
    assert caught.value.status_code == 401
    assert vendor.requests[0].headers["Authorization"] == f"Bearer {CANARY}"


def test_a_basic_auth_api_key_never_reaches_the_message(client_for):
    body = {"title": "API Key Invalid", "detail": f"Your API key {CANARY} may be invalid."}
    client = client_for(Vendor(reply(401, json=body)), auth=httpx.BasicAuth("anystring", CANARY))
    with pytest.raises(AuthError) as caught:
        client.request("GET", "/3.0/lists")
    assert CANARY not in str(caught.value)
    assert str(caught.value).startswith("GET /3.0/lists -> 401: API Key Invalid: Your API key")


def test_a_403_raises_auth_error(client_for):
    with pytest.raises(AuthError):
        client_for(Vendor(reply(403))).request("GET", "/crm/v3/objects/contacts")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {
                "status": "error",
                "message": "Property values were not valid",
                "category": "VALIDATION_ERROR",
            },
            "VALIDATION_ERROR: Property values were not valid",
        ),
        (
            {"title": "Invalid Resource", "status": 400, "detail": "The resource was not valid."},
            "Invalid Resource: The resource was not valid.",
        ),
        ({"code": 300, "message": "Invalid field."}, "300: Invalid field."),
        (
            {"error": {"code": "invalidRequest", "message": "Bad filter."}},
            "invalidRequest: Bad filter.",
        ),
    ],
    ids=["hubspot", "mailchimp", "zoom", "graph"],
)
def test_a_400_raises_fatal_error_with_the_vendors_message(client_for, waits, body, expected):
    vendor = Vendor(reply(400, json=body))
    with pytest.raises(FatalError) as caught:
        client_for(vendor).request("POST", "/crm/v3/objects/contacts", json={})
    assert str(caught.value) == f"POST /crm/v3/objects/contacts -> 400: {expected}"
    assert caught.value.status_code == 400
    assert len(vendor.requests) == 1 and waits == []


def test_a_404_is_returned_for_the_caller_to_decide(client_for):
    vendor = Vendor(reply(404, json={"message": "gone"}))
    assert client_for(vendor).request("GET", "/crm/v3/objects/contacts/9").status_code == 404


def test_a_connector_can_override_the_status_table(client_for):
    vendor = Vendor(reply(409, json={"message": "Contact already exists. Existing ID: 512"}))
    client = client_for(vendor, status_actions={409: Action.SKIP_RECORD})
    with pytest.raises(SkippableRecordError, match="Existing ID: 512"):
        client.request("POST", "/crm/v3/objects/contacts", json={})
    assert action_for(409) is Action.FATAL  # the default table is untouched


def test_the_default_table_maps_statuses_to_actions():
    assert STATUS_ACTIONS[207] is Action.OK
    assert STATUS_ACTIONS[401] is STATUS_ACTIONS[403] is Action.AUTH
    assert STATUS_ACTIONS[429] is Action.RATE_LIMITED
    assert all(STATUS_ACTIONS[code] is Action.RETRY for code in (408, 423, 425, 477, 502, 524))
    with pytest.raises(TypeError):
        STATUS_ACTIONS[418] = Action.OK  # type: ignore[index]


def test_redirects_are_not_followed(client_for):
    vendor = Vendor(reply(302, {"Location": "http://169.254.169.254/latest/meta-data"}))
    with pytest.raises(FatalError):
        client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    assert len(vendor.requests) == 1


def test_requests_carry_our_user_agent_and_timeouts(client_for):
    vendor = Vendor(OK)
    client_for(vendor).request("GET", "/crm/v3/objects/contacts")
    sent = vendor.requests[0]
    assert sent.headers["User-Agent"].startswith("the-plugs/")
    timeout = sent.extensions["timeout"]
    assert timeout["connect"] == 5.0 and timeout["read"] == 30.0


# --- the shared limiter ---------------------------------------------------------------------


def test_the_shared_limit_is_taken_before_every_attempt(client_for):
    limiter = InProcessRateLimiter()
    vendor = Vendor(OK)
    throttle = Throttle(limiter, "hubspot:portal-1", Limit(2, 60))
    client = client_for(vendor, throttle=throttle, max_inline_wait=0)
    client.request("GET", "/crm/v3/objects/contacts")
    client.request("GET", "/crm/v3/objects/contacts")
    with pytest.raises(RateLimitedError) as caught:
        client.request("GET", "/crm/v3/objects/contacts")
    assert len(vendor.requests) == 2
    assert 59 < caught.value.retry_after <= 60.1
    assert caught.value.status_code is None


def test_a_429_pauses_every_holder_of_the_account_key(client_for):
    limiter = InProcessRateLimiter()
    throttle = Throttle(limiter, "hubspot:portal-1", Limit(100, 10))
    with pytest.raises(RateLimitedError):
        client_for(Vendor(reply(429, {"Retry-After": "7200"})), throttle=throttle).request(
            "GET", "/crm/v3/objects/contacts"
        )
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire("hubspot:portal-1", Limit(100, 10), max_wait=1)
    assert caught.value.retry_after == pytest.approx(7200, abs=2)


def test_a_concurrency_throttle_gives_its_slot_back_after_each_request(client_for):
    throttle = Throttle(InProcessRateLimiter(), "mailchimp:us6", Concurrency(1))
    vendor = Vendor(reply(503), OK)
    client = client_for(vendor, throttle=throttle, max_inline_wait=0.1)
    for _ in range(3):
        assert client.request("GET", "/3.0/lists").status_code == 200
    assert len(vendor.requests) == 4


# --- vendor-supplied URLs -------------------------------------------------------------------

REFUSED = [
    ("https://169.254.169.254/latest/meta-data", ["169.254.169.254"]),
    ("https://localhost/admin", ["localhost"]),
    ("https://10.0.0.1/", ["10.0.0.1"]),
    ("https://[::1]/", ["::1"]),
    ("https://2130706433/", ["2130706433"]),
    ("https://0x7f.1/", ["0x7f.1"]),
    ("https://evil.example.com/crm", ["api.hubapi.com"]),
    ("https://api.hubapi.com.evil.example/crm", ["api.hubapi.com"]),
    ("https://notapi.hubapi.co/crm", ["api.hubapi.com"]),
    ("https://files.api.hubapi.com/crm", ["api.hubapi.com"]),
    ("https://api.hubapi.com./crm", ["api.hubapi.com"]),
    ("https://api.hubapi.com:8443/crm", ["api.hubapi.com"]),
    ("https://api.hubapi.com@evil.example/crm", ["api.hubapi.com"]),
    ("https://user:pw@api.hubapi.com/crm", ["api.hubapi.com"]),
    ("http://api.hubapi.com/crm/v3/objects/contacts", ["api.hubapi.com"]),
    ("ftp://api.hubapi.com/file", ["api.hubapi.com"]),
    ("/crm/v3/objects/contacts", ["api.hubapi.com"]),
]


@pytest.mark.parametrize(("url", "allowed"), REFUSED)
def test_unsafe_vendor_urls_are_refused(url, allowed):
    with pytest.raises(UnsafeURLError):
        check_url(url, allowed)


def test_an_unsafe_url_is_a_config_error():
    assert issubclass(UnsafeURLError, ConfigError)


def test_the_vendor_origin_is_accepted_exactly():
    url = "https://api.hubapi.com/crm/v3/objects/contacts?after=1"
    assert str(check_url(url, ["api.hubapi.com"])) == url
    assert check_url("https://API.hubapi.com:443/files/1", ["api.hubapi.com"]).host == (
        "api.hubapi.com"
    )
    with pytest.raises(UnsafeURLError, match="not one of the vendor's hosts"):
        check_url("https://api.hubapi.com/files/1", ["hubapi.com"])


def test_a_simulator_on_loopback_is_allowed_only_when_private_urls_are_allowed():
    url = "http://127.0.0.1:8765/crm/v3/objects/contacts?after=2"
    assert check_url(url, ["http://127.0.0.1:8765"], allow_private=True).port == 8765
    with pytest.raises(UnsafeURLError):
        check_url(url, ["http://127.0.0.1:8765"])
    for other in ("http://127.0.0.1:8766", "https://127.0.0.1:8765", "127.0.0.1"):
        with pytest.raises(UnsafeURLError, match="not one of the vendor's hosts"):
            check_url(url, [other], allow_private=True)


def test_follow_refuses_an_unsafe_link_without_sending_it(client_for):
    vendor = Vendor(OK)
    client = client_for(vendor)
    with pytest.raises(UnsafeURLError):
        client.follow("https://169.254.169.254/latest/meta-data")
    assert vendor.requests == []
    client.follow("https://api.hubapi.com/crm/v3/objects/contacts?after=1")
    assert vendor.requests[0].url.params["after"] == "1"
