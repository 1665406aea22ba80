"""Runs opened in bulk by the scheduler are the runs `open_run` writes, row for row."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select

from connectors.integrations import add_integration
from models import Integration, IntegrationLog, OutboxMessage, SyncCursor, SyncStreamRun
from models.accounts import create_organization
from models.session import Database
from runs.batch import RunRequest, open_runs
from runs.sync import open_run


class _RolledBack(Exception):
    pass


VOLATILE = {"id", "run_id", "created_at", "updated_at", "started_at"}


def _rows(session: Any, model: type, **where: Any) -> list[dict[str, Any]]:
    query = select(model).filter_by(**where)
    rows = []
    for row in session.scalars(query):
        values = {c.key: getattr(row, c.key) for c in model.__mapper__.column_attrs}
        rows.append({k: v for k, v in values.items() if k not in VOLATILE})
    return sorted(rows, key=repr)


def _written(session: Any, run_id: uuid.UUID) -> dict[str, Any]:
    [run] = _rows(session, IntegrationLog, id=run_id)
    streams = _rows(session, SyncStreamRun, run_id=run_id)
    ids = [str(s.id) for s in session.scalars(select(SyncStreamRun).filter_by(run_id=run_id))]
    tasks = [
        (m.task_name, m.args[0], m.available_at)
        for m in session.scalars(select(OutboxMessage))
        if m.args[1] in ids
    ]
    return {"run": run, "streams": streams, "tasks": sorted(tasks, key=repr)}


def test_an_opened_run_has_every_stream_its_cursor_and_its_first_page_tasks(
    app_db: Database,
) -> None:
    org = create_organization(app_db, "Opened runs")
    integration = add_integration(
        app_db, org.id, "hubspot", {"token": "pat-x"}, {"write_back": "true"}
    )
    with app_db.tenant(org.id) as session:  # a saved cursor: the contacts stream starts there
        session.add(
            SyncCursor(integration_id=integration.id, stream="contacts", state={"cursor": "7"})
        )
    request = {"slot": "2026-01-01T00:00:00+00:00", "schedule_id": "s"}
    with pytest.raises(_RolledBack), app_db.system("test: open runs") as session:
        row = session.get(Integration, integration.id)
        batch = [
            RunRequest(row, trigger="schedule", request=request),
            RunRequest(row, streams=["contacts"], full_refresh=True),
            RunRequest(row, streams=["contacts"], record_ids={"contacts": ["151", "152"]}),
            RunRequest(row, streams=["deals"]),
        ]
        open_runs(session, batch)
        scheduled, full, replay, unknown = (
            _written(session, r.run_id) if r.run_id else r for r in batch
        )
        assert scheduled["run"]["status"] == "running"
        assert scheduled["run"]["request_data"]["slot"] == request["slot"]
        streams = {s["stream"]: s for s in scheduled["streams"]}
        assert len(streams) == 7  # every stream, write-back too
        assert streams["contacts"]["start_state"] == {"cursor": "7"}
        assert streams["notes"]["status"] == "waiting"  # engagements wait for contacts
        assert streams["contacts"]["status"] == "waiting"  # ...which waits for the write-back
        assert streams["contacts_export"]["direction"] == "push"
        assert len(scheduled["tasks"]) == 2  # archived_contacts, contacts_export
        assert full["streams"][0]["start_state"] == {}
        assert full["run"]["request_data"]["full_refresh"] is True
        assert replay["streams"][0]["page_cursor"] == {"ids": ["151", "152"]}
        assert unknown.run_id is None and "has no stream deals" in unknown.error
        one = open_run(session, row, streams=["contacts"], trigger="manual")
        assert _written(session, one)["run"]["request_data"]["trigger"] == "manual"
        raise _RolledBack  # nothing is committed, so no page task is published
