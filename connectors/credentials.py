"""Integration credentials (and other sealed secrets): encrypted at rest, bound to their row, rotatable, decrypted only
at the point of use.

``integrations.credentials`` holds only::

    {"v": 1, "kid": "k20260101120000", "nonce": "<b64>", "ct": "<b64>"}

``ct`` is AES-256-GCM over the JSON of the credential fields, with a random 12-byte nonce and
``"<organization_id>:<integration_id>"`` as associated data, so a ciphertext copied to another
integration or organization does not decrypt.  Keys come from ``PLUGS_SECRET_KEYS``
(``kid:base64key`` entries, newest first): new ciphertext uses the newest key, each row names
the key it needs.  To rotate: ``plugs keys generate``, put the entry first, deploy,
``plugs keys rotate``, then drop the old key.  On SQLite with no keys set, a key is generated
once into ``<data_dir>/secret_keys`` (the embedded default); PostgreSQL requires keys.

Decrypted fields come back as :class:`Credentials`, whose values are pydantic secrets that
print as ``**********``; call ``get_secret_value()`` where the vendor call is made.

Other secrets of a row are sealed the same way: a :class:`SealedColumn` names the column
(integration credentials, an event endpoint's signing secret) and seals or opens it, bound
to the row's organization and id; :func:`rotate_all` re-encrypts every column of
:data:`SEALED_COLUMNS`.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import Secret, SecretStr
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from core.errors import NotFoundError, PlatformConfigError
from core.settings import Settings, get_settings
from models import tenancy
from models.host_events import EventEndpoint
from models.integrations import Integration
from models.session import Database

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
KEY_FILE = "secret_keys"
_NONCE_BYTES = 12
_KEY_BYTES = 32
_KID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

Uuidish = uuid.UUID | str
SecretValue = SecretStr | Secret[Any]


class CredentialsError(PlatformConfigError):
    """Keys are missing or invalid, or stored credentials cannot be decrypted: our
    configuration's fault, never the vendor's (an integration is not marked ``error``).

    Messages name integrations and key ids only, never key material or plaintext.
    """


# --- the key ring ------------------------------------------------------------------------


@dataclass(frozen=True, repr=False)
class KeyRing:
    """AES-256 keys by id, newest first.  Its repr names the ids only."""

    entries: tuple[tuple[str, bytes], ...]

    def __repr__(self) -> str:
        return f"KeyRing({', '.join(kid for kid, _ in self.entries)})"

    @property
    def newest(self) -> tuple[str, bytes]:
        """(kid, key) that encrypts."""
        return self.entries[0]

    def key(self, kid: str) -> bytes | None:
        """The key named ``kid``, or None if the ring does not hold it."""
        return dict(self.entries).get(kid)

    @classmethod
    def parse(cls, text: str, source: str = "PLUGS_SECRET_KEYS") -> KeyRing:
        """A ring from comma- (or line-) separated ``kid:base64key`` entries, newest first."""
        raw = [entry.strip() for entry in text.replace("\n", ",").split(",")]
        entries = [_parse_entry(e, number, source) for number, e in enumerate(raw, 1) if e]
        if not entries:
            raise CredentialsError(f"{source} holds no keys; make one with `plugs keys generate`")
        kids = [kid for kid, _ in entries]
        if len(set(kids)) != len(kids):
            twice = [n for n, kid in enumerate(kids, 1) if kids.count(kid) > 1]
            raise CredentialsError(f"{source} entries {twice} have the same key id")
        return cls(tuple(entries))


def _parse_entry(entry: str, number: int, source: str) -> tuple[str, bytes]:
    # Messages never repeat the entry: a mistyped one may be key material.
    kid, colon, encoded = (part.strip() for part in entry.partition(":"))
    where = f"{source} entry {number}"
    if not colon or not _KID.match(kid):
        raise CredentialsError(f"{where} is not 'kid:base64key' (kid: letters, digits, . _ -)")
    try:
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), altchars=b"-_", validate=True)
    except ValueError:
        raise CredentialsError(f"{where}: the key is not urlsafe base64") from None
    if len(key) != _KEY_BYTES:
        raise CredentialsError(f"{where}: the key is {len(key)} bytes, AES-256 needs 32")
    return kid, key


def new_key_entry(now: datetime | None = None) -> str:
    """A fresh ``kid:base64key`` entry for PLUGS_SECRET_KEYS, kid ``k<yyyymmddHHMMSS>`` (UTC)."""
    kid = f"k{(now or datetime.now(UTC)):%Y%m%d%H%M%S}"
    return f"{kid}:{_b64(AESGCM.generate_key(bit_length=256))}"


def key_ring(settings: Settings | None = None) -> KeyRing:
    """The keys from the settings (PLUGS_SECRET_KEYS), or the embedded default's key file.

    Without PLUGS_SECRET_KEYS, SQLite gets a key generated once into ``data_dir`` (mode
    0600); PostgreSQL is refused with instructions.
    """
    settings = settings or get_settings()
    if settings.secret_keys is not None:
        return KeyRing.parse(settings.secret_keys.get_secret_value())
    if settings.sqlalchemy_url().startswith("sqlite"):
        return _embedded_key_ring(settings.data_dir)
    raise CredentialsError(
        "PLUGS_SECRET_KEYS is not set and the database is PostgreSQL: run `plugs keys "
        "generate` and set PLUGS_SECRET_KEYS to the entry it prints"
    )


def _embedded_key_ring(data_dir: Path) -> KeyRing:
    path = (data_dir / KEY_FILE).resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{KEY_FILE}.{uuid.uuid4().hex}")
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(new_key_entry() + "\n")
        try:
            os.link(temporary, path)  # atomic: a concurrent process may have won the race
            log.warning("generated the credential key file %s (embedded default)", path)
        except FileExistsError:
            pass
        finally:
            temporary.unlink()
    return KeyRing.parse(path.read_text(), source=str(path))


# --- encrypting and decrypting -----------------------------------------------------------


class Credentials(Mapping[str, SecretValue]):
    """Decrypted credential fields.  Values are ``SecretStr`` (strings) or ``Secret``, so
    neither the mapping nor a value prints; unwrap with ``get_secret_value()`` at use."""

    __slots__ = ("_fields",)

    def __init__(self, fields: Mapping[str, Any]) -> None:
        self._fields = {str(name): _wrap(value) for name, value in fields.items()}

    def __getitem__(self, name: str) -> SecretValue:
        return self._fields[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._fields)

    def __len__(self) -> int:
        return len(self._fields)

    def __repr__(self) -> str:
        shown = ", ".join(f"{name!r}: '**********'" for name in self._fields)
        return f"Credentials({{{shown}}})"

    __str__ = __repr__

    @property
    def expires_at(self) -> datetime | None:
        """When the access token expires (ISO 8601 or epoch seconds), None if it does not."""
        value = self._fields.get("expires_at")
        raw = None if value is None else value.get_secret_value()
        return None if raw is None else _as_time(raw)


def encrypt_credentials(
    organization_id: Uuidish,
    integration_id: Uuidish,
    fields: Mapping[str, Any],
    *,
    keys: KeyRing | None = None,
) -> dict[str, Any]:
    """The stored form of ``fields`` for this integration, under the newest key.

    Values are JSON values, aware datetimes (stored as ISO 8601) or pydantic secrets.
    """
    kid, key = (keys or key_ring()).newest
    nonce = os.urandom(_NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, _plaintext(fields), _bound(organization_id, integration_id))
    return {"v": FORMAT_VERSION, "kid": kid, "nonce": _b64(nonce), "ct": _b64(sealed)}


def decrypt_credentials(integration: Integration, *, keys: KeyRing | None = None) -> Credentials:
    """The integration's credential fields; raises :class:`CredentialsError` if there are
    none, the key is not in the ring, or the ciphertext belongs to another row."""
    return CREDENTIALS.open(integration, keys=keys)


def store_credentials(
    session: Session,
    integration: Integration,
    fields: Mapping[str, Any],
    *,
    keys: KeyRing | None = None,
) -> None:
    """Encrypt ``fields`` into ``integration.credentials``; written when the unit of work ends."""
    if integration.organization_id is None:
        integration.organization_id = tenancy.organization_of(session)
    if integration.organization_id is None:
        raise CredentialsError("store credentials in a tenant session (no organization here)")
    if integration.id is None:
        integration.id = uuid.uuid4()
    CREDENTIALS.seal(integration, fields, keys=keys)
    session.add(integration)


def _wrap(value: Any) -> SecretValue:
    if isinstance(value, SecretStr | Secret):
        return value
    return SecretStr(value) if isinstance(value, str) else Secret(value)


def _plaintext(fields: Mapping[str, Any]) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value.isoformat()
        if isinstance(value, SecretStr | Secret):
            return value.get_secret_value()
        raise TypeError(f"{type(value).__name__} (naive datetimes are refused too)")

    try:
        return json.dumps(dict(fields), default=default, separators=(",", ":")).encode()
    except (TypeError, ValueError) as error:
        raise CredentialsError(f"credential fields must be JSON values, not {error}") from None


def _parse_stored(stored: Any, name: str) -> tuple[str, bytes, bytes]:
    try:
        nonce = _unb64(stored["nonce"])
        if (
            stored["v"] != FORMAT_VERSION
            or not _KID.match(stored["kid"])
            or len(nonce) != _NONCE_BYTES
        ):
            raise ValueError
        return stored["kid"], nonce, _unb64(stored["ct"])
    except (KeyError, TypeError, ValueError):
        raise CredentialsError(f"{name}: credentials are not v1 ciphertext") from None


def _bound(organization_id: Uuidish, integration_id: Uuidish) -> bytes:
    return f"{_uuid(organization_id)}:{_uuid(integration_id)}".encode()


def _uuid(value: Uuidish) -> uuid.UUID:
    return value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text, altchars=b"-_", validate=True)


def _as_time(value: Any) -> datetime:
    try:
        if isinstance(value, int | float):
            return datetime.fromtimestamp(value, UTC)
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError, OverflowError, OSError):
        raise CredentialsError("expires_at is neither ISO 8601 nor epoch seconds") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# --- sealed columns ----------------------------------------------------------------------


class Sealable(Protocol):
    """A row whose secrets are bound to it: its organization and id."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def organization_id(self) -> uuid.UUID: ...


Row = TypeVar("Row", bound=Sealable)


@dataclass(frozen=True)
class SealedColumn(Generic[Row]):
    """A JSON column of ``model`` holding its row's secret fields sealed (the format above),
    bound to the row's organization and id."""

    model: type[Row]
    attribute: str
    #: How messages name a row: ``"<label> <id>"``.
    label: str

    def stored(self, row: Row) -> Any:
        return getattr(row, self.attribute)

    def seal(self, row: Row, fields: Mapping[str, Any], *, keys: KeyRing | None = None) -> None:
        """Encrypt ``fields`` into the row's column under the newest key (the row needs its
        organization and id)."""
        if row.organization_id is None or row.id is None:
            raise CredentialsError(f"a {self.label} needs its organization and id to be sealed")
        sealed = encrypt_credentials(row.organization_id, row.id, fields, keys=keys)
        setattr(row, self.attribute, sealed)

    def open(self, row: Row, *, keys: KeyRing | None = None) -> Credentials:
        """The row's fields; raises :class:`CredentialsError` if there are none, the key is
        not in the ring, or the ciphertext belongs to another row."""
        row_id = row.id
        name = f"{self.label} {row_id}"
        stored = self.stored(row)
        if not stored:
            raise CredentialsError(f"{name} has no credentials stored")
        kid, nonce, sealed = _parse_stored(stored, name)
        key = (keys or key_ring()).key(kid)
        if key is None:
            raise CredentialsError(
                f"{name}: credentials are encrypted with key {kid!r}, which PLUGS_SECRET_KEYS "
                "does not hold (keep old keys at its end until `plugs keys rotate` has run)"
            )
        try:
            plaintext = AESGCM(key).decrypt(nonce, sealed, _bound(row.organization_id, row_id))
        except InvalidTag:
            raise CredentialsError(
                f"{name}: credentials do not decrypt with key {kid!r} for this organization "
                f"and {self.label} (copied from another row, or altered)"
            ) from None
        return Credentials(json.loads(plaintext))


#: Integrations' vendor credentials.
CREDENTIALS = SealedColumn(Integration, "credentials", "integration")
#: Event endpoints' signing secrets (one field, ``secret``).
ENDPOINT_SECRETS = SealedColumn(EventEndpoint, "secret", "event endpoint")
#: Every sealed column: what `plugs keys rotate` re-encrypts.
SEALED_COLUMNS: tuple[SealedColumn[Any], ...] = (CREDENTIALS, ENDPOINT_SECRETS)


# --- rotation and refresh ----------------------------------------------------------------


@dataclass
class RotationReport:
    """What :func:`rotate_all` did; ``failures`` says which rows failed and why."""

    rotated: int = 0
    already_current: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)


def rotate_all(
    db: Database,
    *,
    batch_size: int = 500,
    keys: KeyRing | None = None,
    columns: tuple[SealedColumn[Any], ...] = SEALED_COLUMNS,
) -> RotationReport:
    """Re-encrypt, under the newest key, every sealed secret (every column of ``columns``,
    every organization, soft-deleted rows too) that another key encrypted.  Rows with
    nothing stored are skipped.

    Idempotent and safe while workers run: ids are found in a system session, then each batch
    is rewritten per organization in a tenant session that locks its rows first, so a token
    refresh committed meanwhile is re-encrypted, not overwritten.
    """
    ring = keys or key_ring()
    report = RotationReport()
    for column in columns:
        after: uuid.UUID | None = None
        while batch := _next_batch(db, column, after, batch_size):
            after = batch[-1][1]
            stale: dict[uuid.UUID, list[uuid.UUID]] = {}
            for org_id, row_id, stored in batch:
                if stored and _kid_of(stored) == ring.newest[0]:
                    report.already_current += 1
                elif stored:
                    stale.setdefault(org_id, []).append(row_id)
            for org_id, ids in stale.items():
                _rotate_rows(db, column, org_id, ids, ring, report)
    return report


def _kid_of(stored: Any) -> Any:
    return stored.get("kid") if isinstance(stored, dict) else None


def _next_batch(
    db: Database, column: SealedColumn[Any], after: uuid.UUID | None, size: int
) -> list[Any]:
    model: Any = column.model
    query = select(model.organization_id, model.id, getattr(model, column.attribute))
    if after is not None:
        query = query.where(model.id > after)
    query = query.order_by(model.id).limit(size).execution_options(include_deleted=True)
    with db.system("keys rotate") as session:
        return list(session.execute(query))


def _rotate_rows(
    db: Database,
    column: SealedColumn[Any],
    org_id: uuid.UUID,
    ids: list[uuid.UUID],
    ring: KeyRing,
    report: RotationReport,
) -> None:
    with db.tenant(org_id) as session:
        for row in _locked(session, ids, include_deleted=True, model=column.model):
            stored = column.stored(row)
            if not stored:
                continue
            if _kid_of(stored) == ring.newest[0]:
                report.already_current += 1
                continue
            try:
                fields = column.open(row, keys=ring)
            except CredentialsError as error:
                report.failed += 1
                report.failures.append(str(error))
                continue
            column.seal(row, fields, keys=ring)
            report.rotated += 1


def _locked(
    session: Session,
    ids: list[uuid.UUID],
    *,
    include_deleted: bool = False,
    model: type[Any] = Integration,
) -> list[Any]:
    """The session organization's rows ``ids`` of ``model``, locked until the unit of work
    ends: FOR UPDATE on PostgreSQL; on SQLite a no-op write first takes the database write
    lock."""
    if session.get_bind().dialect.name == "sqlite":
        touch = update(model).where(model.id.in_(ids))
        touch = touch.values(updated_at=model.updated_at)
        session.execute(touch.execution_options(synchronize_session=False))
    query = select(model).where(model.id.in_(ids)).order_by(model.id)
    query = query.with_for_update().execution_options(include_deleted=include_deleted)
    return list(session.scalars(query))


def refresh_if_expiring(
    db: Database,
    organization_id: Uuidish,
    integration_id: Uuidish,
    refresh: Callable[[Credentials], Mapping[str, Any]],
    *,
    margin: timedelta = timedelta(minutes=5),
    keys: KeyRing | None = None,
) -> Credentials:
    """The integration's credentials, refreshed first if ``expires_at`` is within ``margin``.

    The row stays locked while ``refresh(current)`` runs (it returns the new fields, e.g.
    access_token and expires_at, merged over the current ones), so a concurrent caller waits
    and then sees the fresh token instead of refreshing again.
    """
    ring = keys or key_ring()
    with db.tenant(organization_id) as session:
        found = _locked(session, [_uuid(integration_id)])
        if not found:
            raise NotFoundError(f"no integration {integration_id} in this organization")
        current = decrypt_credentials(found[0], keys=ring)
        expires_at = current.expires_at
        if expires_at is None or expires_at - margin > datetime.now(UTC):
            return current
        fresh = Credentials({**current, **refresh(current)})
        store_credentials(session, found[0], fresh, keys=ring)
        return fresh
