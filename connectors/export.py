"""Write-back: rows changed in The Plugs are pushed to the vendor, a batch per page task.

A row is "changed here" when the hash of the columns the pull mapping owns differs from
the hash stored when it was last synced (either way) -- so a change that came from the
vendor is never pushed back.  After a push the pushed records are read back through the
pull stream and stored like a pull, so the vendor's copy of our own change does not come
back as a new change either (echo suppression).  A stored hash of the earlier form is
compared in that form (:func:`connectors.upsert.same_content`).

An export stream narrows what it looks at with ``where`` (rows outside it are not counted),
may ask for soft-deleted rows that were synced before (``include_deleted``: the push
deletes them at the vendor), and a push answers ``settled`` where there is nothing to read
back (a deletion): the row's hash as pushed is stored, so it is not pushed again.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import select

from connectors.base import Connector, ExportStream, PushResult, Stream
from connectors.http import VendorClient
from connectors.upsert import PageOutcome, apply_page, local_hash, local_values, same_content
from core.errors import SkippableRecordError
from models.base import Base, utcnow
from models.session import PlugsSession
from models.sync_state import ExternalId

#: Rows looked at per page to find changed ones.
SCAN = 1000


@dataclass
class ExportBatch:
    """Rows to push (detached copies) and where the scan stopped."""

    rows: list[Any]
    last_scanned: str | None
    finished: bool


def changed_rows(
    session: PlugsSession, integration_id: uuid.UUID, stream: ExportStream, after: str | None
) -> ExportBatch:
    """The next rows after ``after`` (by id) whose synced columns changed here (within
    ``stream.where``; soft-deleted ones only with ``include_deleted`` and a link)."""
    entity: type[Base] = stream.entity
    query = select(entity).order_by(entity.id).limit(SCAN)
    if stream.where is not None:
        query = query.where(stream.where)
    if after:
        query = query.where(entity.id > uuid.UUID(after))
    if stream.include_deleted:
        query = query.execution_options(include_deleted=True)
    scanned = list(session.scalars(query))
    hashes = dict(
        session.execute(
            select(ExternalId.local_id, ExternalId.content_hash).where(
                ExternalId.integration_id == integration_id,
                ExternalId.entity_type == entity.__tablename__,
                ExternalId.local_id.in_([row.id for row in scanned]),
            )
        ).all()
    )
    rows: list[Any] = []
    last = after
    for row in scanned:
        last = str(row.id)
        if getattr(row, "is_deleted", False) and row.id not in hashes:
            continue  # deleted before it was ever synced: nothing to delete at the vendor
        if not same_content(hashes.get(row.id), *local_values(row, list(stream.columns))):
            rows.append(row)
            if len(rows) == stream.batch_size:
                break
    for row in rows:
        session.expunge(row)
    finished = len(scanned) < SCAN and (not scanned or last == str(scanned[-1].id))
    return ExportBatch(rows, last, finished)


def push(
    connector: Connector, client: VendorClient, stream: ExportStream, batch: ExportBatch
) -> tuple[list[PushResult], list[dict[str, Any]]]:
    """Send the batch; read the pushed records back through the pull stream (settled ones
    get the hash of the row as pushed instead)."""
    if not batch.rows:
        return [], []
    hashes = {row.id: local_hash(row, list(stream.columns)) for row in batch.rows}
    results = [
        replace(r, pushed_hash=hashes.get(r.local_id)) if r.settled and not r.error else r
        for r in stream.push(client, batch.rows)
    ]
    pulled = connector.stream(stream.pull_stream)
    ids = [r.external_id for r in results if r.external_id and not r.error and not r.settled]
    if not ids or pulled.fetch_by_ids is None:
        return results, []
    return results, pulled.fetch_by_ids(client, pulled, ids)


def record_push(
    session: PlugsSession,
    connector: Connector,
    stream: ExportStream,
    results: list[PushResult],
    read_back: list[dict[str, Any]],
) -> PageOutcome:
    """Map new vendor ids to our rows, store what the vendor now holds, count per row."""
    integration_id = connector.integration.id
    for index, result in enumerate(results):
        if result.error or not (result.external_id or result.settled):
            continue
        taken = _linked_elsewhere(session, connector, stream, result)
        if taken is not None:
            results[index] = PushResult(
                result.local_id,
                error=f"{connector.provider} record {result.external_id} is already linked to "
                f"another {stream.entity.__tablename__} row {taken} (a duplicate?)",
            )
            continue
        known = _link(session, integration_id, stream, result)
        if known is not None and result.settled:
            known.content_hash = result.pushed_hash
    session.flush()
    linked = {str(r.external_id) for r in results if not r.error and not r.settled}
    pulled = connector.stream(stream.pull_stream)
    read_back = [record for record in read_back if _record_key(pulled, record) in linked]
    apply_page(session, integration_id, pulled, read_back)
    outcome = PageOutcome()
    for result in results:
        if result.error:
            outcome.fail(str(result.local_id), result.error)
        else:
            outcome.succeeded += 1
    return outcome


def _record_key(stream: Stream, record: dict[str, Any]) -> str:
    """The external id a read-back record maps to (a composite one such as Zoom's
    ``meeting:registrant``), or its primary key when it does not map."""
    try:
        return stream.mapper(record).external_id
    except (SkippableRecordError, KeyError, TypeError, ValueError):
        return str(record.get(stream.primary_key))


def _linked_elsewhere(
    session: PlugsSession, connector: Connector, stream: ExportStream, result: PushResult
) -> uuid.UUID | None:
    """Another row already linked to the vendor record the push answered with, if any."""
    if not result.external_id:
        return None
    taken = session.scalar(
        select(ExternalId.local_id).where(
            ExternalId.integration_id == connector.integration.id,
            ExternalId.entity_type == stream.entity.__tablename__,
            ExternalId.external_id == result.external_id,
        )
    )
    return taken if taken is not None and taken != result.local_id else None


def _link(
    session: PlugsSession, integration_id: uuid.UUID, stream: ExportStream, result: PushResult
) -> ExternalId | None:
    """The row's external-id link, created or moved to ``result.external_id`` when the push
    answered one; None when it has none and the push named no vendor record."""
    known = session.scalars(
        select(ExternalId).where(
            ExternalId.integration_id == integration_id,
            ExternalId.entity_type == stream.entity.__tablename__,
            ExternalId.local_id == result.local_id,
        )
    ).one_or_none()
    if not result.external_id:
        return known
    if known is None:
        known = ExternalId(
            integration_id=integration_id,
            entity_type=stream.entity.__tablename__,
            external_id=result.external_id,
            local_id=result.local_id,
        )
        session.add(known)
    known.external_id = result.external_id
    known.pushed_at = utcnow()
    return known
