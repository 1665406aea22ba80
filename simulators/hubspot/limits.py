"""Credentials and rate limits of the HubSpot simulator (docs/vendors/hubspot.md).

Both take ``now`` (epoch seconds) from the simulator's injectable clock and are used
under its lock, so they are plain, single-threaded bookkeeping.
"""

from __future__ import annotations

import itertools
import secrets
import urllib.parse
import uuid
from collections import deque
from dataclasses import dataclass, field

import httpx

from simulators.hubspot.api import json_response

TEN_SECONDS = 10.0
#: Requests per rolling 10 s window for private-app tokens, by account tier.
PRIVATE_APP_BURST = {"free": 100, "starter": 100, "professional": 190, "enterprise": 190}
#: Daily requests for private-app tokens, by account tier.
PRIVATE_APP_DAILY = {
    "free": 250_000,
    "starter": 250_000,
    "professional": 650_000,
    "enterprise": 1_000_000,
}
#: Public (OAuth) apps: per installing account, searches excluded (docs/vendors/hubspot.md).
OAUTH_BURST = 110
SEARCH_PER_SECOND = 5
PRIVATE_ACCOUNT = "private-app"
OAUTH_ACCOUNT = "oauth"


@dataclass(frozen=True)
class Verdict:
    """What the limiter decided for one request."""

    allowed: bool
    policy: str = ""
    limit: int = 0
    remaining: int = 0
    daily: int | None = None
    daily_remaining: int | None = None


@dataclass
class _Account:
    burst: int
    daily: int | None
    window: deque[float] = field(default_factory=deque)
    seen: deque[float] = field(default_factory=deque)
    searches: deque[float] = field(default_factory=deque)
    searches_seen: deque[float] = field(default_factory=deque)
    day: int = -1
    used_today: int = 0
    max_seen: int = 0
    max_searches: int = 0


def _trim(times: deque[float], now: float, span: float) -> None:
    while times and times[0] <= now - span:
        times.popleft()


class RateLimiter:
    """Rolling 10 s and daily limits per account, 5/s for search, plus what was seen.

    ``seen`` counts every request a client sent, refused or not, so
    ``max_requests_in_window`` shows whether a client ever went over.
    """

    def __init__(self, tier: str, *, enforce: bool = True) -> None:
        if tier not in PRIVATE_APP_BURST:
            raise ValueError(f"unknown tier {tier!r}; use one of {sorted(PRIVATE_APP_BURST)}")
        self.enforce = enforce
        self.accounts = {
            PRIVATE_ACCOUNT: _Account(PRIVATE_APP_BURST[tier], PRIVATE_APP_DAILY[tier]),
            OAUTH_ACCOUNT: _Account(OAUTH_BURST, None),
        }

    def check(self, account: str, now: float) -> Verdict:
        """Count a non-search request and say whether it may go through."""
        state = self.accounts[account]
        for times in (state.window, state.seen):
            _trim(times, now, TEN_SECONDS)
        state.seen.append(now)
        state.max_seen = max(state.max_seen, len(state.seen))
        if state.day != int(now // 86_400):
            state.day, state.used_today = int(now // 86_400), 0
        if self.enforce and state.daily is not None and state.used_today >= state.daily:
            return Verdict(False, "DAILY", state.burst, 0, state.daily, 0)
        if self.enforce and len(state.window) >= state.burst:
            return self._verdict(state, False, "TEN_SECONDLY_ROLLING")
        state.window.append(now)
        state.used_today += 1
        return self._verdict(state, True)

    def check_search(self, account: str, now: float) -> bool:
        """Count a search request; False when the 5-per-second limit is spent."""
        state = self.accounts[account]
        for times in (state.searches, state.searches_seen):
            _trim(times, now, 1.0)
        state.searches_seen.append(now)
        state.max_searches = max(state.max_searches, len(state.searches_seen))
        if self.enforce and len(state.searches) >= SEARCH_PER_SECOND:
            return False
        state.searches.append(now)
        return True

    def max_seen(self, account: str | None = None) -> int:
        """The most requests one account sent within any 10 s window."""
        names = [account] if account else list(self.accounts)
        return max(self.accounts[name].max_seen for name in names)

    def max_searches(self, account: str | None = None) -> int:
        """The most search requests one account sent within any 1 s window."""
        names = [account] if account else list(self.accounts)
        return max(self.accounts[name].max_searches for name in names)

    @staticmethod
    def _verdict(state: _Account, allowed: bool, policy: str = "") -> Verdict:
        remaining = max(state.burst - len(state.window), 0)
        daily_left = None if state.daily is None else max(state.daily - state.used_today, 0)
        return Verdict(allowed, policy, state.burst, remaining, state.daily, daily_left)


@dataclass
class TokenBook:
    """The private-app token, issued OAuth access tokens and valid refresh tokens."""

    private_app_token: str | None
    client_id: str
    client_secret: str
    refresh_tokens: set[str]
    access_token_ttl: int = 1800
    access_tokens: dict[str, float] = field(default_factory=dict)
    refreshes: int = 0
    revoked: bool = False
    _serial: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def account_for(self, token: str, now: float) -> tuple[str | None, str]:
        """(account, "") for a usable token, else (None, error category)."""
        if not self.revoked and token and token == self.private_app_token:
            return PRIVATE_ACCOUNT, ""
        expires = self.access_tokens.get(token)
        if expires is None or self.revoked:
            return None, "INVALID_AUTHENTICATION"
        if now >= expires:
            return None, "EXPIRED_AUTHENTICATION"
        return OAUTH_ACCOUNT, ""

    def expired_for(self, token: str, now: float) -> float:
        """Seconds since ``token`` expired (0 if unknown)."""
        return max(now - self.access_tokens.get(token, now), 0.0)

    def issue(self, now: float) -> str:
        """Issue a new access token (the caller has checked the refresh token)."""
        token = f"sim-at-{next(self._serial)}-{secrets.token_urlsafe(24)}"
        self.access_tokens[token] = now + self.access_token_ttl
        self.refreshes += 1
        return token

    def revoke(self) -> None:
        """Invalidate every credential, as when the app is uninstalled."""
        self.revoked = True
        self.access_tokens.clear()
        self.refresh_tokens.clear()


def limit_headers(verdict: Verdict) -> dict[str, str]:
    """The ``X-HubSpot-RateLimit-*`` headers of a non-search response."""
    headers = {
        "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
        "X-HubSpot-RateLimit-Max": str(verdict.limit),
        "X-HubSpot-RateLimit-Remaining": str(verdict.remaining),
    }
    if verdict.daily is not None:
        headers["X-HubSpot-RateLimit-Daily"] = str(verdict.daily)
        headers["X-HubSpot-RateLimit-Daily-Remaining"] = str(verdict.daily_remaining)
    return headers


def _oauth_error(error: str, status: str, message: str) -> httpx.Response:
    body = {"error": error, "error_description": message, "status": status, "message": message}
    return json_response(400, body | {"correlationId": str(uuid.uuid4())})


def token_response(tokens: TokenBook, request: httpx.Request, now: float) -> httpx.Response:
    """``POST /oauth/v1/token`` with ``grant_type=refresh_token`` (form-encoded only).

    The refresh token stays valid and is returned unchanged, as HubSpot does.
    """
    if "x-www-form-urlencoded" not in request.headers.get("Content-Type", ""):
        return _oauth_error("invalid_request", "BAD_REQUEST", "a form-encoded body is required")
    form = dict(urllib.parse.parse_qsl(request.content.decode("utf-8")))
    if (form.get("client_id"), form.get("client_secret")) != (
        tokens.client_id,
        tokens.client_secret,
    ):
        return _oauth_error("invalid_client", "BAD_CLIENT_ID", "missing or unknown client id")
    if form.get("grant_type") != "refresh_token":
        message = "the simulator supports grant_type=refresh_token only"
        return _oauth_error("unsupported_grant_type", "BAD_GRANT_TYPE", message)
    refresh = form.get("refresh_token", "")
    if refresh not in tokens.refresh_tokens:
        return _oauth_error(
            "invalid_grant", "BAD_REFRESH_TOKEN", "missing or invalid refresh token"
        )
    body = {
        "token_type": "bearer",
        "refresh_token": refresh,
        "access_token": tokens.issue(now),
        "expires_in": tokens.access_token_ttl,
    }
    return json_response(200, body)
