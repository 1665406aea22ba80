"""The events of a run that ends: ``run.succeeded`` / ``run.partial`` / ``run.failed``,
and ``records.changed`` with what it changed, written in the run's closing transaction
(:func:`runs.lifecycle.finish_run` calls :func:`run_finished`).

``records.changed`` counts, per entity type, the rows of ours the run's integration
created, changed or linked while the run went (their external-id links were written from
the run's start on: a record that came in unchanged is not counted; a webhook of the same
integration applied meanwhile is).  It lists at most :data:`MAX_IDS` of their ids per
entity type (our id and the vendor's), and says ``ids_truncated`` when there are more:
fetch the rest through the API or the vendor.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select

from models.host_events import record, subscribers
from models.integrations import Integration, IntegrationLog
from models.session import PlugsSession
from models.sync_state import ExternalId

#: Ids listed per entity type in one ``records.changed`` event.
MAX_IDS = 500
RUN_EVENTS = {"success": "run.succeeded", "partial": "run.partial", "failed": "run.failed"}


def run_finished(session: PlugsSession, run: IntegrationLog) -> None:
    """Emit the run's outcome, and ``records.changed`` if it changed anything; one query
    when no endpoint of the organization wants either."""
    event_type = RUN_EVENTS.get(run.status)
    if event_type is None:
        return
    wanted = subscribers(session, run.organization_id, event_type, "records.changed")
    if not any(wanted.values()):
        return
    with session.no_autoflush:
        integration = session.get(Integration, run.integration_id)
    summary = {
        "run_id": str(run.id),
        "integration_id": str(run.integration_id),
        "provider": integration.provider if integration else None,
        "operation": run.operation,
        "trigger": (run.request_data or {}).get("trigger"),
    }
    if wanted[event_type]:
        outcome = {
            **summary,
            "status": run.status,
            "records_processed": run.records_processed,
            "records_failed": run.records_failed,
            "started_at": run.started_at.isoformat() if run.started_at else None,
            "completed_at": run.completed_at.isoformat() if run.completed_at else None,
            "message": run.message,
        }
        record(session, run.organization_id, event_type, outcome, wanted[event_type])
    if wanted["records.changed"] and run.started_at is not None:
        entities = _changes(session, run)
        if entities:
            changed = {**summary, "entities": entities, "max_ids": MAX_IDS}
            record(
                session, run.organization_id, "records.changed", changed, wanted["records.changed"]
            )


def _changes(session: PlugsSession, run: IntegrationLog) -> dict[str, Any]:
    linked = (ExternalId.integration_id == run.integration_id) & (
        ExternalId.updated_at >= run.started_at
    )
    with session.no_autoflush:
        counts = session.execute(
            select(ExternalId.entity_type, func.count())
            .where(linked)
            .group_by(ExternalId.entity_type)
            .order_by(ExternalId.entity_type)
        ).all()
        entities: dict[str, Any] = {}
        for entity_type, count in counts:
            ids = session.execute(
                select(ExternalId.local_id, ExternalId.external_id)
                .where(linked, ExternalId.entity_type == entity_type)
                .order_by(ExternalId.updated_at, ExternalId.local_id)
                .limit(MAX_IDS)
            ).all()
            entities[entity_type] = {
                "changed": int(count),
                "ids": [{"id": str(local), "external_id": external} for local, external in ids],
                "ids_truncated": int(count) > MAX_IDS,
            }
    return entities
