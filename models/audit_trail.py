"""The automatic audit trail: one ``audit_logs`` row per insert, update, soft delete and
restore of an audited row (models with ``__audited__ = True``), in the same transaction.

``old_values``/``new_values`` hold the changed columns only (``updated_at`` is left out: it
changes on every write); columns a model lists in ``__audit_redacted__`` are recorded as
changed but never with their values.  The acting user is the session's ``user_id``.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import event, insert, inspect
from sqlalchemy.orm import Session

from core.redaction import REDACTED
from models.audit import AuditLog
from models.base import Base, OrgScoped, utcnow
from models.bulk import bulk_insert, jsonable
from models.organizations import Organization

_NOT_AUDITED = frozenset({"updated_at"})


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
        "metadata": {},
        "created_at": utcnow(),
    }


def _write_audit_rows(session: Session, _flush_context: Any) -> None:
    actor = session.info.get("user_id")
    rows = []
    for obj in session.new:
        if getattr(obj, "__audited__", False):
            rows.append(_row(obj, "create", None, _snapshot(obj), actor))
    for obj in session.dirty:
        if getattr(obj, "__audited__", False):
            old, new = _changes(obj)
            if new:
                rows.append(_row(obj, _update_action(old, new), old, new, actor))
    for obj in session.deleted:
        # A hard-deleted organization takes its audit trail with it (ON DELETE CASCADE).
        if getattr(obj, "__audited__", False) and not isinstance(obj, Organization):
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
    audited)."""
    if not getattr(model, "__audited__", False) or not rows:
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
            "metadata": {},
            "created_at": now,
        }
        for row in rows
    ]


def install(session_class: type[Session]) -> None:
    """Register the audit listener on ``session_class``."""
    event.listen(session_class, "after_flush", _write_audit_rows)
