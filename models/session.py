"""Engines and the one API to open a unit of work.

Every unit of work says whose data it touches::

    db = get_database()
    with db.tenant(org_id, user_id=actor_id) as session:   # one organization
        session.add(Contact(first_name="Ada"))              # organization_id filled in
    with db.system("scheduler: scan due integrations") as session:  # all organizations
        ...

A unit of work commits when the block ends and rolls back if it raises.  Tenant sessions
see and write only their organization's rows (ORM filter on every database, row-level
security on PostgreSQL); system sessions must give a reason, which is logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from core.errors import TenancyError
from models import audit_trail, tenancy

log = logging.getLogger(__name__)
#: Lock a row we update without changing its keys: ``FOR NO KEY UPDATE`` on PostgreSQL, which
#: does not conflict with the ``KEY SHARE`` locks that inserting rows referencing it take
#: (a plain ``FOR UPDATE`` there deadlocks two transactions that both inserted children).
ROW_LOCK = {"key_share": True}


class PlugsSession(Session):
    """A Session that knows its organization (``info["organization_id"]``) or that it is a
    system session (``info["system_reason"]``); see :mod:`models.tenancy`."""


tenancy.install(PlugsSession)
audit_trail.install(PlugsSession)


def engine_options(url: URL) -> dict[str, Any]:
    """Pool settings per database: pre-ping and a full reset on return for PostgreSQL."""
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 30}}
    return {
        "pool_pre_ping": True,
        "pool_size": 5,
        "max_overflow": 10,
        "pool_reset_on_return": None,
        # Plain executemany: psycopg pipelines it and caches the statement, where one huge
        # multi-VALUES statement per batch spends its time re-parsing the SQL in Python.
        "use_insertmanyvalues": False,
    }


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()


def _configure_postgresql(engine: Engine) -> None:
    # Nothing tenant-related may survive a connection's return to the pool.
    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: ConnectionPoolEntry, reset_state: Any) -> None:
        dbapi_connection.rollback()
        if not reset_state.terminate_only:
            # One round trip, outside any transaction (a RESET rolled back undoes itself).
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                dbapi_connection.execute("CLOSE ALL; RESET ALL; DISCARD TEMP")
            finally:
                dbapi_connection.autocommit = autocommit


def make_engine(url: str | URL, **overrides: Any) -> Engine:
    """An engine for ``url`` with the settings this platform needs on that database."""
    url = make_url(url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **{**engine_options(url), **overrides})
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    elif url.get_backend_name() == "postgresql":
        _configure_postgresql(engine)
    return engine


class Database:
    """An engine and the units of work opened on it."""

    def __init__(self, url: str | URL, **engine_overrides: Any) -> None:
        self.engine = make_engine(url, **engine_overrides)
        self._sessions = sessionmaker(self.engine, class_=PlugsSession, expire_on_commit=False)

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def tenant(
        self, organization_id: uuid.UUID | str, *, user_id: uuid.UUID | str | None = None
    ) -> Iterator[PlugsSession]:
        """A unit of work on one organization's rows, acting as ``user_id`` when known."""
        info: dict[str, Any] = {"organization_id": _as_uuid(organization_id, "organization id")}
        if user_id is not None:
            info["user_id"] = _as_uuid(user_id, "user id")
        with self._unit_of_work(info) as session:
            yield session

    @contextmanager
    def system(self, reason: str) -> Iterator[PlugsSession]:
        """A unit of work across every organization, for platform code such as the scheduler.

        ``reason`` says why in the log; there is no way to open one by accident.
        """
        if not reason.strip():
            raise TenancyError("a system session needs a reason")
        log.info("system session opened: %s", reason)
        with self._unit_of_work({"system_reason": reason}) as session:
            yield session

    @contextmanager
    def _unit_of_work(self, info: dict[str, Any]) -> Iterator[PlugsSession]:
        session = self._sessions(info={**info, "database": self})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self) -> None:
        self.engine.dispose()


def _as_uuid(value: uuid.UUID | str, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise TenancyError(f"not a valid {what}: {value!r}") from None


@lru_cache(maxsize=1)
def get_database() -> Database:
    """The process-wide database of the application role, from the settings."""
    from core.settings import get_settings

    settings = get_settings()
    url = settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        return Database(url)
    return Database(url, pool_size=settings.database_pool_size)
