"""Finding the real services the tests use, and taking a Redis db number of our own."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
#: Services found missing in this run, reported at its end.
SKIPPED: set[str] = set()
_LOCK_KEY = "plugs-tests:lock"


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_error(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None."""
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def redis_error(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return str(exc)
    return None


def claim_redis_db(base_url: str) -> tuple[str, Callable[[], None]]:
    """An empty Redis db number (1-15) no other test run holds, and a release function.

    The claim is a key in the db itself, set with NX, so two runs never share a db.
    """
    parts = urlsplit(base_url)
    for number in range(15, 0, -1):
        url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))
        client = redis.Redis.from_url(url)
        if client.dbsize() == 0 and client.set(_LOCK_KEY, "1", nx=True, ex=3 * 3600):

            def release(client: redis.Redis = client) -> None:
                client.flushdb()
                client.close()

            return url, release
        client.close()
    raise RuntimeError("no empty Redis database (1-15) is free for the tests")
