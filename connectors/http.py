"""The only place that builds httpx clients, and the only module that imports tenacity.

* :data:`STATUS_ACTIONS` says, as data, what each status code means to us; a connector
  merges its overrides over it.
* :class:`VendorClient` sends one vendor's requests: it takes a slot of the shared rate
  limit before each attempt, retries what is transient (with the vendor's wait when it
  gives one, else exponential backoff with jitter), tells the limiter what the vendor's
  rate headers say, and turns the rest into our exception tree with scrubbed messages.
  A wait longer than ``max_inline_wait`` is never slept in a worker: it is raised as
  :class:`RateLimitedError` / :class:`RetryableError` with ``retry_after`` so the caller
  parks the work in the database (see docs/architecture.md#delivery-guarantees).
* Every connection goes out through :class:`~connectors.egress.GuardedTransport`: the
  host is resolved once, each address checked, and the checked address connected to
  (non-public addresses and plain http only with ``PLUGS_ALLOW_PRIVATE_URLS=true``).
* :meth:`VendorClient.follow` fetches a vendor-supplied URL only on the vendor's origin
  (:func:`check_url`: same scheme, host and port); redirects are never followed.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from enum import Enum
from importlib.metadata import PackageNotFoundError, version
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self, TypeVar

import httpx
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_random_exponential,
)

from connectors.egress import GuardedTransport
from connectors.http_messages import describe, describe_response
from connectors.http_rate_headers import parse_retry_after, rate_limit_wait, rate_observation
from connectors.http_urls import UnsafeURLError, check_url
from connectors.ratelimit import Concurrency, Limit, RateLimiter
from core.errors import (
    AuthError,
    ConnectorError,
    FatalError,
    RateLimitedError,
    RetryableError,
    SkippableRecordError,
)
from core.settings import get_settings

__all__ = [
    "STATUS_ACTIONS",
    "Action",
    "Throttle",
    "UnsafeURLError",
    "VendorClient",
    "action_for",
    "check_url",
    "parse_retry_after",
    "rate_limit_wait",
]


class Action(Enum):
    """What the client does with a response."""

    OK = "ok"  # return it
    RETRY = "retry"  # transient: retry with backoff, then RetryableError
    RATE_LIMITED = "rate_limited"  # retry after the vendor's wait, then RateLimitedError
    AUTH = "auth"  # AuthError
    NOT_FOUND = "not_found"  # return it: the caller decides
    FATAL = "fatal"  # FatalError
    SKIP_RECORD = "skip_record"  # SkippableRecordError (connectors opt in per status)


_A = Action
#: Status code -> action.  2xx are OK; 207 too: the caller reads per-record results.
STATUS_ACTIONS: Final[Mapping[int, Action]] = MappingProxyType(
    {
        **dict.fromkeys(range(200, 300), _A.OK),
        304: _A.OK,
        401: _A.AUTH,
        403: _A.AUTH,
        404: _A.NOT_FOUND,
        408: _A.RETRY,
        423: _A.RETRY,  # HubSpot: Locked, wait >= 2 s
        425: _A.RETRY,
        429: _A.RATE_LIMITED,
        477: _A.RETRY,  # HubSpot: Migration in Progress (Retry-After)
        **dict.fromkeys((500, 502, 503, 504), _A.RETRY),
        **dict.fromkeys(range(520, 530), _A.RETRY),  # Cloudflare-style origin errors
        501: _A.FATAL,
        505: _A.FATAL,
    }
)
#: Codes not in the table, by their hundreds: a redirect is not followed (FATAL).
CLASS_ACTIONS: Final[Mapping[int, Action]] = MappingProxyType(
    {1: _A.FATAL, 2: _A.OK, 3: _A.FATAL, 4: _A.FATAL, 5: _A.RETRY}
)


def action_for(status: int, actions: Mapping[int, Action] = STATUS_ACTIONS) -> Action:
    """The action for ``status`` in ``actions``, else by its class."""
    return actions.get(status) or CLASS_ACTIONS.get(status // 100, Action.FATAL)


def _user_agent() -> str:
    try:
        return f"the-plugs/{version('the-plugs')}"
    except PackageNotFoundError:
        return "the-plugs/0+unknown"


USER_AGENT: Final = _user_agent()
TIMEOUT: Final = httpx.Timeout(30.0, connect=5.0)


@dataclass(frozen=True)
class Throttle:
    """The shared limit a client's requests count against: ``key`` names the vendor
    account (and endpoint family, e.g. ``hubspot:<portal>:search``)."""

    limiter: RateLimiter
    key: str
    limit: Limit | Concurrency


class _Transient(Exception):
    """An attempt that may pass if repeated; internal to the retry loop."""

    def __init__(self, message: str, *, server_wait: float | None, status: int | None) -> None:
        super().__init__(message)
        self.message, self.server_wait, self.status = message, server_wait, status

    def final(self, attempts: int) -> RetryableError:
        kind = RateLimitedError if self.status == 429 else RetryableError
        error = kind(f"{self.message} (after {attempts} attempts)", retry_after=self.server_wait)
        return _with_status(error, self.status)


_E = TypeVar("_E", bound=Exception)


def _with_status(error: _E, status: int | None) -> _E:
    """Attach the HTTP status (None: no response) as ``error.status_code``."""
    error.status_code = status  # type: ignore[attr-defined]
    return error


class VendorClient:
    """One vendor's HTTP client (one :class:`httpx.Client`, one connection pool).

    Args:
        name: the vendor's name, used in messages (``hubspot``).
        base_url: prefix of relative request URLs; its origin is allowed for :meth:`follow`.
        auth: an :class:`httpx.Auth` (bearer token, OAuth refresh, ...).
        headers: extra default headers (a ``User-Agent`` of ours is always sent).
        transport: the transport, e.g. :class:`httpx.MockTransport` in tests; default the
            guarded way out (:class:`~connectors.egress.GuardedTransport`).
        status_actions: this vendor's overrides, merged over :data:`STATUS_ACTIONS`.
        throttle: the shared rate limit to take a slot of before each attempt.
        allowed_hosts: more origins :meth:`follow` may fetch besides ``base_url``'s: bare
            hosts (https on 443) or ``scheme://host:port``.
        allow_private: let requests reach non-public addresses and plain http (local
            simulators); default ``PLUGS_ALLOW_PRIVATE_URLS``.
        max_attempts: attempts per request before giving up.
        max_inline_wait: longest wait (s) slept inside a request; beyond it the error is
            raised with ``retry_after`` for the caller to park the work.
        backoff: first backoff (s) when the vendor gives no wait; doubles, with jitter.
        sleep: how to wait (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        name: str = "vendor",
        base_url: str = "",
        auth: httpx.Auth | None = None,
        headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        status_actions: Mapping[int, Action] | None = None,
        throttle: Throttle | None = None,
        allowed_hosts: Collection[str] | None = None,
        allow_private: bool | None = None,
        max_attempts: int = 5,
        max_inline_wait: float = 30.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.name = name
        self.actions: Mapping[int, Action] = {**STATUS_ACTIONS, **(status_actions or {})}
        self.throttle = throttle
        self.max_attempts, self.max_inline_wait = max_attempts, max_inline_wait
        self._backoff = wait_random_exponential(multiplier=backoff, max=max_inline_wait)
        self._sleep = sleep
        self.allow_private = _allow_private() if allow_private is None else allow_private
        self._client = httpx.Client(
            base_url=base_url,
            auth=auth,
            headers={"User-Agent": USER_AGENT, **(headers or {})},
            transport=transport
            if transport is not None
            else GuardedTransport(allow_private=self.allow_private),
            timeout=TIMEOUT,
            follow_redirects=False,
        )
        base = self._client.base_url
        own = [f"{base.scheme}://{base.netloc.decode('ascii')}"] if base.host else []
        self.allowed_origins = (*own, *(allowed_hosts or ()))

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def request(self, method: str, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """Send a request (``kwargs`` as :meth:`httpx.Client.request`) with retries.

        Returns 2xx (including 207) and 404 responses; raises :class:`AuthError`,
        :class:`FatalError`, :class:`SkippableRecordError` (by the status table),
        :class:`RateLimitedError` or :class:`RetryableError` (with ``retry_after``).
        Each error has ``status_code`` (None when no response came).
        """
        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=retry_if_exception_type(_Transient),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, method, url, kwargs)
        except _Transient as failure:
            raise failure.final(self.max_attempts) from None
        except ConnectorError as error:  # e.g. the shared limiter: no response came
            if not hasattr(error, "status_code"):
                _with_status(error, None)
            raise

    def follow(self, url: str | httpx.URL, **kwargs: Any) -> httpx.Response:
        """GET a vendor-supplied URL (paging link) once :func:`check_url` allows it."""
        safe = check_url(url, self.allowed_origins, allow_private=self.allow_private)
        return self.request("GET", safe, **kwargs)

    def _wait(self, state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        if isinstance(failure, _Transient) and failure.server_wait is not None:
            if (
                failure.status == 429
                and state.idle_for + failure.server_wait > self.max_inline_wait
            ):
                # Rate limited again: the waits add up, so the work is parked instead of
                # holding this worker's slot (the caller resumes it after ``retry_after``).
                raise failure.final(state.attempt_number)
            return failure.server_wait
        return float(self._backoff(state))

    def _attempt(self, method: str, url: str | httpx.URL, kwargs: dict[str, Any]) -> httpx.Response:
        response = self._send(method, url, kwargs)
        self._observe(response)
        action = action_for(response.status_code, self.actions)
        if action in (Action.OK, Action.NOT_FOUND):
            return response
        if action in (Action.RETRY, Action.RATE_LIMITED):
            raise self._transient(response)
        raise _with_status(self._final_error(action, response), response.status_code)

    def _send(self, method: str, url: str | httpx.URL, kwargs: dict[str, Any]) -> httpx.Response:
        slot: Any = nullcontext()
        if self.throttle is not None:
            limiter, key, limit = self.throttle.limiter, self.throttle.key, self.throttle.limit
            if isinstance(limit, Concurrency):
                slot = limiter.lease(key, limit, max_wait=self.max_inline_wait)
            else:
                limiter.acquire(key, limit, max_wait=self.max_inline_wait)
        try:
            with slot:
                return self._client.request(method, url, **kwargs)
        except httpx.UnsupportedProtocol as exc:
            message = describe(self._request_of(exc, method, url), "unsupported URL")
            raise _with_status(FatalError(message), None) from None
        except httpx.TransportError as exc:
            message = describe(self._request_of(exc, method, url), type(exc).__name__)
            raise _Transient(message, server_wait=None, status=None) from None

    def _request_of(
        self, exc: httpx.TransportError, method: str, url: str | httpx.URL
    ) -> httpx.Request:
        try:
            return exc.request
        except RuntimeError:  # raised before httpx attached the request
            return self._client.build_request(method, url)

    def _observe(self, response: httpx.Response) -> None:
        if self.throttle is not None:
            remaining, reset_after = rate_observation(response)
            self.throttle.limiter.observe(
                self.throttle.key, remaining=remaining, reset_after=reset_after
            )

    def _transient(self, response: httpx.Response) -> Exception:
        status, message = response.status_code, describe_response(response)
        try:
            wait = rate_limit_wait(response)
        except RateLimitedError as daily:  # a daily cap: never waited for inline
            error = RateLimitedError(f"{message} (daily cap)", retry_after=daily.retry_after)
            return _with_status(error, status)
        if wait is not None and wait > self.max_inline_wait:
            kind = RateLimitedError if status == 429 else RetryableError
            return _with_status(kind(message, retry_after=wait), status)
        return _Transient(message, server_wait=wait, status=status)

    def _final_error(self, action: Action, response: httpx.Response) -> Exception:
        message = describe_response(response)
        if action is Action.AUTH:
            return AuthError(message)
        if action is Action.SKIP_RECORD:
            return SkippableRecordError(message)
        return FatalError(message)


def _allow_private() -> bool:
    return get_settings().allow_private_urls
