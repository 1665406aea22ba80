"""Closing a run: counts summed from page outcomes, status, cursors, the integration's state.

Called by the last stream of a run to finish, under a lock on the run's row, so two
streams finishing together close it once.
"""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.session import ROW_LOCK, PlugsSession
from models.sync_state import SyncCursor, SyncPageOutcome, SyncStreamRun

#: How many failures a run keeps with their reasons in error_details (the count is exact).
MAX_LISTED_FAILURES = 1000


def close_run_if_finished(session: PlugsSession, run_id: uuid.UUID) -> bool:
    """Close the run when none of its streams is still going; True if it closed it."""
    run = session.get(IntegrationLog, run_id, with_for_update=ROW_LOCK)
    if run is None or run.status != "running":
        return False
    streams = session.scalars(select(SyncStreamRun).where(SyncStreamRun.run_id == run_id)).all()
    if any(s.status not in ("done", "failed") for s in streams):
        return False
    processed, failed = session.execute(
        select(
            func.coalesce(func.sum(SyncPageOutcome.succeeded), 0),
            func.coalesce(func.sum(SyncPageOutcome.failed), 0),
        ).where(SyncPageOutcome.run_id == run_id)
    ).one()
    failures = _failures(session, run_id)
    broken = {s.stream: s.last_error for s in streams if s.status == "failed"}
    run.records_processed, run.records_failed = int(processed), int(failed)
    run.status = _run_status(int(processed), int(failed), bool(broken))
    run.completed_at = utcnow()
    run.error_details = {"failures": failures, "failed_streams": broken}
    run.response_data = {
        "streams": {s.stream: {"pages": s.pages_done, "status": s.status} for s in streams}
    }
    run.message = _summary(run, broken)
    _advance_cursors(session, streams)
    _update_integration(session, run, broken)
    return True


def _run_status(processed: int, failed: int, broken: bool) -> str:
    if broken and processed == 0:
        return "failed"
    if broken or failed:
        return "partial"
    return "success"


def _failures(session: PlugsSession, run_id: uuid.UUID) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = []
    rows = session.execute(
        select(SyncPageOutcome.stream, SyncPageOutcome.failures)
        .where(SyncPageOutcome.run_id == run_id, SyncPageOutcome.failed > 0)
        .order_by(SyncPageOutcome.created_at)
    )
    for stream, failures in rows:
        for failure in failures:
            if len(listed) >= MAX_LISTED_FAILURES:
                return listed
            listed.append({"stream": stream, **failure})
    return listed


def _summary(run: IntegrationLog, broken: dict[str, str | None]) -> str:
    text = f"{run.status}: {run.records_processed} records synced, {run.records_failed} failed"
    if broken:
        text += "; " + "; ".join(f"{name}: {reason}" for name, reason in broken.items())
    return text


def _advance_cursors(session: PlugsSession, streams: list[SyncStreamRun]) -> None:
    for stream_run in streams:
        if stream_run.status != "done" or not stream_run.high_water:
            continue
        cursor = session.scalars(
            select(SyncCursor)
            .where(
                SyncCursor.integration_id == stream_run.integration_id,
                SyncCursor.stream == stream_run.stream,
            )
            .with_for_update()
        ).one_or_none()
        if cursor is None:
            session.add(
                SyncCursor(
                    integration_id=stream_run.integration_id,
                    stream=stream_run.stream,
                    state=dict(stream_run.high_water),
                )
            )
        elif stream_run.high_water.get("cursor", "") > cursor.state.get("cursor", ""):
            cursor.state = dict(stream_run.high_water)


def _update_integration(
    session: PlugsSession, run: IntegrationLog, broken: dict[str, str | None]
) -> None:
    integration = session.get(Integration, run.integration_id)
    if integration is None:
        return
    if run.status == "failed":
        integration.status = "error"
    else:
        integration.status = "connected"
        integration.last_sync = run.completed_at
