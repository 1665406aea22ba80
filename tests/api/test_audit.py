"""A change made through the API is in the audit trail with the key as its actor, written
in the change's own transaction: the audit row and the row it records share their
PostgreSQL ``xmin`` (the id of the transaction that wrote them)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import literal_column, select, text

from core.redaction import REDACTED
from models import AuditLog
from models.session import get_database
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
