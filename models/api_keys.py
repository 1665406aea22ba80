"""API keys of organizations, and the answers the HTTP API keeps for idempotent retries.

A key is shown once, when it is made: ``plugs_sk_<lookup>_<secret>``.  The fixed prefix
lets secret scanners find a leaked one; ``<lookup>`` (12 hex characters, stored in clear,
unique) finds its row; only the SHA-256 of the whole key is stored.  The secret part is 32
random bytes, so a fast hash is enough (nothing to brute-force) and a lookup costs one
indexed read.

:func:`authenticate` runs before the organization is known, so it reads ``api_keys``
through the system role (one row, by its lookup id); everything else -- creating,
listing, revoking -- runs in the organization's tenant session, under row-level
security like every other tenant table.

:class:`IdempotentResponse` rows hold the first answer to a ``POST`` with an
``Idempotency-Key`` header, per key: a repeat gets that answer back; the same header with
another body is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Index,
    LargeBinary,
    SmallInteger,
    String,
    UniqueConstraint,
    delete,
    false,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from core.errors import ConfigError, NotFoundError, PlugsError
from models.audit_trail import Actor
from models.base import Base, CreatedAt, Json, OrgScoped, json_column, utcnow
from models.session import Database

#: Every key starts with this (what secret scanners look for).
KEY_PREFIX = "plugs_sk_"
_KEY = re.compile(rf"^{KEY_PREFIX}([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")
#: Requests per minute a key may make unless it says otherwise.
DEFAULT_RATE_LIMIT = 1200
#: ``last_used_at`` is written at most this often per key (not on every request).
LAST_USED_EVERY = timedelta(seconds=60)
#: How long a stored answer is given back for its idempotency key.
IDEMPOTENCY_TTL = timedelta(hours=24)


class ApiKey(OrgScoped, CreatedAt, Base):
    """An organization's API key: its name, lookup id and hash, never the key itself."""

    __tablename__ = "api_keys"
    __audited__ = True
    __audit_redacted__ = frozenset({"key_hash"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("prefix"),)

    name: Mapped[str] = mapped_column(String(255))
    #: The lookup id: the 12 hex characters after ``plugs_sk_``.
    prefix: Mapped[str] = mapped_column(String(12))
    #: SHA-256 (hex) of the whole key.
    key_hash: Mapped[str] = mapped_column(String(64))
    read_only: Mapped[bool] = mapped_column(default=False, server_default=false())
    #: Requests per minute.
    rate_limit: Mapped[int] = mapped_column(default=DEFAULT_RATE_LIMIT)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class IdempotentResponse(OrgScoped, CreatedAt, Base):
    """The first answer to a ``POST`` with an ``Idempotency-Key`` (status NULL: the first
    request is still being answered)."""

    __tablename__ = "api_idempotency_keys"
    __referenced__ = False
    __org_refs__ = {"api_key_id": "api_keys"}
    __org_cascade__ = frozenset({"api_key_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("api_key_id", "idempotency_key"),
            Index(None, "created_at"),
        )

    api_key_id: Mapped[uuid.UUID]
    idempotency_key: Mapped[str] = mapped_column(String(255))
    #: SHA-256 (hex) of the method, path and body of the first request.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(SmallInteger)
    headers: Mapped[Json] = json_column()
    body: Mapped[bytes | None] = mapped_column(LargeBinary)


@dataclass(frozen=True)
class ApiKeyIdentity:
    """Who a request is: the key, its organization, and what it may do."""

    id: uuid.UUID
    organization_id: uuid.UUID
    name: str
    read_only: bool
    rate_limit: int = DEFAULT_RATE_LIMIT

    def actor(self, request: str | None = None) -> Actor:
        """The key as the actor of the audit rows of a request's changes."""
        return Actor("api_key", self.id, self.name, request)


def _hash(presented: str) -> str:
    return hashlib.sha256(presented.encode()).hexdigest()


def create_api_key(
    db: Database,
    organization_id: uuid.UUID,
    name: str,
    *,
    read_only: bool = False,
    rate_limit: int | None = None,
) -> tuple[ApiKey, str]:
    """Make a key for the organization; returns its row and the key (shown once: only its
    hash is stored)."""
    name = name.strip()
    if not 0 < len(name) <= 255:
        raise ConfigError("an API key needs a name of 1 to 255 characters")
    if rate_limit is not None and rate_limit < 1:
        raise ConfigError("an API key's rate limit is at least 1 request per minute")
    lookup = secrets.token_hex(6)
    secret = f"{KEY_PREFIX}{lookup}_{secrets.token_urlsafe(32)}"
    with db.tenant(organization_id) as session:
        key = ApiKey(
            name=name,
            prefix=lookup,
            key_hash=_hash(secret),
            read_only=read_only,
            rate_limit=rate_limit or DEFAULT_RATE_LIMIT,
        )
        session.add(key)
    return key, secret


def authenticate(db: Database, presented: str) -> ApiKeyIdentity | None:
    """The identity of a presented key; None for a malformed, unknown or revoked one.

    The organization is unknown until the key is checked, so its row is read through the
    system role; the hash comparison takes constant time.  On PostgreSQL the read and the
    ``last_used_at`` write (at most every :data:`LAST_USED_EVERY`) are one autocommit
    statement: one round trip, no transaction, nothing for the pool's reset to clear."""
    match = _KEY.match(presented) if len(presented) < 100 else None
    if match is None:
        return None
    digest = _hash(presented)
    row = _key_row(db, match.group(1), digest, utcnow())
    if row is None or not hmac.compare_digest(row.key_hash, digest):
        return None
    return ApiKeyIdentity(row.id, row.organization_id, row.name, row.read_only, row.rate_limit)


def _key_row(db: Database, lookup: str, digest: str, now: datetime) -> Any:
    """The unrevoked key row of ``lookup``; its ``last_used_at`` set to ``now`` if it is
    stale and ``digest`` is its hash."""
    keys = ApiKey.__table__
    live = (keys.c.prefix == lookup, keys.c.revoked_at.is_(None))
    found = select(
        keys.c.id,
        keys.c.organization_id,
        keys.c.name,
        keys.c.read_only,
        keys.c.rate_limit,
        keys.c.key_hash,
    ).where(*live)
    touch = (
        sql_update(keys)
        .where(
            *live,
            keys.c.key_hash == digest,
            or_(keys.c.last_used_at.is_(None), keys.c.last_used_at < now - LAST_USED_EVERY),
        )
        .values(last_used_at=now)
    )
    if not db.is_postgresql or db.system_engine is None:
        with db.system("api: authenticate an API key") as session:
            row = session.execute(found).one_or_none()
            session.execute(touch)
            return row
    with db.system_engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT")
        row = connection.execute(found.add_cte(touch.cte("touched"))).one_or_none()
        # one statement that committed on its own: nothing to reset (Database.insert_one)
        connection.connection.dbapi_connection.needs_reset = False  # type: ignore[union-attr]
    return row


def list_api_keys(db: Database, organization_id: uuid.UUID) -> list[ApiKey]:
    """The organization's keys, revoked ones included, oldest first."""
    with db.tenant(organization_id) as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


def revoke_api_key(db: Database, organization_id: uuid.UUID, key_id: uuid.UUID) -> ApiKey:
    """Revoke a key of the organization (at once: its next request is refused); revoking
    a revoked key changes nothing."""
    with db.tenant(organization_id) as session:
        key = session.get(ApiKey, key_id)
        if key is None:
            raise NotFoundError(f"no API key with id {key_id}")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    return key


# --- idempotent POSTs ---------------------------------------------------------------------


class IdempotencyConflict(PlugsError):
    """An idempotency key in use by a request still being answered, or reused with
    another request."""

    def __init__(self, message: str, *, in_progress: bool) -> None:
        super().__init__(message)
        self.in_progress = in_progress


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    headers: dict[str, str]
    body: bytes


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same request."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    digest.update(body)
    return digest.hexdigest()


def claim_idempotency_key(
    db: Database, identity: ApiKeyIdentity, key: str, request_fingerprint: str
) -> StoredResponse | None:
    """Claim ``key`` for a request: None if it is new (answer it, then
    :func:`store_response`), the stored answer of a repeat; raises
    :class:`IdempotencyConflict` while the first is still answered, or for another request
    under the same key."""
    with db.tenant(identity.organization_id) as session:
        session.execute(
            delete(IdempotentResponse).where(
                IdempotentResponse.api_key_id == identity.id,
                IdempotentResponse.idempotency_key == key,
                IdempotentResponse.created_at < utcnow() - IDEMPOTENCY_TTL,
            )
        )
        dialect = session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        claimed = session.execute(
            insert(IdempotentResponse)
            .values(
                id=uuid.uuid4(),
                organization_id=identity.organization_id,
                api_key_id=identity.id,
                idempotency_key=key,
                fingerprint=request_fingerprint,
                headers={},
                created_at=utcnow(),
            )
            .on_conflict_do_nothing(index_elements=["api_key_id", "idempotency_key"])
            .returning(IdempotentResponse.id)
        ).scalar()
        if claimed is not None:
            return None
        first = session.scalars(
            select(IdempotentResponse).where(
                IdempotentResponse.api_key_id == identity.id,
                IdempotentResponse.idempotency_key == key,
            )
        ).one()
        if first.fingerprint != request_fingerprint:
            raise IdempotencyConflict(
                "this Idempotency-Key was used with another request", in_progress=False
            )
        if first.status_code is None:
            raise IdempotencyConflict(
                "a request with this Idempotency-Key is still being answered", in_progress=True
            )
        return StoredResponse(first.status_code, dict(first.headers), first.body or b"")


def store_response(
    db: Database, identity: ApiKeyIdentity, key: str, response: StoredResponse | None
) -> None:
    """Keep the answer to a claimed key (None: forget the claim, so the request may be
    made again: it failed on our side)."""
    with db.tenant(identity.organization_id) as session:
        where = (
            IdempotentResponse.api_key_id == identity.id,
            IdempotentResponse.idempotency_key == key,
        )
        if response is None:
            session.execute(delete(IdempotentResponse).where(*where))
            return
        session.execute(
            sql_update(IdempotentResponse)
            .where(*where)
            .values(
                status_code=response.status_code,
                headers=response.headers,
                body=response.body,
            )
            .execution_options(synchronize_session=False)
        )


def purge_idempotency_keys(db: Database) -> int:
    """Delete stored answers older than :data:`IDEMPOTENCY_TTL` (all organizations)."""
    with db.system("api: purge expired idempotency keys") as session:
        result = session.execute(
            delete(IdempotentResponse).where(
                IdempotentResponse.created_at < utcnow() - IDEMPOTENCY_TTL
            )
        )
        return int(getattr(result, "rowcount", 0) or 0)


__all__ = [
    "DEFAULT_RATE_LIMIT",
    "KEY_PREFIX",
    "ApiKey",
    "ApiKeyIdentity",
    "IdempotencyConflict",
    "IdempotentResponse",
    "StoredResponse",
    "authenticate",
    "claim_idempotency_key",
    "create_api_key",
    "fingerprint",
    "list_api_keys",
    "purge_idempotency_keys",
    "revoke_api_key",
    "store_response",
]
