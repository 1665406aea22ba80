"""Write-back: rows changed in The Plugs are pushed to the vendor, a batch per page task.

A row is "changed here" when the hash of the columns the pull mapping owns differs from
the hash stored when it was last synced (either way) -- so a change that came from the
vendor is never pushed back.  After a push the pushed records are read back through the
pull stream and stored like a pull, so the vendor's copy of our own change does not come
back as a new change either (echo suppression).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from connectors.base import Connector, ExportStream, PushResult
from connectors.http import VendorClient
from connectors.upsert import PageOutcome, apply_page, local_hash
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
    """The next rows after ``after`` (by id) whose synced columns changed here."""
    entity: type[Base] = stream.entity
    query = select(entity).order_by(entity.id).limit(SCAN)
    if after:
        query = query.where(entity.id > uuid.UUID(after))
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
        if hashes.get(row.id) != local_hash(row, list(stream.columns)):
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
    """Send the batch; read the pushed records back through the pull stream."""
    if not batch.rows:
        return [], []
    results = stream.push(client, batch.rows)
    pulled = connector.stream(stream.pull_stream)
    ids = [r.external_id for r in results if r.external_id and not r.error]
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
    entity_type = stream.entity.__tablename__
    for index, result in enumerate(results):
        if result.error or not result.external_id:
            continue
        taken = session.scalar(
            select(ExternalId.local_id).where(
                ExternalId.integration_id == integration_id,
                ExternalId.entity_type == entity_type,
                ExternalId.external_id == result.external_id,
            )
        )
        if taken is not None and taken != result.local_id:
            results[index] = PushResult(
                result.local_id,
                error=f"{connector.provider} record {result.external_id} is already linked to "
                f"another {entity_type} row {taken} (a duplicate?)",
            )
            continue
        known = session.scalars(
            select(ExternalId).where(
                ExternalId.integration_id == integration_id,
                ExternalId.entity_type == entity_type,
                ExternalId.local_id == result.local_id,
            )
        ).one_or_none()
        if known is None:
            known = ExternalId(
                integration_id=integration_id,
                entity_type=entity_type,
                external_id=result.external_id,
                local_id=result.local_id,
            )
            session.add(known)
        known.external_id = result.external_id
        known.pushed_at = utcnow()
    session.flush()
    linked = {str(r.external_id) for r in results if not r.error}
    read_back = [record for record in read_back if str(record.get("id")) in linked]
    apply_page(session, integration_id, connector.stream(stream.pull_stream), read_back)
    outcome = PageOutcome()
    for result in results:
        if result.error:
            outcome.fail(str(result.local_id), result.error)
        else:
            outcome.succeeded += 1
    return outcome
