"""Idempotent upserts of one page of vendor records through the external-id map.

For every record: map it (a mapping failure is a per-record failure), find our row by
(integration, entity type, external id), and write only if the record's content hash
differs from the one stored when it was last synced either way.  A re-run therefore
changes nothing, and a record we pushed ourselves does not come back as a change.

A page is written in one flush; if the database refuses it (a value outside a CHECK, say),
the page is written again record by record under savepoints so that only the bad records
fail, each with the database's reason.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from connectors.base import JSONDict, MappedRecord, Stream
from connectors.errors import SkippableRecordError
from models.audit_trail import jsonable
from models.base import Base
from models.session import PlugsSession
from models.sync_state import ExternalId


@dataclass
class PageOutcome:
    """Successes and failures (``{"record_id", "reason"}``) of one page, and its watermark."""

    succeeded: int = 0
    written: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    high_water: str | None = None

    def fail(self, record_id: str | None, reason: str) -> None:
        self.failures.append({"record_id": str(record_id), "reason": reason[:500]})


def content_hash(values: JSONDict, deleted: bool = False) -> str:
    """A stable hash of a record's mapped values (what is compared to skip unchanged rows)."""
    canonical = json.dumps({"v": jsonable(values), "d": deleted}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def local_hash(row: Base, columns: list[str]) -> str:
    """The hash of a local row's ``columns``, comparable with :func:`content_hash`."""
    values = {column: getattr(row, column) for column in columns}
    return content_hash(values, bool(getattr(row, "is_deleted", False)))


def map_records(
    stream: Stream, records: list[JSONDict], outcome: PageOutcome
) -> list[MappedRecord]:
    """Run the stream's mapper on each record; failures are counted with their reasons."""
    mapped = []
    for record in records:
        record_id = record.get(stream.primary_key)
        try:
            item = stream.mapper(record)
        except SkippableRecordError as exc:
            outcome.fail(exc.record_id or record_id, str(exc))
            continue
        except (KeyError, TypeError, ValueError) as exc:
            outcome.fail(record_id, f"could not map the record: {type(exc).__name__}: {exc}")
            continue
        mapped.append(item)
        if item.cursor_value and (
            outcome.high_water is None or item.cursor_value > outcome.high_water
        ):
            outcome.high_water = item.cursor_value
    return mapped


def apply_page(
    session: PlugsSession, integration_id: uuid.UUID, stream: Stream, records: list[JSONDict]
) -> PageOutcome:
    """Map and upsert ``records`` into ``stream.entity``; see the module docstring."""
    outcome = PageOutcome()
    mapped = map_records(stream, records, outcome)
    mapping_failures = len(outcome.failures)
    ids = _existing_ids(
        session, integration_id, stream.entity_type, [m.external_id for m in mapped]
    )
    savepoint = session.begin_nested()
    try:
        for item in mapped:
            _upsert_one(session, integration_id, stream, item, ids, outcome)
        session.flush()
        savepoint.commit()
        return outcome
    except (IntegrityError, StatementError, LookupError, ValueError):
        savepoint.rollback()
    del outcome.failures[mapping_failures:]
    return _apply_one_by_one(session, integration_id, stream, mapped, outcome)


def _apply_one_by_one(
    session: PlugsSession,
    integration_id: uuid.UUID,
    stream: Stream,
    mapped: list[MappedRecord],
    outcome: PageOutcome,
) -> PageOutcome:
    outcome.succeeded = outcome.written = 0
    for item in mapped:
        ids = _existing_ids(session, integration_id, stream.entity_type, [item.external_id])
        savepoint = session.begin_nested()
        try:
            _upsert_one(session, integration_id, stream, item, ids, outcome)
            session.flush()
            savepoint.commit()
        except (IntegrityError, StatementError, LookupError, ValueError) as exc:
            savepoint.rollback()
            outcome.succeeded -= 1
            outcome.fail(item.external_id, _reason(exc))
    return outcome


def _reason(exc: Exception) -> str:
    original = getattr(exc, "orig", None) or exc
    return str(original).strip().splitlines()[0]


def _existing_ids(
    session: PlugsSession, integration_id: uuid.UUID, entity_type: str, external_ids: list[str]
) -> dict[str, ExternalId]:
    if not external_ids:
        return {}
    rows = session.scalars(
        select(ExternalId).where(
            ExternalId.integration_id == integration_id,
            ExternalId.entity_type == entity_type,
            ExternalId.external_id.in_(external_ids),
        )
    )
    return {row.external_id: row for row in rows}


def _upsert_one(
    session: PlugsSession,
    integration_id: uuid.UUID,
    stream: Stream,
    item: MappedRecord,
    ids: dict[str, ExternalId],
    outcome: PageOutcome,
) -> None:
    values = dict(item.values)
    for column, (entity_type, external_id) in item.references.items():
        target = _existing_ids(session, integration_id, entity_type, [external_id]).get(external_id)
        if target is None:
            outcome.fail(item.external_id, f"{entity_type} {external_id} is not synced (yet)")
            return
        values[column] = target.local_id
    digest = content_hash(values, item.deleted)
    known = ids.get(item.external_id)
    outcome.succeeded += 1
    if known is not None and known.content_hash == digest:
        return
    row = _load(session, stream.entity, known.local_id) if known else None
    if row is None:
        row = stream.entity(id=uuid.uuid4(), **values)
        session.add(row)
    else:
        _assign(row, values)
    _set_deleted(row, item.deleted)
    if known is None:
        known = ExternalId(
            integration_id=integration_id,
            entity_type=stream.entity_type,
            external_id=item.external_id,
            local_id=row.id,
        )
        session.add(known)
        ids[item.external_id] = known
    known.local_id = row.id
    known.content_hash = digest
    outcome.written += 1


def _load(session: PlugsSession, entity: type[Base], local_id: uuid.UUID) -> Base | None:
    return session.scalars(
        select(entity).where(entity.id == local_id).execution_options(include_deleted=True)
    ).one_or_none()


def _assign(row: Base, values: dict[str, Any]) -> None:
    columns = {attr.key for attr in inspect(type(row)).column_attrs}
    for key, value in values.items():
        if key in columns and getattr(row, key) != value:
            setattr(row, key, value)


def _set_deleted(row: Base, deleted: bool) -> None:
    if not hasattr(row, "is_deleted"):
        return
    if deleted and not row.is_deleted:
        row.soft_delete()
    elif not deleted and row.is_deleted:
        row.restore()
