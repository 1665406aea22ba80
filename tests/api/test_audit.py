"""A change made through the API is in the audit trail with the key as its actor, written
in the change's own transaction: the audit row and the row it records share their
PostgreSQL ``xmin`` (the id of the transaction that wrote them)."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import literal_column, select, text, update

from core.redaction import REDACTED
from models import AuditLog
from models.base import utcnow
from models.host_events import EventDelivery, emit
from models.session import get_database
from models.webhooks import WebhookDelivery
from tests.api.conftest import Org, problem


def _audit_rows(org: Org, record_id: uuid.UUID) -> list[Any]:
    with get_database().tenant(org.id) as session:
        query = select(
            AuditLog.table_name,
            AuditLog.action,
            AuditLog.new_values,
            AuditLog.metadata_,
            literal_column("audit_logs.xmin::text").label("xmin"),
        ).where(AuditLog.record_id == record_id)
        return list(session.execute(query.order_by(AuditLog.created_at)))


def _xmin(org: Org, table: str, record_id: uuid.UUID) -> str:
    with get_database().tenant(org.id) as session:
        statement = text(f"SELECT xmin::text FROM {table} WHERE id = :id")  # noqa: S608 - ours
        return str(session.execute(statement, {"id": record_id}).scalar_one())


def test_changes_through_the_api_are_audited_with_the_key_in_their_own_transaction(
    orgs: tuple[Org, Org],
) -> None:
    a, _ = orgs
    actor = {"type": "api_key", "id": str(a.key_id), "name": "host product"}
    integration = a.integration_id
    renamed = a.api.patch(f"/integrations/{integration}", json={"name": "Audited CRM"})
    assert renamed.status_code == 200, renamed.text
    [row] = [r for r in _audit_rows(a, integration) if r.metadata_.get("actor") == actor]
    assert (row.table_name, row.action) == ("integrations", "update")
    assert row.new_values["metadata"]["name"] == "Audited CRM"
    assert row.metadata_["request"] == f"PATCH /api/v1/integrations/{integration}"
    assert row.xmin == _xmin(a, "integrations", integration)

    # a table not audited by itself, written through the ORM: the operation names it
    scheduled = a.api.put(f"/integrations/{integration}/schedules", json={"every": "1h"})
    assert scheduled.status_code == 200, scheduled.text
    with get_database().tenant(a.id) as session:
        schedule_id = session.execute(
            text("SELECT id FROM sync_schedules WHERE integration_id = :id"), {"id": integration}
        ).scalar_one()
    [row] = _audit_rows(a, schedule_id)
    assert (row.table_name, row.action, row.metadata_["actor"]) == (
        "sync_schedules",
        "create",
        actor,
    )
    assert row.new_values["every_seconds"] == 3600
    assert row.xmin == _xmin(a, "sync_schedules", schedule_id)

    # an endpoint made, then deleted (no statement outside the listener's sight)
    made = a.api.post(
        "/event-endpoints",
        json={"url": "https://hooks.example.test/audited", "event_types": ["run.failed"]},
    )
    assert made.status_code == 201, made.text
    endpoint_id = uuid.UUID(made.json()["id"])
    [created] = _audit_rows(a, endpoint_id)
    assert (created.action, created.metadata_["actor"]) == ("create", actor)
    assert created.new_values["secret"] == REDACTED and made.json()["secret"] not in str(
        created.new_values
    )
    assert created.xmin == _xmin(a, "event_endpoints", endpoint_id)
    assert a.api.delete(f"/event-endpoints/{endpoint_id}").status_code == 204
    [_, deleted] = _audit_rows(a, endpoint_id)
    assert (deleted.action, deleted.metadata_["actor"]) == ("delete", actor)
    assert deleted.metadata_["request"] == f"DELETE /api/v1/event-endpoints/{endpoint_id}"

    # a refused change leaves no trace; a read-only key changes nothing
    before = len(_audit_rows(a, integration))
    problem(
        a.reader.patch(f"/integrations/{integration}", json={"name": "x"}), 403, "read-only-key"
    )
    problem(a.api.patch(f"/integrations/{integration}", json={}), 422, "invalid-request")
    assert len(_audit_rows(a, integration)) == before


def _actor_row(org: Org, table: str, record_id: uuid.UUID) -> Any:
    """The one audit row of ``record_id`` in ``table`` naming org's read-write key."""
    actor = {"type": "api_key", "id": str(org.key_id), "name": "host product"}
    rows = [
        r
        for r in _audit_rows(org, record_id)
        if r.table_name == table and r.metadata_.get("actor") == actor
    ]
    assert len(rows) == 1, rows
    return rows[0]


def test_operations_made_by_statements_are_audited_in_their_own_transaction(
    orgs: tuple[Org, Org],
) -> None:
    _, a = orgs  # B: the first test's changes are A's
    integration = a.integration_id
    db = get_database()

    # a sync started: the run is inserted in bulk with its audit row
    started = a.api.post("/runs", json={"integration_id": str(integration)})
    assert started.status_code == 202, started.text
    run_id = uuid.UUID(started.json()["run_id"])
    row = _actor_row(a, "integration_logs", run_id)
    assert (row.action, row.new_values["integration_id"]) == ("create", str(integration))
    assert row.metadata_["request"] == "POST /api/v1/runs"
    assert row.xmin == _xmin(a, "integration_logs", run_id)

    # schedules cleared (a DELETE statement): its summary row
    path = f"/integrations/{integration}/schedules"
    assert a.api.put(path, json={"every": "1h"}).status_code == 200
    assert a.api.delete(path).json() == {"removed": 1}
    summaries = [r for r in _audit_rows(a, integration) if r.table_name == "integrations"]
    assert summaries[-1].new_values == {"schedules_removed": 1, "streams": []}
    assert summaries[-1].metadata_["request"] == f"DELETE /api/v1{path}"

    # stored webhook deliveries replayed (an UPDATE statement)
    with db.tenant(a.id) as session:
        stored = WebhookDelivery(
            integration_id=integration,
            provider="hubspot",
            delivery_id=f"audit-{uuid.uuid4().hex[:8]}",
            method="POST",
            url="/webhooks/hubspot",
            headers={},
            body=b"[]",
            status="failed",
            received_at=utcnow(),
        )
        session.add(stored)
        session.flush()
        delivery_id = stored.id
    replayed = a.api.post(
        "/webhook-deliveries/replay",
        json={"integration_id": str(integration), "failed_only": True},
    )
    assert replayed.json() == {"enqueued": 1}
    row = _actor_row(a, "webhook_inbox", integration)
    assert row.new_values == {"replayed": 1, "failed_only": True}
    assert row.xmin == _xmin(a, "webhook_inbox", delivery_id)

    # a notification sent (rows inserted in bulk), then marked read (an UPDATE statement)
    title = f"Audited {uuid.uuid4().hex[:6]}"
    body = {"audience": {"user_ids": [str(a.user_id)]}, "title": title, "message": "m"}
    assert a.api.post("/notifications", json=body).status_code == 202
    with db.tenant(a.id) as session:
        notification_id = session.execute(
            text("SELECT id FROM notifications WHERE title = :t"), {"t": title}
        ).scalar_one()
    sent = [
        r
        for r in _audit_rows_of(a, "notifications")
        if r.new_values.get("title") == title and r.action == "create"
    ]
    assert [r.metadata_["request"] for r in sent] == ["POST /api/v1/notifications"]
    assert sent[0].xmin == _xmin(a, "notifications", notification_id)
    feed = f"/users/{a.user_id}/feed/read"
    assert a.api.post(feed, json={"notification_id": str(notification_id)}).json()["marked"] == 1
    row = _actor_row(a, "notifications", notification_id)
    assert row.new_values == {"is_read": True, "marked": 1, "user_id": str(a.user_id)}
    assert row.xmin == _xmin(a, "notifications", notification_id)

    # an event replayed, then the failed deliveries: the deliveries restarted through the ORM
    made = a.api.post(
        "/event-endpoints",
        json={"url": "http://127.0.0.1:9/audit", "event_types": ["webhook.failed"]},
    )
    assert made.status_code == 201, made.text
    with db.tenant(a.id) as session:
        event_id = emit(session, a.id, "webhook.failed", {"reason": "audit"})
    with db.tenant(a.id) as session:
        [event_delivery] = session.scalars(
            select(EventDelivery.id).where(EventDelivery.event_id == event_id)
        ).all()
    assert a.api.post(f"/events/{event_id}/replay").json() == {"enqueued": 1}
    row = _actor_row(a, "event_deliveries", event_delivery)
    assert row.metadata_["request"] == f"POST /api/v1/events/{event_id}/replay"
    assert row.xmin == _xmin(a, "event_deliveries", event_delivery)
    with db.tenant(a.id) as session:
        session.execute(
            update(EventDelivery).where(EventDelivery.id == event_delivery).values(status="failed")
        )
    since = (utcnow() - timedelta(hours=1)).isoformat()
    assert a.api.post("/events/replay-failed", json={"since": since}).json() == {"enqueued": 1}
    [_, again] = [
        r for r in _audit_rows(a, event_delivery) if r.metadata_.get("actor", {}).get("id")
    ]
    assert again.metadata_["request"] == "POST /api/v1/events/replay-failed"
    assert again.xmin == _xmin(a, "event_deliveries", event_delivery)


def _audit_rows_of(org: Org, table: str) -> list[Any]:
    with get_database().tenant(org.id) as session:
        query = select(
            AuditLog.action,
            AuditLog.new_values,
            AuditLog.metadata_,
            literal_column("audit_logs.xmin::text").label("xmin"),
        ).where(AuditLog.table_name == table)
        return list(session.execute(query))
