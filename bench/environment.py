"""The scratch services of one benchmark run, all removed at the end: a PostgreSQL
database migrated to head with an application role and a system role, and an empty Redis
db.  The same servers and the same helpers as the tests (``connectors.testing.services``):
``PLUGS_TEST_DATABASE_URL`` and ``PLUGS_TEST_REDIS_URL``, defaults on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

from connectors.testing import services

PG_URL = os.environ.get("PLUGS_TEST_DATABASE_URL", services.DEFAULT_PG_URL)
REDIS_URL = os.environ.get("PLUGS_TEST_REDIS_URL", services.DEFAULT_REDIS_URL)


@contextmanager
def scratch_database() -> Iterator[dict[str, str]]:
    """``owner_url`` (the server's admin, owner of the schema), ``app_url`` (the application
    role: row-level security applies), ``system_url`` (the system role) of a fresh
    database; the database and both roles are dropped afterwards."""
    error = services.postgres_error(PG_URL)
    if error:
        raise SystemExit(f"PostgreSQL at PLUGS_TEST_DATABASE_URL is not usable: {error}")
    with services.scratch_database(PG_URL, f"bench_{secrets.token_hex(3)}") as database:
        yield database


@contextmanager
def scratch_redis() -> Iterator[str]:
    """The URL of an empty Redis db number no test run or benchmark holds, flushed after."""
    error = services.redis_error(REDIS_URL)
    if error:
        raise SystemExit(f"Redis at PLUGS_TEST_REDIS_URL is not usable: {error}")
    try:
        url, release = services.claim_redis_db(REDIS_URL)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    try:
        yield url
    finally:
        release()
