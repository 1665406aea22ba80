"""The automatic audit trail: one ``audit_logs`` row per insert, update, soft delete and
restore of an audited row (models with ``__audited__ = True``), in the same transaction.

``old_values``/``new_values`` hold the changed columns only (``updated_at`` is left out: it
changes on every write); columns a model lists in ``__audit_redacted__`` are recorded as
changed but never with their values.  The acting user is the session's ``user_id``.

Changes made for a caller that is not a user -- an API key -- name it in each row's
``metadata.actor`` (``{"type": "api_key", "id", "name"}``, with ``metadata.request``):
the HTTP API sets an :class:`Actor` for the request (:func:`act_as`) and every audit row
written while it is set carries it, in the change's own transaction.  An operation whose
change the listener does not see on an audited model (rows of a table not audited,
statements without the ORM) names those tables (:func:`audit_tables`) or writes a
summary row itself (:func:`record_action`); code that inserts or updates audited rows in
bulk writes the same rows the listener would (:func:`insert_audit_rows`,
:func:`update_audit_rows`).
"""

from __future__ import annotations

import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from core.redaction import REDACTED
from models.audit import AuditLog
from models.base import Base, OrgScoped, utcnow
from models.bulk import bulk_insert, jsonable
from models.organizations import Organization

_NOT_AUDITED = frozenset({"updated_at"})


@dataclass(frozen=True)
class Actor:
    """Who makes the changes of the current unit of work when it is not a user."""

    type: str
    id: uuid.UUID
    name: str
    #: What was asked, e.g. ``"POST /api/v1/runs"``.
    request: str | None = None
    #: Tables not audited by themselves whose ORM changes are audited while it acts.
    tables: frozenset[str] = field(default_factory=frozenset)

    def metadata(self) -> dict[str, Any]:
        shown: dict[str, Any] = {
            "actor": {"type": self.type, "id": str(self.id), "name": self.name}
        }
        if self.request is not None:
            shown["request"] = self.request
        return shown


_actor: ContextVar[Actor | None] = ContextVar("plugs_audit_actor", default=None)


def act_as(actor: Actor | None) -> None:
    """Set the actor for the rest of the current context (an HTTP request's task, or the
    thread an operation runs in: each gets a copy of the context it started from)."""
    _actor.set(actor)


def audit_tables(*tables: str) -> None:
    """Audit the ORM changes of ``tables`` too, for the rest of the current context (an
    actor must be set: the operation of an API request names what it changes)."""
    actor = _actor.get()
    if actor is None:
        raise RuntimeError("audit_tables() needs an actor (act_as) first")
    _actor.set(replace(actor, tables=actor.tables | frozenset(tables)))


def _audited(obj: Any, actor: Actor | None) -> bool:
    if getattr(obj, "__audited__", False):
        return True
    return actor is not None and getattr(obj, "__tablename__", None) in actor.tables


def _columns(obj: Base) -> list[tuple[str, str]]:
    """(attribute key, column name) of every column of ``obj``'s table."""
    mapper = inspect(type(obj))
    return [(attr.key, attr.columns[0].name) for attr in mapper.column_attrs]


def _shown(obj: Base, column: str, value: Any) -> Any:
    return REDACTED if column in getattr(obj, "__audit_redacted__", ()) else jsonable(value)


def _snapshot(obj: Base) -> dict[str, Any]:
    """Every column that holds a value (a created or hard-deleted row)."""
    values = ((col, getattr(obj, key)) for key, col in _columns(obj))
    return {col: _shown(obj, col, value) for col, value in values if value is not None}


def _changes(obj: Base) -> tuple[dict[str, Any], dict[str, Any]]:
    state = inspect(obj)
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    for key, col in _columns(obj):
        if col in _NOT_AUDITED:
            continue
        history = state.attrs[key].history
        if not history.has_changes():
            continue
        before = history.deleted[0] if history.deleted else None
        after = history.added[0] if history.added else None
        if before == after:
            continue
        old[col] = _shown(obj, col, before)
        new[col] = _shown(obj, col, after)
    return old, new


def _update_action(old: dict[str, Any], new: dict[str, Any]) -> str:
    if "is_deleted" in new and new["is_deleted"] is True:
        return "delete"
    if "is_deleted" in new and new["is_deleted"] is False and old.get("is_deleted") is True:
        return "restore"
    return "update"


def _metadata() -> dict[str, Any]:
    actor = _actor.get()
    return actor.metadata() if actor is not None else {}


def _row(obj: Base, action: str, old: Any, new: Any, user_id: Any) -> dict[str, Any]:
    org = obj.organization_id if isinstance(obj, OrgScoped) else obj.id  # an Organization: itself
    return {
        "id": uuid.uuid4(),
        "organization_id": org,
        "user_id": user_id,
        "table_name": obj.__tablename__,
        "record_id": obj.id,
        "action": action,
        "old_values": old,
        "new_values": new,
        "metadata": _metadata(),
        "created_at": utcnow(),
    }


def _write_audit_rows(session: Session, _flush_context: Any) -> None:
    actor = session.info.get("user_id")
    acting_for = _actor.get()
    rows = []
    for obj in session.new:
        if _audited(obj, acting_for):
            rows.append(_row(obj, "create", None, _snapshot(obj), actor))
    for obj in session.dirty:
        if _audited(obj, acting_for):
            old, new = _changes(obj)
            if new:
                rows.append(_row(obj, _update_action(old, new), old, new, actor))
    for obj in session.deleted:
        # A hard-deleted organization takes its audit trail with it (ON DELETE CASCADE).
        if _audited(obj, acting_for) and not isinstance(obj, Organization):
            rows.append(_row(obj, "delete", _snapshot(obj), None, actor))
    if rows:
        session.connection().execute(insert(AuditLog.__table__), rows)


def record_inserts(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    """Audit rows for rows inserted in bulk (``insert(model)`` with attribute-keyed dicts),
    which the flush listener does not see."""
    bulk_insert(session, AuditLog.__table__, insert_audit_rows(session, model, rows))


def insert_audit_rows(
    session: Session, model: type[Base], rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The ``audit_logs`` rows (column-keyed) that :func:`record_inserts` writes for
    ``rows``, for a caller that inserts them itself with the rows (none if ``model`` is not
    audited, nor named by the actor's :func:`audit_tables`)."""
    if not _audited(model, _actor.get()) or not rows:
        return []
    columns = {attr.key: attr.columns[0].name for attr in inspect(model).column_attrs}
    redacted = getattr(model, "__audit_redacted__", ())
    actor = session.info.get("user_id")
    now = utcnow()
    return [
        {
            "id": uuid.uuid4(),
            "organization_id": row["organization_id"],
            "user_id": actor,
            "table_name": model.__tablename__,
            "record_id": row["id"],
            "action": "create",
            "old_values": None,
            "new_values": {
                columns[key]: REDACTED if columns[key] in redacted else jsonable(value)
                for key, value in row.items()
                if value is not None
            },
            "metadata": _metadata(),
            "created_at": now,
        }
        for row in rows
    ]


@dataclass(frozen=True)
class AuditFields:
    """What the ``create`` audit rows of one bulk insert share, for a caller that makes
    those rows in the database from the inserted rows themselves (their values are the
    row's non-null columns, as :func:`insert_audit_rows` has them; ``action`` "create")."""

    user_id: Any
    metadata: dict[str, Any]
    #: columns recorded as changed but never with their values (the caller must then
    #: build the rows with :func:`insert_audit_rows`, or redact them itself)
    redacted: frozenset[str]


def insert_audit_fields(session: Session, model: type[Base]) -> AuditFields | None:
    """:class:`AuditFields` of the rows :func:`insert_audit_rows` would write for a bulk
    insert into ``model``, or None when it writes none (the model is not audited)."""
    if not _audited(model, _actor.get()):
        return None
    return AuditFields(
        session.info.get("user_id"),
        _metadata(),
        frozenset(getattr(model, "__audit_redacted__", ())),
    )


def update_audit_rows(
    session: Session,
    model: type[Base],
    changes: list[tuple[uuid.UUID, uuid.UUID, dict[str, Any], dict[str, Any]]],
) -> list[dict[str, Any]]:
    """The ``audit_logs`` rows (column-keyed) the flush listener writes for rows updated
    through the ORM, for a caller that updates them itself: ``changes`` holds each row's
    organization, id, and the values of its assigned attributes before and after.  A row
    with nothing changed gets no audit row (none at all if ``model`` is not audited)."""
    if not getattr(model, "__audited__", False) or not changes:
        return []
    columns = {attr.key: attr.columns[0].name for attr in inspect(model).column_attrs}
    redacted = getattr(model, "__audit_redacted__", ())
    actor = session.info.get("user_id")
    metadata = _metadata()
    now = utcnow()
    rows = []
    for organization_id, record_id, before, after in changes:
        old: dict[str, Any] = {}
        new: dict[str, Any] = {}
        for key, value in after.items():
            column = columns[key]
            if column in _NOT_AUDITED or before.get(key) == value:
                continue
            old[column] = REDACTED if column in redacted else jsonable(before.get(key))
            new[column] = REDACTED if column in redacted else jsonable(value)
        if new:
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "organization_id": organization_id,
                    "user_id": actor,
                    "table_name": model.__tablename__,
                    "record_id": record_id,
                    "action": _update_action(old, new),
                    "old_values": old,
                    "new_values": new,
                    "metadata": dict(metadata),
                    "created_at": now,
                }
            )
    return rows


def record_action(
    session: Session,
    organization_id: uuid.UUID,
    *,
    table: str,
    record_id: uuid.UUID,
    action: str,
    values: dict[str, Any] | None = None,
) -> None:
    """One ``audit_logs`` row written by hand, in ``session``'s transaction, for a change
    the listener does not see (``values`` must hold no secret); it names the actor."""
    session.add(
        AuditLog(
            organization_id=organization_id,
            user_id=session.info.get("user_id"),
            table_name=table,
            record_id=record_id,
            action=action,
            new_values=values,
            metadata_=_metadata(),
        )
    )


def record_actor_action(
    session: Session,
    organization_id: uuid.UUID,
    *,
    table: str,
    record_id: uuid.UUID,
    action: str = "update",
    values: dict[str, Any] | None = None,
) -> None:
    """:func:`record_action` while an actor acts (an API key): the summary of a change made
    by statements the listener does not see; a change without one (the CLI, a user) gets
    none, as before."""
    if _actor.get() is not None:
        record_action(
            session, organization_id, table=table, record_id=record_id, action=action, values=values
        )


def install(session_class: type[Session]) -> None:
    """Register the audit listener on ``session_class``."""
    event.listen(session_class, "after_flush", _write_audit_rows)
