"""A stateful HubSpot CRM v3 simulator that behaves like HubSpot over HTTP.

Connector tests, the benchmark and the demo talk to it instead of api.hubapi.com,
either in-process (``httpx.MockTransport(sim)``) or over a socket (``with sim:``, see
:mod:`simulators.base`). It keeps contacts and engagements, pages and searches them as
HubSpot does (10,000-result search cap included), checks bearer tokens, issues OAuth
tokens, enforces the 10-second and search rate limits with HubSpot's headers and 429
bodies, answers injected faults in HubSpot's shapes, and signs webhook deliveries.
Vendor facts: docs/vendors/hubspot.md.

Run it standalone (``python -m simulators.hubspot.server`` is the older spelling)::

    python -m simulators.hubspot --port 8765 --contacts 1000 --token T
"""

from __future__ import annotations

import gc
import itertools
import runpy
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from simulators.base import Simulator
from simulators.hubspot.api import CrmApi, error_body, json_response
from simulators.hubspot.limits import (
    PRIVATE_ACCOUNT,
    RateLimiter,
    TokenBook,
    limit_headers,
    token_response,
)
from simulators.hubspot.seed import (
    ENGAGEMENT_KINDS,
    contact_properties,
    engagement_properties,
)
from simulators.hubspot.store import (
    CONTACTS,
    ENGAGEMENTS,
    ObjectStore,
    Record,
    iso_ms,
)
from simulators.hubspot.webhooks import (
    CONTACT_EVENTS,
    delivery,
    sign_v1,
    sign_v2,
    sign_v3,
    subscription_type,
)

__all__ = ["HubSpotSimulator", "sign_v1", "sign_v2", "sign_v3"]

TOKEN_PATH = "/oauth/v1/token"
MISSING_AUTH = (
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and "
    "you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview"
)
TEN_SECONDLY_MESSAGE = "You have reached your ten_secondly_rolling limit."
SECONDLY_MESSAGE = "You have reached your secondly limit."
DAILY_MESSAGE = "You have reached your daily limit."


class HubSpotSimulator(Simulator):
    """HubSpot's CRM v3 contacts and engagements, OAuth, rate limits and webhooks.

    Call it with an ``httpx.Request`` to get an ``httpx.Response``. ``clock`` (epoch
    seconds) drives timestamps, token expiry and rate windows; all state sits behind
    one lock, so it is safe to serve from many threads.  Injected faults (``fail_next``)
    apply to ``/crm/`` unless given a ``path_prefix``.
    """

    name = "HubSpot"

    def __init__(
        self,
        *,
        private_app_token: str | None = "pat-na1-simulator",
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        refresh_token: str = "sim-refresh-token",
        tier: str = "free",
        enforce_limits: bool = True,
        clock: Callable[[], float] = time.time,
        access_token_ttl: int = 1800,
        portal_id: int = 62515,
        app_id: int = 54321,
    ) -> None:
        super().__init__(clock=clock)
        self.portal_id, self.app_id = portal_id, app_id
        self.tokens = TokenBook(
            private_app_token, client_id, client_secret, {refresh_token}, access_token_ttl
        )
        self.limits = RateLimiter(tier, enforce=enforce_limits)
        self.stores = {CONTACTS: ObjectStore(CONTACTS, "email")}
        self.stores |= {kind: ObjectStore(kind) for kind in ENGAGEMENTS}
        self._ids = itertools.count(1)
        self._event_ids = itertools.count(100)
        self.api = CrmApi(self.stores, clock, lambda: next(self._ids))

    # ----------------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one HTTP request as HubSpot would."""
        with self._lock:
            return self._respond(request)

    def is_api_call(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/crm/")

    def fault_response(self, status: int) -> httpx.Response:
        if status != 429:
            return json_response(status, error_body("INTERNAL_ERROR", "Injected failure"))
        headers = {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
        burst = str(self.limits.accounts[PRIVATE_ACCOUNT].burst)
        headers |= {"X-HubSpot-RateLimit-Max": burst, "X-HubSpot-RateLimit-Remaining": "0"}
        body = self._limit_body("TEN_SECONDLY_ROLLING", TEN_SECONDLY_MESSAGE)
        return json_response(429, body, headers)

    def _respond(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path == TOKEN_PATH and request.method == "POST":
            return token_response(self.tokens, request, self.clock())
        if not path.startswith("/crm/"):
            return json_response(404, error_body("OBJECT_NOT_FOUND", f"No route for {path}"))
        account = self._authenticate(request)
        if isinstance(account, httpx.Response):
            return account
        now = self.clock()
        if path.endswith("/search"):
            if not self.limits.check_search(account, now):
                return json_response(429, self._limit_body("SECONDLY", SECONDLY_MESSAGE))
            return self.api.dispatch(request)
        verdict = self.limits.check(account, now)
        headers = limit_headers(verdict)
        if not verdict.allowed:
            message = DAILY_MESSAGE if verdict.policy == "DAILY" else TEN_SECONDLY_MESSAGE
            return json_response(429, self._limit_body(verdict.policy, message), headers)
        response = self.api.dispatch(request)
        response.headers.update(headers)
        return response

    @staticmethod
    def _limit_body(policy: str, message: str) -> dict[str, Any]:
        body = error_body("", message, errorType="RATE_LIMIT", policyName=policy)
        del body["category"]
        return body

    def _authenticate(self, request: httpx.Request) -> str | httpx.Response:
        """The rate-limit account of the bearer token, or the 401 to answer."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        account, category = self.tokens.account_for(token, self.clock())
        if account is not None:
            return account
        message = MISSING_AUTH
        if category == "EXPIRED_AUTHENTICATION":
            ago = int(self.tokens.expired_for(token, self.clock()))
            message = f"The OAuth token used to make this call expired {ago} second(s) ago."
        return json_response(401, error_body(category, message))

    # ------------------------------------------------------------ test controls

    def revoke_tokens(self) -> None:
        """Invalidate every credential (private-app token, access and refresh tokens)."""
        with self._lock:
            self.tokens.revoke()

    # --------------------------------------------------------------- observations

    @property
    def token_refreshes(self) -> int:
        """How many access tokens ``/oauth/v1/token`` has issued."""
        with self._lock:
            return self.tokens.refreshes

    def max_requests_in_window(self) -> int:
        """The most non-search requests one account sent within any 10 s (refused included)."""
        with self._lock:
            return self.limits.max_seen()

    def max_searches_in_second(self) -> int:
        """The most search requests one account sent within any 1 s (refused included)."""
        with self._lock:
            return self.limits.max_searches()

    def get_contact(self, contact_id: str | int) -> dict[str, str | None] | None:
        """A copy of a live contact's properties, by id or email."""
        with self._lock:
            record = self._contact(contact_id)
            return None if record is None else dict(record.properties)

    # ------------------------------------------------------------------- seeding

    def add_contacts(
        self,
        n: int,
        *,
        modified_from: datetime | None = None,
        step: timedelta = timedelta(seconds=1),
    ) -> list[str]:
        """Seed ``n`` deterministic contacts modified at ``modified_from + i * step``.

        Without ``modified_from`` the last one is modified one ``step`` before now.
        Emails are ``contact<id>@example.com``; created 30 days before modified.
        """
        start = modified_from or datetime.fromtimestamp(self.clock(), tz=UTC) - n * step
        if start.tzinfo is None:
            start = start.replace(tzinfo=UTC)
        first, seconds = start.timestamp(), step.total_seconds()
        store, ids = self.stores[CONTACTS], []
        with self._lock, _gc_paused():
            for number in range(n):
                record_id = next(self._ids)
                modified = iso_ms(first + number * seconds)
                created = iso_ms(first + number * seconds - 30 * 86_400)
                properties = contact_properties(record_id, created, modified)
                store.add(Record(record_id, properties, created, modified))
                ids.append(str(record_id))
        return ids

    def update_contact(self, contact_id: str | int, **properties: Any) -> None:
        """Set properties on a contact and bump ``lastmodifieddate``/``updatedAt`` to now."""
        with self._lock:
            record = self._require(contact_id)
            values = {k: None if v is None else str(v) for k, v in properties.items()}
            self.stores[CONTACTS].update(record, values, self.clock())

    def archive_contact(self, contact_id: str | int) -> None:
        """Move a contact to the recycle bin (list with ``archived=true`` shows it)."""
        with self._lock:
            self.stores[CONTACTS].archive(self._require(contact_id), self.clock())

    def add_engagement(self, kind: str, contact_id: str | int, **properties: Any) -> str:
        """Add a note, meeting, call or email associated with a contact; returns its id."""
        object_type = ENGAGEMENT_KINDS.get(kind)
        if object_type is None:
            raise ValueError(f"unknown engagement kind {kind!r}")
        with self._lock:
            record = self._require(contact_id)
            number = len(self.stores[object_type].ids) + 1
            values = engagement_properties(object_type, number, iso_ms(self.clock()))
            values |= {k: None if v is None else str(v) for k, v in properties.items()}
            return str(self.api.create(object_type, values, [record.id]).id)

    def _contact(self, contact_id: str | int) -> Record | None:
        key = str(contact_id)
        store = self.stores[CONTACTS]
        return store.get(int(key)) if key.isdigit() else store.find(key)

    def _require(self, contact_id: str | int) -> Record:
        record = self._contact(contact_id)
        if record is None:
            raise KeyError(f"no live contact {contact_id!r}")
        return record

    # ------------------------------------------------------------------ webhooks

    def contact_event(self, kind: str, contact_id: str | int, **extra: Any) -> dict[str, Any]:
        """A webhook event for a contact, e.g. ``contact_event("propertyChange", 123)``.

        ``propertyChange`` names ``propertyName`` (default ``email``) and its current
        ``propertyValue``; ``extra`` adds or overrides fields.
        """
        with self._lock:
            subscription = subscription_type(kind)
            short = subscription.split(".", 1)[1]
            known = short in CONTACT_EVENTS
            event: dict[str, Any] = {
                "eventId": next(self._event_ids),
                "subscriptionId": 2001 + (CONTACT_EVENTS.index(short) if known else 99),
                "portalId": self.portal_id,
                "appId": self.app_id,
                "occurredAt": int(self.clock() * 1000),
                "subscriptionType": subscription,
                "attemptNumber": 0,
                "objectId": int(contact_id),
            }
            if short == "propertyChange":
                name = extra.pop("propertyName", "email")
                record = self._contact(contact_id)
                current = record.properties.get(name) if record is not None else None
                value = extra.pop("propertyValue", current)
                event |= {"propertyName": name, "propertyValue": value}
            return event | {"changeSource": "CRM_UI"} | extra

    def webhook_delivery(
        self,
        events: list[dict[str, Any]],
        uri: str,
        client_secret: str,
        timestamp_ms: int | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """Headers and raw body HubSpot would POST to ``uri`` (v3 and v1 signed)."""
        stamp = int(self.clock() * 1000) if timestamp_ms is None else timestamp_ms
        return delivery(events, uri, client_secret, stamp)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Skip garbage-collection passes while creating many long-lived records."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


if __name__ == "__main__":  # the command lives in simulators/hubspot/__main__.py
    runpy.run_module("simulators.hubspot", run_name="__main__")
