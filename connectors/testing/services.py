"""The real services a test run uses: finding them, and taking a part of each of its own.

* PostgreSQL: a database of the run's own, migrated to head, with an application role that
  owns nothing and cannot bypass row-level security; both dropped at the end.
* Redis: an empty db number no other run holds, flushed at the end.
"""

from __future__ import annotations

import importlib
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
from sqlalchemy import text
from sqlalchemy.engine import make_url

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
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
    """Why Redis at ``url`` cannot be used, or None."""
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


@contextmanager
def scratch_database(server_url: str, tag: str) -> Iterator[dict[str, str]]:
    """A database ``plugs_test_TAG`` on the server at ``server_url``, migrated to head,
    with the application role ``plugs_app_TAG`` and the system role ``plugs_system_TAG``;
    all dropped on exit.

    Yields ``owner_url`` (the schema owner: the user of ``server_url``), ``app_url`` (a
    role that owns nothing and cannot bypass row-level security), ``system_url`` (the role
    of cross-organization work: BYPASSRLS, owns nothing, not a superuser), ``name``,
    ``role`` and ``system_role``.
    """
    from models import migrate, rls
    from models.session import make_engine

    name, role, system_role = f"plugs_test_{tag}", f"plugs_app_{tag}", f"plugs_system_{tag}"
    password, system_password = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    admin = make_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        owner_url = make_url(server_url).set(database=name)
        owner = make_engine(owner_url)
        try:
            migrate.upgrade(owner)
            with owner.begin() as connection:
                rls.create_app_role(connection, role, password)
                rls.create_system_role(connection, system_role, system_password)
        finally:
            owner.dispose()
        app_url = owner_url.set(username=role, password=password)
        system_url = owner_url.set(username=system_role, password=system_password)
        yield {
            "owner_url": owner_url.render_as_string(hide_password=False),
            "app_url": app_url.render_as_string(hide_password=False),
            "system_url": system_url.render_as_string(hide_password=False),
            "name": name,
            "role": role,
            "system_role": system_role,
        }
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            for each in (role, system_role):
                found = text("SELECT 1 FROM pg_roles WHERE rolname = :role")
                if connection.scalar(found, {"role": each}):
                    connection.execute(text(f'DROP OWNED BY "{each}"'))
                    connection.execute(text(f'DROP ROLE "{each}"'))
        admin.dispose()


def reload_settings() -> None:
    """Forget the cached settings and database (and reload :mod:`celeryconfig` if it was
    loaded) after ``PLUGS_*`` variables changed."""
    from core.settings import get_settings
    from models.session import get_database

    if get_database.cache_info().currsize:
        get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()
    if "celeryconfig" in sys.modules:
        importlib.reload(sys.modules["celeryconfig"])
