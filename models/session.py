"""Engines and the one API to open a unit of work.

Every unit of work says whose data it touches::

    db = get_database()
    with db.tenant(org_id, user_id=actor_id) as session:   # one organization
        session.add(Contact(first_name="Ada"))              # organization_id filled in
    with db.system("scheduler: scan due integrations") as session:  # all organizations
        ...
    db.insert_one(org_id, WebhookDelivery.__table__, values, unique=("integration_id", "delivery_id"))

A unit of work commits when the block ends and rolls back if it raises.  Tenant sessions
see and write only their organization's rows (ORM filter on every database, row-level
security on PostgreSQL); system sessions must give a reason, which is logged.  On
PostgreSQL the two connect as different roles: tenant sessions as the application role,
each transaction bound to its organization by a signed token (:mod:`models.rls`), and
system sessions as the system role (``PLUGS_SYSTEM_DATABASE_URL``), through which the
process also reads the key that signs the tokens.

:meth:`Database.insert_one` is the lean unit of work for a one-row write on a hot path (the
webhook receiver): no ORM session, and on PostgreSQL one round trip, the tenant token set
inside the INSERT itself.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from select import POLLIN, poll
from typing import Any

import psycopg
from sqlalchemy import (
    Dialect,
    Engine,
    String,
    Table,
    bindparam,
    column,
    create_engine,
    event,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.dml import Insert

from core.errors import TenancyError
from core.settings import DatabaseLimits, DatabaseProfile
from models import audit_trail, rls, tenancy
from models.base import Base

log = logging.getLogger(__name__)
#: Lock a row we update without changing its keys: ``FOR NO KEY UPDATE`` on PostgreSQL, which
#: does not conflict with the ``KEY SHARE`` locks that inserting rows referencing it take
#: (a plain ``FOR UPDATE`` there deadlocks two transactions that both inserted children).
ROW_LOCK: dict[str, Any] = {"key_share": True}
#: Seconds after which the tenant key (and the database clock) is read again.
TENANT_KEY_REFRESH = 600.0
#: The bound parameter of :meth:`Database.insert_one` that carries the tenant token.
TOKEN_PARAM = "plugs_tenant_token"


class PlugsSession(Session):
    """A Session that knows its organization (``info["organization_id"]``) or that it is a
    system session (``info["system_reason"]``); see :mod:`models.tenancy`."""


tenancy.install(PlugsSession)
audit_trail.install(PlugsSession)


def engine_options(url: URL) -> dict[str, Any]:
    """Pool settings per database.  On PostgreSQL the pool tests a connection on checkout
    without a round trip and resets it on return (:func:`_configure_postgresql`)."""
    if url.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 30}}
    return {
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


def _configure_postgresql(engine: Engine, answer_timeout: float) -> None:
    @event.listens_for(engine, "do_connect")
    def _connect(_dialect: Any, _record: ConnectionPoolEntry, cargs: Any, cparams: Any) -> Any:
        connection = _Connection.connect(*cargs, **cparams)
        connection.answer_timeout = answer_timeout
        return connection

    # Instead of a ping (a round trip on every checkout): a connection that the server or
    # the kernel (keepalives, tcp_user_timeout) closed while it sat in the pool has
    # something to read; the pool drops it and hands out a new one.  A path gone silent
    # passes, as it passed a ping until the answer timeout: the statement then fails after
    # that timeout and the connection is closed, as a lost one.
    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_connection: Any, _record: ConnectionPoolEntry, _proxy: Any) -> None:
        if dbapi_connection.gone():
            raise DisconnectionError("the connection was closed while in the pool")

    # Nothing tenant-related may survive a connection's return to the pool.
    @event.listens_for(engine, "reset")
    def _reset(dbapi_connection: Any, record: ConnectionPoolEntry, reset_state: Any) -> None:
        dbapi_connection.rollback()
        if not dbapi_connection.needs_reset:  # Database.insert_one: one autocommit statement
            dbapi_connection.needs_reset = True
        elif not reset_state.terminate_only:
            # One round trip, outside any transaction (a RESET rolled back undoes itself).
            autocommit = dbapi_connection.autocommit
            dbapi_connection.autocommit = True
            try:
                dbapi_connection.execute("CLOSE ALL; RESET ALL; DISCARD TEMP")
            finally:
                dbapi_connection.autocommit = autocommit


class _Connection(psycopg.Connection[Any]):
    """A psycopg connection that stops waiting for an answer after ``answer_timeout``
    seconds (0: never).  The server's own limits end a statement that runs too long; this
    ends a wait on a path gone silent, where no answer will ever come (no RST, or keepalives
    answered by something in between).  The connection is then closed, so the pool opens a
    new one."""

    answer_timeout: float = 0.0
    #: False after a use that left nothing on the session to reset (see the pool's reset).
    needs_reset: bool = True

    def gone(self) -> bool:
        """True when the connection cannot serve: closed, broken, or, idle in the pool, with
        something to read (the server's goodbye, end of file or a socket error)."""
        if self.closed or self.pgconn.status != psycopg.pq.ConnStatus.OK:
            return True
        poller = poll()
        poller.register(self.pgconn.socket, POLLIN)
        return bool(poller.poll(0))

    def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
        if timeout is None and self.answer_timeout:
            timeout = self.answer_timeout
        started = time.monotonic()
        try:
            return super().wait(gen, interval, timeout)
        except psycopg.OperationalError:
            if timeout is None or self.closed or time.monotonic() - started < timeout:
                raise
            self.pgconn.finish()  # cut mid-conversation: the connection cannot be used again
            raise psycopg.OperationalError(
                f"no answer from the database within {timeout:g} s; connection closed"
            ) from None


def _connect_args(url: URL, limits: DatabaseLimits) -> dict[str, Any]:
    """libpq parameters: a connect timeout and TCP keepalives on both ends of every
    connection, and the profile's statement, lock and idle-transaction timeouts, as the
    session's defaults (``options``: they survive the RESET ALL of the pool's reset)."""
    args: dict[str, Any] = {
        "connect_timeout": limits.connect,
        "keepalives": 1,
        "keepalives_idle": max(1, limits.tcp // 3),
        "keepalives_interval": max(1, limits.tcp // 6),
        "keepalives_count": 3,
        "tcp_user_timeout": limits.tcp * 1000,
    }
    settings = {  # in ms (0: none of ours, the server's default applies)
        "statement_timeout": round(limits.statement * 1000),
        "lock_timeout": round(limits.lock * 1000),
        "idle_in_transaction_session_timeout": round(limits.idle_in_transaction * 1000),
        # the server's keepalives find a client that went silent
        "tcp_keepalives_idle": args["keepalives_idle"],
        "tcp_keepalives_interval": args["keepalives_interval"],
        "tcp_keepalives_count": args["keepalives_count"],
        "tcp_user_timeout": args["tcp_user_timeout"],
    }
    options = [f"-c {name}={value}" for name, value in settings.items() if value]
    if url.query.get("options"):
        options.insert(0, str(url.query["options"]))
    args["options"] = " ".join(options)
    return args


def make_engine(
    url: str | URL, *, profile: DatabaseProfile | None = None, **overrides: Any
) -> Engine:
    """An engine for ``url`` with the settings this platform needs on that database.

    On PostgreSQL every connection has a connect timeout and TCP keepalives, and ``profile``
    (the kind of process: see :data:`core.settings.DatabaseProfile`) sets how long its
    statements, lock waits and idle transactions may last; ``None`` (migrations,
    administration) sets no limit on those.
    """
    url = make_url(url)
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    options = engine_options(url)
    limits: DatabaseLimits | None = None
    if url.get_backend_name() == "postgresql":
        from core.settings import get_settings

        limits = get_settings().database_limits(profile)
        connect_args = {**_connect_args(url, limits), **overrides.pop("connect_args", {})}
        options["connect_args"] = connect_args
    engine = create_engine(url, **{**options, **overrides})
    if url.get_backend_name() == "sqlite":
        _configure_sqlite(engine)
    elif limits is not None:
        _configure_postgresql(engine, limits.answer)
    return engine


class Database:
    """The engines (the application role's, and on PostgreSQL the system role's) and the
    units of work opened on them."""

    def __init__(
        self, url: str | URL, *, system_url: str | URL | None = None, **engine_overrides: Any
    ) -> None:
        self.engine = make_engine(url, **engine_overrides)
        self._sessions = sessionmaker(self.engine, class_=PlugsSession, expire_on_commit=False)
        #: None on PostgreSQL without a system URL: system work and tenant binding refuse.
        self.system_engine: Engine | None = self.engine if not self.is_postgresql else None
        if system_url is not None and self.is_postgresql:
            self.system_engine = make_engine(system_url, **engine_overrides)
        self._system_sessions = (
            sessionmaker(self.system_engine, class_=PlugsSession, expire_on_commit=False)
            if self.system_engine is not None
            else None
        )
        self._tenant_key: rls.TenantKey | None = None
        self._tenant_key_lock = threading.Lock()

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
        sessions = self._require_system_sessions("system work")
        log.info("system session opened: %s", reason)
        with self._unit_of_work({"system_reason": reason}, sessions) as session:
            yield session

    def insert_one(
        self,
        organization_id: uuid.UUID | str,
        table: Table,
        values: Mapping[str, Any],
        *,
        unique: Sequence[str] = (),
    ) -> Any:
        """Insert one row of ``organization_id`` into ``table`` as a unit of work of its own,
        and return its primary key; or None when ``unique`` names columns and a row with the
        same values in them exists (``ON CONFLICT DO NOTHING``).

        For a one-row write on a hot path.  No ORM session (no listeners, no audit rows):
        ``values`` holds every column, ``organization_id`` included.  On PostgreSQL one
        round trip: the tenant token is set inside the INSERT (a CTE the inserted row is
        selected from, so it is set before the row policy is checked), and the statement
        commits on its own, so the token dies with it and the pool's reset has nothing to
        clear.  Row-level security holds as in :meth:`tenant`: the application role, the
        same signed, transaction-local token.
        """
        org = _as_uuid(organization_id, "organization id")
        if values.get("organization_id") != org:
            raise TenancyError(f"a row for {table.name} belongs to another organization")
        if not self.is_postgresql:
            statement = _insert_one(table, tuple(values), tuple(unique), self.engine.dialect.name)
            with self.engine.begin() as connection:
                return connection.execute(statement, dict(values)).scalar()
        compiled = _compiled_insert_one(table, tuple(values), tuple(unique), self.engine.dialect)
        params = compiled.params(values)
        params[TOKEN_PARAM] = self.tenant_token(org)
        # Straight on the driver's connection, checked out of (and returned to) the pool as
        # any other: a SQLAlchemy Connection around it cost more CPU than the statement.
        try:
            pooled = self.engine.raw_connection()  # the checkout's liveness check included
        except psycopg.Error as exc:  # a new connection could not be opened
            raise DBAPIError.instance(None, None, exc, psycopg.Error) from None
        driver: _Connection = pooled.driver_connection  # type: ignore[assignment]
        try:
            driver.autocommit = True
            try:
                row = driver.execute(compiled.sql, params).fetchone()
            finally:
                if not driver.closed and not driver.broken:
                    driver.autocommit = False
            driver.needs_reset = False
        except psycopg.Error as exc:
            if driver.closed or driver.broken:
                pooled.invalidate(exc)
            raise DBAPIError.instance(
                compiled.sql, None, exc, psycopg.Error, hide_parameters=True
            ) from None
        finally:
            pooled.close()
        return row[0] if row is not None else None

    def tenant_token(self, organization_id: uuid.UUID) -> str:
        """The token that binds a PostgreSQL transaction starting now to ``organization_id``.

        The key is read through the system role once per :data:`TENANT_KEY_REFRESH`; if a
        re-read fails, the key in hand is kept.
        """
        key = self._tenant_key
        if key is None or time.monotonic() - key.loaded_at > TENANT_KEY_REFRESH:
            key = self._read_tenant_key(key)
        return key.token(organization_id)

    def _read_tenant_key(self, known: rls.TenantKey | None) -> rls.TenantKey:
        self._require_system_sessions("tenant work")
        assert self.system_engine is not None
        with self._tenant_key_lock:
            if self._tenant_key is not known and self._tenant_key is not None:
                return self._tenant_key  # another thread read it meanwhile
            try:
                with self.system_engine.connect() as connection:
                    self._tenant_key = rls.load_tenant_key(connection)
            except Exception:
                if known is None:
                    raise
                log.warning("could not read the tenant key again; keeping the one in hand")
                return known
        return self._tenant_key

    def verify_roles(self) -> list[str]:
        """Refuse roles that could do more than their part (PostgreSQL; nothing on SQLite).

        Raises :class:`models.rls.UnsafeRoleError` if the application role could reach
        across organizations or the system role is a superuser or cannot do its work, and
        :class:`TenancyError` if no system role is configured.  Returns the two role names.
        """
        if not self.is_postgresql:
            return []
        self._require_system_sessions("work")
        assert self.system_engine is not None
        tables = [name for name, _ in rls.tenant_tables(Base.metadata)]
        with self.engine.connect() as connection:
            rls.verify_app_role(connection, tables)
            app_role = connection.execute(text("SELECT current_user")).scalar_one()
        with self.system_engine.connect() as connection:
            rls.verify_system_role(connection, tables)
            system_role = connection.execute(text("SELECT current_user")).scalar_one()
        return [app_role, system_role]

    def _require_system_sessions(self, work: str) -> sessionmaker[PlugsSession]:
        if self._system_sessions is None:
            raise TenancyError(
                f"{work} on PostgreSQL needs the system role: set PLUGS_SYSTEM_DATABASE_URL "
                "to the role made by `plugs db create-system-role`"
            )
        return self._system_sessions

    @contextmanager
    def _unit_of_work(
        self, info: dict[str, Any], sessions: sessionmaker[PlugsSession] | None = None
    ) -> Iterator[PlugsSession]:
        session = (sessions or self._sessions)(info={**info, "database": self})
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def dispose(self, close: bool = True) -> None:
        """Close the pooled connections (``close=False`` in a forked child: forget them)."""
        self.engine.dispose(close=close)
        if self.system_engine is not None and self.system_engine is not self.engine:
            self.system_engine.dispose(close=close)


@lru_cache(maxsize=32)
def _insert_one(
    table: Table, columns: tuple[str, ...], unique: tuple[str, ...], dialect: str
) -> Insert:
    """The statement of :meth:`Database.insert_one`, built once per shape: on PostgreSQL
    ``WITH tenant_binding AS (SELECT set_config(...)) INSERT ... SELECT <the values> FROM
    tenant_binding WHERE token IS NOT NULL [ON CONFLICT DO NOTHING] RETURNING <key>``."""
    (key,) = table.primary_key.columns
    params = [bindparam(name, type_=table.c[name].type) for name in columns]
    statement: Any
    if dialect == "postgresql":
        token = text(f"SELECT set_config('{rls.TOKEN_SETTING}', :{TOKEN_PARAM}, true) AS token")
        binding = token.columns(column("token", String())).cte("tenant_binding")
        row = select(*params).where(binding.c.token.is_not(None))
        statement = postgresql.insert(table).from_select(list(columns), row, include_defaults=False)
    else:
        statement = sqlite.insert(table).values(dict(zip(columns, params, strict=True)))
    if unique:
        statement = statement.on_conflict_do_nothing(index_elements=list(unique))
    return statement.returning(key)  # type: ignore[no-any-return]


@dataclass(frozen=True)
class _CompiledInsert:
    """:func:`_insert_one` compiled for the driver, and its columns' bind processors."""

    sql: str
    processors: dict[str, Callable[[Any], Any]]

    def params(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return {
            name: processor(value) if (processor := self.processors.get(name)) else value
            for name, value in values.items()
        }


@lru_cache(maxsize=32)
def _compiled_insert_one(
    table: Table, columns: tuple[str, ...], unique: tuple[str, ...], dialect: Dialect
) -> _CompiledInsert:
    """The hot path runs the SQL on the driver's connection: no statement
    cache lookup nor parameter compilation per call, which cost more than the round trip."""
    compiled = _insert_one(table, columns, unique, dialect.name).compile(dialect=dialect)
    if set(compiled.params) != {*columns, TOKEN_PARAM}:
        raise ValueError(f"insert_one into {table.name}: give every column a value")
    processors: dict[str, Callable[[Any], Any]] = {}
    for name in columns:
        processor = table.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        if processor is not None:
            processors[name] = processor
    return _CompiledInsert(str(compiled), processors)


def _as_uuid(value: uuid.UUID | str, what: str) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise TenancyError(f"not a valid {what}: {value!r}") from None


@lru_cache(maxsize=1)
def get_database() -> Database:
    """The process-wide database (the application and system roles), from the settings."""
    from core.settings import get_settings

    settings = get_settings()
    url = settings.sqlalchemy_url()
    if url.startswith("sqlite"):
        return Database(url)
    return Database(
        url,
        system_url=settings.system_sqlalchemy_url(),
        pool_size=settings.database_pool_size,
        profile=_process["profile"],
    )


#: The kind of this process (see :func:`use_profile`).
_process: dict[str, DatabaseProfile] = {"profile": "worker"}


def use_profile(profile: DatabaseProfile) -> None:
    """Say what kind of process this is before its first unit of work: ``"http"`` for the
    HTTP app (short waits: it answers 503 when the database is silent), ``"worker"`` (the
    default) for workers, beat and commands.  :func:`get_database` opens its connections
    with that kind's limits (``core.settings.Settings.database_limits``)."""
    if _process["profile"] == profile:
        return
    _process["profile"] = profile
    if get_database.cache_info().currsize:
        get_database().dispose()
    get_database.cache_clear()
