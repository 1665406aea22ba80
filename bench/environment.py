"""A scratch PostgreSQL database (migrated, with an application role) and a Redis db for
one benchmark run, both removed at the end.  Uses the same servers as the tests."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

from models import migrate, rls
from models.session import make_engine

PG_URL = os.environ.get(
    "PLUGS_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("PLUGS_TEST_REDIS_URL", "redis://127.0.0.1:6379")


@contextmanager
def scratch_database() -> Iterator[dict[str, str]]:
    """owner_url and app_url of a fresh migrated database, dropped afterwards."""
    tag = secrets.token_hex(4)
    name, role, password = f"plugs_bench_{tag}", f"plugs_bench_app_{tag}", secrets.token_urlsafe(12)
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    owner_url = make_url(PG_URL).set(database=name)
    owner = make_engine(owner_url)
    migrate.upgrade(owner)
    with owner.begin() as connection:
        rls.create_app_role(connection, role, password)
    owner.dispose()
    try:
        yield {
            "owner_url": owner_url.render_as_string(hide_password=False),
            "app_url": owner_url.set(username=role, password=password).render_as_string(
                hide_password=False
            ),
        }
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


@contextmanager
def scratch_redis() -> Iterator[str]:
    """An empty Redis db number (searched from 15 down), emptied afterwards."""
    for number in range(15, 0, -1):
        client = redis.Redis.from_url(f"{REDIS_URL}/{number}")
        if client.dbsize() == 0 and client.set("plugs-tests:lock", "bench", nx=True, ex=7200):
            try:
                yield f"{REDIS_URL}/{number}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    raise RuntimeError("no empty Redis db is free")
