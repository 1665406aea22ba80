"""A limit per vendor account shared by all workers, fed by the rate headers vendors send.

* :class:`Limit` (N requests per T seconds, a sliding window) and :class:`Concurrency`
  (N requests in flight, held as leases that expire) describe what a vendor documents;
  the documented figures are the constants below, with their sources.
* :class:`RateLimiter` is the protocol the HTTP client uses: ``acquire`` a request slot
  (or ``lease`` a connection slot) before each attempt, ``observe`` what the vendor said.
* :class:`RedisRateLimiter` shares the limit across processes and machines (atomic Lua,
  Redis server time, every key with a TTL); :class:`InProcessRateLimiter` is the embedded
  default.  :func:`limiter_from_settings` picks one.

Daily caps (HubSpot 250,000+/day, Zoom's per-day figures) are not windows we count: the
vendors report them in headers and 429s, which ``observe`` turns into a pause for everyone.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Final, NamedTuple, Protocol

import redis
from redis.backoff import ExponentialBackoff
from redis.commands.core import Script
from redis.retry import Retry

from core.errors import RateLimitedError, RetryableError

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = [
    "Concurrency",
    "InProcessRateLimiter",
    "Limit",
    "PollingLimiter",
    "RateLimiter",
    "RedisRateLimiter",
    "limiter_from_settings",
]


@dataclass(frozen=True)
class Limit:
    """At most ``requests`` requests in any ``per_seconds`` seconds (a sliding window)."""

    requests: int
    per_seconds: float

    def __post_init__(self) -> None:
        if self.requests < 1 or self.per_seconds <= 0:
            raise ValueError("a Limit needs requests >= 1 and per_seconds > 0")


@dataclass(frozen=True)
class Concurrency:
    """At most ``max_in_flight`` requests at once; a slot held longer than
    ``lease_seconds`` (a killed worker's) is taken back."""

    max_in_flight: int
    lease_seconds: float = 150.0

    def __post_init__(self) -> None:
        if self.max_in_flight < 1 or self.lease_seconds <= 0:
            raise ValueError("a Concurrency needs max_in_flight >= 1 and lease_seconds > 0")


# --- documented limits (docs/vendors/*.md#rate-limits; [C] official, [S] secondary) -------
# HubSpot (docs/vendors/hubspot.md): burst per private app [C changelog, S guidelines].
HUBSPOT_FREE_STARTER: Final = Limit(100, 10)
HUBSPOT_PROFESSIONAL: Final = Limit(190, 10)
HUBSPOT_ENTERPRISE: Final = Limit(190, 10)
HUBSPOT_LIMIT_INCREASE_PACK: Final = Limit(250, 10)
HUBSPOT_PUBLIC_APP: Final = Limit(110, 10)  # per installing account, search excluded [S]
HUBSPOT_SEARCH: Final = Limit(5, 1)  # per account [C changelog]
# Mailchimp (docs/vendors/mailchimp.md): 10 simultaneous connections per API key [C];
# calls time out at 120 s, so a lease outlives any live call.
MAILCHIMP_CONNECTIONS: Final = Concurrency(10, lease_seconds=150.0)
# Zoom (docs/vendors/zoom.md): per account, shared by all its apps, counted per label [C].
ZOOM_LIMITS: Final[Mapping[tuple[str, str], Limit]] = {
    ("free", "light"): Limit(4, 1),
    ("free", "medium"): Limit(2, 1),
    ("free", "heavy"): Limit(1, 1),
    ("free", "resource-intensive"): Limit(10, 60),
    ("pro", "light"): Limit(30, 1),
    ("pro", "medium"): Limit(20, 1),
    ("pro", "heavy"): Limit(10, 1),
    ("pro", "resource-intensive"): Limit(10, 60),
    ("business", "light"): Limit(80, 1),
    ("business", "medium"): Limit(60, 1),
    ("business", "heavy"): Limit(40, 1),
    ("business", "resource-intensive"): Limit(20, 60),
}
# Microsoft Graph (docs/vendors/teams.md) [C].
GRAPH_PER_APP: Final = Limit(2000, 1)  # across all tenants
GRAPH_MAILBOX: Final = Limit(10_000, 600)  # Outlook/events, per app per mailbox
GRAPH_MAILBOX_CONCURRENCY: Final = Concurrency(4, lease_seconds=150.0)
GRAPH_TEAMS_POST_CHANNEL_MESSAGE: Final = Limit(50, 1)  # per app per tenant
GRAPH_TEAMS_POST_CHAT_MESSAGE: Final = Limit(20, 1)
GRAPH_TEAMS_GET_CHANNEL_MESSAGE: Final = Limit(20, 1)
GRAPH_TEAMS_OTHER_GET: Final = Limit(30, 1)
GRAPH_TEAMS_ONE_TEAM_OR_CHANNEL: Final = Limit(4, 1)  # per app, on one team or channel

#: Seconds added to every window: requests reach the vendor with a few ms of jitter, and
#: without slack a full window can look one request over on the vendor's clock.
DEFAULT_MARGIN: Final = 0.05
#: How often a full Concurrency is polled (a release is not signalled).
LEASE_POLL: Final = 0.02


class RateLimiter(Protocol):
    """A limit per key (a vendor account, or an account and an endpoint family)."""

    def acquire(self, key: str, limit: Limit, *, max_wait: float) -> None:
        """Take a request slot, waiting up to ``max_wait`` s; else raise
        :class:`RateLimitedError` with ``retry_after`` = the estimated wait."""

    def lease(
        self, key: str, concurrency: Concurrency, *, max_wait: float
    ) -> AbstractContextManager[None]:
        """Hold one of ``max_in_flight`` slots for the ``with`` block (same waiting rules)."""

    def observe(self, key: str, *, remaining: int | None, reset_after: float | None) -> None:
        """Learn from the vendor's headers: ``remaining=0`` pauses every holder of ``key``
        for ``reset_after`` seconds."""


class Wait(NamedTuple):
    """A verdict: 0 s means admitted; ``exact`` False means a slot may free sooner."""

    seconds: float
    exact: bool = True


class PollingLimiter(ABC):
    """The waiting shared by both limiters; subclasses answer one try at a time."""

    def __init__(
        self,
        *,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.margin = margin
        self._clock = clock
        self._sleep = sleep

    @abstractmethod
    def _try_acquire(self, key: str, limit: Limit, member: str) -> Wait: ...

    @abstractmethod
    def _try_lease(self, key: str, concurrency: Concurrency, token: str) -> Wait: ...

    @abstractmethod
    def _release(self, key: str, token: str) -> None: ...

    def acquire(self, key: str, limit: Limit, *, max_wait: float) -> None:
        member = uuid.uuid4().hex
        self._wait_for(lambda: self._try_acquire(key, limit, member), key, max_wait)

    @contextmanager
    def lease(self, key: str, concurrency: Concurrency, *, max_wait: float) -> Iterator[None]:
        token = uuid.uuid4().hex
        self._wait_for(lambda: self._try_lease(key, concurrency, token), key, max_wait)
        try:
            yield
        finally:
            self._release(key, token)

    def _wait_for(self, attempt: Callable[[], Wait], key: str, max_wait: float) -> None:
        deadline = self._clock() + max(0.0, max_wait)
        while True:
            wait = attempt()
            if wait.seconds <= 0:
                return
            left = deadline - self._clock()
            if left <= 0 or (wait.exact and wait.seconds > left):
                raise RateLimitedError(
                    f"rate limit {key!r} is exhausted", retry_after=round(wait.seconds, 3)
                )
            pause = wait.seconds if wait.exact else min(wait.seconds, LEASE_POLL)
            self._sleep(min(pause + random.uniform(0, 0.005), left))


class InProcessRateLimiter(PollingLimiter):
    """The same limits within one process (threads), for the embedded default."""

    def __init__(
        self,
        *,
        margin: float = DEFAULT_MARGIN,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(margin=margin, clock=clock, sleep=sleep)
        self._lock = threading.Lock()
        self._logs: dict[str, deque[float]] = {}
        self._blocked_until: dict[str, float] = {}
        self._leases: dict[str, dict[str, float]] = {}

    def _blocked_for(self, key: str, now: float) -> float:
        return max(0.0, self._blocked_until.get(key, now) - now)

    def _try_acquire(self, key: str, limit: Limit, member: str) -> Wait:
        with self._lock:
            now = self._clock()
            if blocked := self._blocked_for(key, now):
                return Wait(blocked)
            window = limit.per_seconds + self.margin
            log = self._logs.setdefault(key, deque())
            while log and log[0] <= now - window:
                log.popleft()
            if len(log) < limit.requests:
                log.append(now)
                return Wait(0.0)
            return Wait(log[0] + window - now)

    def _try_lease(self, key: str, concurrency: Concurrency, token: str) -> Wait:
        with self._lock:
            now = self._clock()
            if blocked := self._blocked_for(key, now):
                return Wait(blocked)
            leases = self._leases.setdefault(key, {})
            for held, expires in list(leases.items()):
                if expires <= now:
                    del leases[held]
            if len(leases) < concurrency.max_in_flight:
                leases[token] = now + concurrency.lease_seconds
                return Wait(0.0)
            return Wait(min(leases.values()) - now, exact=False)

    def _release(self, key: str, token: str) -> None:
        with self._lock:
            self._leases.get(key, {}).pop(token, None)

    def observe(self, key: str, *, remaining: int | None, reset_after: float | None) -> None:
        """A vendor's ``remaining=0`` pauses this process's holders of ``key``."""
        if remaining != 0 or not reset_after or reset_after <= 0:
            return
        with self._lock:
            until = self._clock() + reset_after
            self._blocked_until[key] = max(until, self._blocked_until.get(key, until))


# --- Redis: one sorted set per key, made atomic by Lua, timed by the Redis server -------

#: KEYS: window log (zset member -> admission time, µs), pause flag (set by observe).
#: ARGV: max requests, window µs, unique member.  Returns 0 if admitted, else µs to wait.
_ACQUIRE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
local window = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('ZADD', KEYS[1], now, ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(window / 1000) + 1000)
  return 0
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return math.max(1, tonumber(oldest[2]) + window - now)
"""
#: KEYS: leases (zset token -> expiry µs), pause flag.  ARGV: max in flight, lease µs,
#: token.  Returns 0 if leased; > 0 µs paused (exact); < 0 minus µs until the first lease
#: expires (a release may come sooner).
_LEASE_LUA: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local paused = redis.call('PTTL', KEYS[2])
if paused > 0 then return paused * 1000 end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[1]) then
  local lease = tonumber(ARGV[2])
  redis.call('ZADD', KEYS[1], now + lease, ARGV[3])
  local ttl = math.ceil(lease / 1000) + 1000
  if redis.call('PTTL', KEYS[1]) < ttl then redis.call('PEXPIRE', KEYS[1], ttl) end
  return 0
end
local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
return -math.max(1, tonumber(first[2]) - now)
"""
#: KEYS: pause flag.  ARGV: ms.  Lengthens a pause, never shortens it.
_PAUSE_LUA: Final = """
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 0
"""


class RedisRateLimiter(PollingLimiter):
    """Limits shared by every process and machine that uses the same Redis.

    Each try is one Lua script run on Redis server time, so it is atomic and worker clocks
    do not matter; every key it writes expires.  Keys are ``{prefix}:{<key>}:log|leases|pause``
    (one hash slot per key, so it also works on Redis Cluster).  A Redis failure is a
    :class:`RetryableError`: the work runs again later rather than unthrottled.
    """

    def __init__(
        self,
        redis_client: redis.Redis,
        prefix: str = "plugs:rl",
        *,
        margin: float = DEFAULT_MARGIN,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(margin=margin, sleep=sleep)
        self.prefix = prefix
        self._acquire_script = redis_client.register_script(_ACQUIRE_LUA)
        self._lease_script = redis_client.register_script(_LEASE_LUA)
        self._pause_script = redis_client.register_script(_PAUSE_LUA)
        self._redis = redis_client

    def keys_for(self, key: str) -> tuple[str, str, str]:
        """The Redis keys of ``key``: its window log, its leases and its pause flag."""
        base = f"{self.prefix}:{{{key}}}"
        return f"{base}:log", f"{base}:leases", f"{base}:pause"

    def _run(self, script: Script, keys: list[str], args: list[str | int]) -> int:
        try:
            return int(script(keys=keys, args=args))
        except redis.RedisError as exc:
            raise RetryableError(
                f"the shared rate limiter is unavailable ({type(exc).__name__})"
            ) from None

    def _try_acquire(self, key: str, limit: Limit, member: str) -> Wait:
        log, _, pause = self.keys_for(key)
        window_us = round((limit.per_seconds + self.margin) * 1_000_000)
        waited = self._run(self._acquire_script, [log, pause], [limit.requests, window_us, member])
        return Wait(waited / 1_000_000)

    def _try_lease(self, key: str, concurrency: Concurrency, token: str) -> Wait:
        _, leases, pause = self.keys_for(key)
        lease_us = round(concurrency.lease_seconds * 1_000_000)
        args: list[str | int] = [concurrency.max_in_flight, lease_us, token]
        waited = self._run(self._lease_script, [leases, pause], args)
        return Wait(abs(waited) / 1_000_000, exact=waited > 0)

    def _release(self, key: str, token: str) -> None:
        try:
            self._redis.zrem(self.keys_for(key)[1], token)
        except redis.RedisError:
            pass  # the lease expires on its own

    def observe(self, key: str, *, remaining: int | None, reset_after: float | None) -> None:
        """A vendor's ``remaining=0`` pauses every process's holders of ``key``."""
        if remaining != 0 or not reset_after or reset_after <= 0:
            return
        pause = self.keys_for(key)[2]
        self._run(self._pause_script, [pause], [max(1, round(reset_after * 1000))])


_PROCESS_LIMITER: Final = InProcessRateLimiter()


#: Seconds a Redis call of the limiter may wait for a connection or an answer: a Redis
#: that went silent is then a RetryableError (the page runs again later), not a page task
#: that hangs while its lease thread keeps renewing it.
REDIS_TIMEOUT_SECONDS: Final = 3.0


@lru_cache(maxsize=4)
def _redis_limiter(url: str) -> RedisRateLimiter:
    client = redis.Redis.from_url(
        url,
        socket_timeout=REDIS_TIMEOUT_SECONDS,
        socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
        health_check_interval=30,
        # one retry (a connection Redis closed while idle), not redis-py's ten
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), 1),
    )
    return RedisRateLimiter(client)


def limiter_from_settings(settings: Settings) -> RateLimiter:
    """The shared Redis limiter when ``PLUGS_REDIS_URL`` is set, else this process's own."""
    if settings.redis_url is not None:
        return _redis_limiter(settings.redis_url.get_secret_value())
    return _PROCESS_LIMITER
