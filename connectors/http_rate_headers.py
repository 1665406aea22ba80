"""How long a vendor asks us to wait, read from its rate-limit headers and 429 bodies.

Vendor facts are small named tables (sources: the "Rate limits" section of each page in
docs/vendors/).  Everything here is pure: a response in, seconds out.

Order of precedence in :func:`rate_limit_wait`: ``Retry-After`` (RFC 9110: seconds or an
HTTP-date; Zoom's old docs show an ISO date), then HubSpot's 429 ``policyName`` and
``X-HubSpot-RateLimit-*`` headers, then Zoom's ``X-RateLimit-Type``, then a generic
``X-RateLimit-Reset``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Final

import httpx

from core.errors import RateLimitedError

# --- HubSpot (docs/vendors/hubspot.md#rate-limits) -----------------------------------------
HUBSPOT_REMAINING: Final = "X-HubSpot-RateLimit-Remaining"
HUBSPOT_INTERVAL_MS: Final = "X-HubSpot-RateLimit-Interval-Milliseconds"
HUBSPOT_DAILY_REMAINING: Final = "X-HubSpot-RateLimit-Daily-Remaining"
#: The burst window when the interval header is missing (documented as 10000 ms).
HUBSPOT_DEFAULT_INTERVAL: Final = 10.0
#: 429 ``policyName`` -> seconds to wait; the official Node SDK waits 10 s and 1 s.
HUBSPOT_POLICY_WAITS: Final = {"TEN_SECONDLY_ROLLING": 10.0, "SECONDLY": 1.0}
#: The daily cap: never retried before the reset.
HUBSPOT_DAILY_POLICY: Final = "DAILY"
#: Search 429s may carry only this message (policyName SECONDLY is secondary-sourced).
HUBSPOT_SECONDLY_MESSAGE: Final = "secondly limit"

# --- Zoom (docs/vendors/zoom.md#rate-limits): per account and label; daily caps reset 00:00 UTC
ZOOM_LIMIT_TYPE: Final = "X-RateLimit-Type"
ZOOM_QPS: Final = "qps"
ZOOM_DAILY: Final = "daily-limit"
#: A per-second limit with no Retry-After: the window is one second.
ZOOM_QPS_WAIT: Final = 1.0

# --- generic (GitHub style; Graph and Zoom send Remaining) ----------------------------------
REMAINING: Final = "X-RateLimit-Remaining"
RESET: Final = "X-RateLimit-Reset"
#: A reset value above this is an epoch timestamp, below it a number of seconds.
EPOCH_THRESHOLD: Final = 1_000_000_000


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` value: delta-seconds or a date; None if garbage.

    A negative delta or a date in the past gives 0.
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    when = _parse_date(value)
    if when is None:
        return None
    return max(0.0, (when - now).total_seconds())


def _parse_date(value: str) -> datetime | None:
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            when = datetime.fromisoformat(value)  # Zoom's old docs: 2020-05-31T00:00:00Z
        except ValueError:
            return None
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def seconds_until_utc_midnight(now: datetime) -> float:
    """Seconds from ``now`` to the next 00:00 UTC (when daily caps reset)."""
    now = now.astimezone(UTC)
    midnight = (now + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return (midnight - now).total_seconds()


def rate_limit_wait(response: httpx.Response, now: datetime | None = None) -> float | None:
    """Seconds the vendor asks us to wait before the next request, or None if it did not say.

    Raises :class:`RateLimitedError` at once (``retry_after`` = seconds to the next UTC
    midnight) for a daily cap with no ``Retry-After``: it is never retried inside a task.
    """
    now = now or datetime.now(UTC)
    headers = response.headers
    wait = parse_retry_after(headers.get("Retry-After"), now)
    if wait is not None:
        return wait
    for reader in (_hubspot_wait, _zoom_wait, _generic_wait):
        wait = reader(response, now)
        if wait is not None:
            return wait
    return None


def _daily_cap(vendor: str, now: datetime) -> RateLimitedError:
    return RateLimitedError(
        f"{vendor} daily rate limit reached", retry_after=seconds_until_utc_midnight(now)
    )


def _hubspot_wait(response: httpx.Response, now: datetime) -> float | None:
    if response.status_code == 429:
        body = json_body(response)
        policy = str(body.get("policyName", "")).upper()
        if policy == HUBSPOT_DAILY_POLICY:
            raise _daily_cap("HubSpot", now)
        if policy in HUBSPOT_POLICY_WAITS:
            return HUBSPOT_POLICY_WAITS[policy]
        if HUBSPOT_SECONDLY_MESSAGE in str(body.get("message", "")).lower():
            return HUBSPOT_POLICY_WAITS["SECONDLY"]
    if _as_int(response.headers.get(HUBSPOT_REMAINING)) == 0:
        return hubspot_interval(response)
    return None


def hubspot_interval(response: httpx.Response) -> float:
    """HubSpot's burst window in seconds (``X-HubSpot-RateLimit-Interval-Milliseconds``)."""
    interval_ms = _as_float(response.headers.get(HUBSPOT_INTERVAL_MS))
    return interval_ms / 1000 if interval_ms else HUBSPOT_DEFAULT_INTERVAL


def _zoom_wait(response: httpx.Response, now: datetime) -> float | None:
    kind = response.headers.get(ZOOM_LIMIT_TYPE, "").strip().lower()
    if response.status_code != 429 or not kind:
        return None
    if kind == ZOOM_DAILY:
        raise _daily_cap("Zoom", now)
    return ZOOM_QPS_WAIT if kind == ZOOM_QPS else None


def _generic_wait(response: httpx.Response, now: datetime) -> float | None:
    exhausted = response.status_code == 429 or _as_int(response.headers.get(REMAINING)) == 0
    reset = _as_float(response.headers.get(RESET))
    if not exhausted or reset is None:
        return None
    if reset > EPOCH_THRESHOLD:
        return max(0.0, reset - now.timestamp())
    return max(0.0, reset)


def rate_observation(
    response: httpx.Response, now: datetime | None = None
) -> tuple[int | None, float | None]:
    """``(remaining, reset_after)`` from a response's rate headers, for a limiter to learn.

    A 429 (or a header saying nothing is left) counts as ``remaining=0`` until the wait the
    vendor asked for; a daily cap means until the next UTC midnight.
    """
    headers = response.headers
    remaining = _as_int(headers.get(HUBSPOT_REMAINING))
    if remaining is None:
        remaining = _as_int(headers.get(REMAINING))
    try:
        reset_after = rate_limit_wait(response, now)
    except RateLimitedError as exc:
        return 0, exc.retry_after
    if response.status_code == 429:
        return 0, reset_after
    if remaining is not None and reset_after is None and HUBSPOT_REMAINING in headers:
        reset_after = hubspot_interval(response)
    return remaining, reset_after


def json_body(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or {} when it is not JSON or not an object."""
    if "json" not in response.headers.get("Content-Type", ""):
        return {}
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _as_float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _as_int(value: str | None) -> int | None:
    number = _as_float(value)
    return int(number) if number is not None else None
