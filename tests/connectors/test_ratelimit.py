"""Shared rate limits: windows, pauses learned from vendors, concurrency leases.

The in-process limiter runs on a fake clock; the Redis limiter on the real Redis (its own
db number from the ``redis_url`` fixture) and across real OS processes.
"""

from __future__ import annotations

import bisect
import multiprocessing
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from connectors.ratelimit import (
    MAILCHIMP_CONNECTIONS,
    REDIS_TIMEOUT_SECONDS,
    Concurrency,
    InProcessRateLimiter,
    Limit,
    PollingLimiter,
    RedisRateLimiter,
    limiter_from_settings,
)
from core.errors import RateLimitedError, RetryableError
from core.settings import Settings
from tests.webhooks.proxy import proxy_to

KEY = "vendor:account-1"


class FakeClock:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def in_process(clock: FakeClock) -> InProcessRateLimiter:
    return InProcessRateLimiter(margin=0.0, clock=clock, sleep=clock.sleep)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def prefix() -> str:
    return f"plugs-test:{uuid.uuid4().hex[:8]}"


@pytest.fixture
def redis_limiter(redis_client: redis.Redis, prefix: str) -> RedisRateLimiter:
    return RedisRateLimiter(redis_client, prefix=prefix)


@pytest.fixture(params=["in-process", "redis"])
def real_time_limiter(request: pytest.FixtureRequest) -> PollingLimiter:
    """Each limiter on real time, for behaviour both must share."""
    if request.param == "in-process":
        return InProcessRateLimiter()
    return request.getfixturevalue("redis_limiter")


# --- windows ---------------------------------------------------------------------------------


def test_the_in_process_limiter_admits_exactly_n_in_a_window(in_process, clock):
    for _ in range(5):
        in_process.acquire(KEY, Limit(5, 1.0), max_wait=0)
    with pytest.raises(RateLimitedError) as caught:
        in_process.acquire(KEY, Limit(5, 1.0), max_wait=0)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert clock.slept == []


def test_the_next_request_waits_for_the_oldest_to_leave_the_window(in_process, clock):
    for _ in range(5):
        in_process.acquire(KEY, Limit(5, 1.0), max_wait=0)
    clock.now += 0.4
    in_process.acquire(KEY, Limit(5, 1.0), max_wait=1.0)
    assert sum(clock.slept) == pytest.approx(0.6, abs=0.006)


def test_a_wait_longer_than_max_wait_raises_without_sleeping(in_process, clock):
    for _ in range(5):
        in_process.acquire(KEY, Limit(5, 10.0), max_wait=0)
    with pytest.raises(RateLimitedError) as caught:
        in_process.acquire(KEY, Limit(5, 10.0), max_wait=3.0)
    assert caught.value.retry_after == pytest.approx(10.0) and clock.slept == []


def test_keys_are_limited_separately(in_process):
    in_process.acquire("hubspot:portal-1", Limit(1, 10.0), max_wait=0)
    in_process.acquire("hubspot:portal-2", Limit(1, 10.0), max_wait=0)


def test_the_margin_widens_every_window(clock):
    limiter = InProcessRateLimiter(margin=0.05, clock=clock, sleep=clock.sleep)
    limiter.acquire(KEY, Limit(1, 1.0), max_wait=0)
    with pytest.raises(RateLimitedError) as caught:
        limiter.acquire(KEY, Limit(1, 1.0), max_wait=0)
    assert caught.value.retry_after == pytest.approx(1.05)


def test_a_vendors_remaining_zero_pauses_the_key_until_its_reset(in_process, clock):
    in_process.observe(KEY, remaining=0, reset_after=1.0)
    in_process.acquire(KEY, Limit(100, 10.0), max_wait=2.0)
    assert sum(clock.slept) == pytest.approx(1.0, abs=0.006)


def test_headers_with_requests_left_do_not_pause(in_process, clock):
    in_process.observe(KEY, remaining=12, reset_after=5.0)
    in_process.observe(KEY, remaining=None, reset_after=5.0)
    in_process.observe(KEY, remaining=0, reset_after=None)
    in_process.acquire(KEY, Limit(100, 10.0), max_wait=0)


def _send_through_shared_limit(
    url: str, prefix: str, ready: Any, go: Any, seconds: float, results: Any
) -> None:
    """One worker process: up to 50 requests through one key for ``seconds``.

    The stamps are taken after Redis answers, so a worker descheduled on a busy machine
    stamps late; the margin absorbs that (as it absorbs network jitter towards a vendor).
    """
    limiter = RedisRateLimiter(redis.Redis.from_url(url), prefix=prefix, margin=0.25)
    ready.release()
    go.wait(60)
    stop_at, stamps = time.time() + seconds, []
    for _ in range(50):
        try:
            limiter.acquire(KEY, Limit(20, 1.0), max_wait=max(0.0, stop_at - time.time()))
        except RateLimitedError:
            break
        stamps.append(time.time())
    results.put(stamps)


def _busiest_second(stamps: list[float]) -> int:
    stamps = sorted(stamps)
    return max(bisect.bisect_left(stamps, t + 1.0) - i for i, t in enumerate(stamps))


def _processes() -> Any:
    """Fresh OS processes, each with its own Redis connection and nothing shared with the
    test process.  A fork server pays the imports once, instead of ten spawns paying them
    ten times on a two-CPU machine."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    return context


def test_the_redis_limit_holds_across_ten_processes(redis_url, prefix):
    context = _processes()
    ready, go, results = context.Semaphore(0), context.Event(), context.Queue()
    args = (redis_url, prefix, ready, go, 3.0, results)
    workers = [context.Process(target=_send_through_shared_limit, args=args) for _ in range(10)]
    for worker in workers:
        worker.start()
    for _ in workers:
        assert ready.acquire(timeout=30)
    go.set()
    stamps = [stamp for _ in workers for stamp in results.get(timeout=30)]
    for worker in workers:
        worker.join(timeout=10)
    assert _busiest_second(stamps) <= 20
    assert len(stamps) >= 50  # about three windows' worth: the limit admits, not only refuses


def test_the_redis_limiter_admits_exactly_n_in_a_window(redis_limiter):
    for _ in range(20):
        redis_limiter.acquire(KEY, Limit(20, 1.0), max_wait=0)
    with pytest.raises(RateLimitedError) as caught:
        redis_limiter.acquire(KEY, Limit(20, 1.0), max_wait=0)
    assert 0.9 < caught.value.retry_after <= 1.05


def test_a_vendors_remaining_zero_pauses_every_redis_holder(redis_url, redis_limiter, prefix):
    with redis.Redis.from_url(redis_url) as other_connection:
        other_worker = RedisRateLimiter(other_connection, prefix=prefix)
        redis_limiter.observe(KEY, remaining=0, reset_after=1.0)
        started = time.monotonic()
        other_worker.acquire(KEY, Limit(100, 10.0), max_wait=3.0)
    assert 0.9 <= time.monotonic() - started < 1.5


def test_a_pause_is_lengthened_never_shortened(redis_limiter):
    redis_limiter.observe(KEY, remaining=0, reset_after=60)
    redis_limiter.observe(KEY, remaining=0, reset_after=1)
    with pytest.raises(RateLimitedError) as caught:
        redis_limiter.acquire(KEY, Limit(100, 10.0), max_wait=0)
    assert caught.value.retry_after > 55


def test_every_redis_key_the_limiter_writes_expires(redis_limiter, redis_client, prefix):
    redis_limiter.acquire(KEY, Limit(5, 2.0), max_wait=0)
    redis_limiter.observe(KEY, remaining=0, reset_after=5)
    with redis_limiter.lease("mailchimp:us6", Concurrency(2, lease_seconds=30), max_wait=0):
        keys = redis_client.keys(f"{prefix}:*")
        assert len(keys) == 3
        assert all(0 < redis_client.pttl(key) <= 31_000 for key in keys)
    assert len(redis_client.keys(f"{prefix}:*")) == 2  # the last release empties the leases


def test_an_unreachable_redis_is_a_retryable_error():
    unreachable = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with unreachable, pytest.raises(RetryableError, match="rate limiter is unavailable"):
        RedisRateLimiter(unreachable).acquire(KEY, Limit(1, 1.0), max_wait=0)


def test_a_silent_redis_is_a_retryable_error_within_seconds(redis_url: str) -> None:
    """A Redis that stops answering (packets dropped, no reset) fails the call in about two
    of the limiter's timeouts, rather than hanging the page task that asked."""
    address = redis.connection.parse_url(redis_url)
    with proxy_to(address.get("host", "127.0.0.1"), int(address.get("port", 6379))) as proxy:
        url = f"redis://127.0.0.1:{proxy.port}/{address.get('db', 0)}"
        limiter = limiter_from_settings(Settings(redis_url=url))
        limiter.acquire(KEY, Limit(100, 1.0), max_wait=0)  # connected and answering
        proxy.blackhole()
        started = time.monotonic()
        with pytest.raises(RetryableError, match="rate limiter is unavailable"):
            limiter.acquire(KEY, Limit(100, 1.0), max_wait=0)
        waited = time.monotonic() - started
        proxy.restore()
    assert REDIS_TIMEOUT_SECONDS <= waited < 3 * REDIS_TIMEOUT_SECONDS + 1


# --- concurrency -----------------------------------------------------------------------------


def test_never_more_than_ten_mailchimp_calls_are_in_flight(real_time_limiter):
    in_flight, peak, done, lock = 0, 0, [], threading.Lock()

    def call() -> None:
        nonlocal in_flight, peak
        with real_time_limiter.lease("mailchimp:us6", MAILCHIMP_CONNECTIONS, max_wait=10):
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.2)
            with lock:
                in_flight -= 1
        done.append(1)

    threads = [threading.Thread(target=call) for _ in range(15)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=15)
    assert peak == 10 and len(done) == 15


def test_a_full_concurrency_limit_raises_when_nothing_frees_in_time(real_time_limiter):
    one = Concurrency(1)
    with (
        real_time_limiter.lease(KEY, one, max_wait=0),
        pytest.raises(RateLimitedError),
        real_time_limiter.lease(KEY, one, max_wait=0.1),
    ):
        pass
    with real_time_limiter.lease(KEY, Concurrency(1), max_wait=0):
        pass


def test_an_abandoned_in_process_lease_expires_after_its_ttl(in_process, clock):
    one = Concurrency(1, lease_seconds=5.0)
    abandoned = in_process.lease(KEY, one, max_wait=0)
    abandoned.__enter__()  # its holder never comes back
    with in_process.lease(KEY, one, max_wait=10):
        assert 5.0 <= sum(clock.slept) < 5.1


def _hold_a_lease_until_killed(url: str, prefix: str, ready: Any) -> None:
    limiter = RedisRateLimiter(redis.Redis.from_url(url), prefix=prefix)
    with limiter.lease(KEY, Concurrency(1, lease_seconds=1.0), max_wait=5):
        ready.set()
        time.sleep(60)


def test_a_killed_workers_redis_lease_expires_after_its_ttl(redis_url, redis_limiter, prefix):
    context = _processes()
    ready = context.Event()
    holder = context.Process(target=_hold_a_lease_until_killed, args=(redis_url, prefix, ready))
    holder.start()
    assert ready.wait(30)
    leased_at = time.monotonic()
    holder.kill()
    holder.join(timeout=10)
    one = Concurrency(1, lease_seconds=1.0)
    with pytest.raises(RateLimitedError), redis_limiter.lease(KEY, one, max_wait=0):
        pass
    with redis_limiter.lease(KEY, one, max_wait=5):
        assert 0.8 <= time.monotonic() - leased_at < 1.6


# --- configuration ---------------------------------------------------------------------------


def test_the_limiter_is_shared_redis_when_configured_else_in_process(redis_url):
    from core.settings import Settings  # not imported by the worker processes

    assert isinstance(limiter_from_settings(Settings(redis_url=redis_url)), RedisRateLimiter)
    embedded = limiter_from_settings(Settings(redis_url=None))
    assert isinstance(embedded, InProcessRateLimiter)
    assert limiter_from_settings(Settings(redis_url=None)) is embedded
