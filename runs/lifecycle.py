"""A run's life outside its pages: opening it, starting streams that waited, closing it,
and replaying its failed records.

Opening writes the run (an ``integration_logs`` row, status running), a stream run per
stream and the first page tasks (outbox) in the caller's transaction.  Closing is done by
the last stream to finish, under a lock on the run's row, so two streams finishing together
close it once: counts are sums of page outcomes, never counters.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import func, select

from connectors import loading
from core.errors import OUR_CONFIGURATION, NotFoundError, PlugsError
from events.runs import run_finished
from models import outbox
from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.session import ROW_LOCK, Database, PlugsSession
from models.sync_state import SyncCursor, SyncPageOutcome, SyncStreamRun
from notifications import producers
from runs import progress  # noqa: F401 - it labels page tasks for Flower
from runs.batch import PAGE_TASK, RunRequest, dependencies, open_runs

#: How many failures a run keeps with their reasons in error_details (the count is exact).
MAX_LISTED_FAILURES = 1000


def start_run(
    db: Database,
    org_id: uuid.UUID,
    integration_id: uuid.UUID,
    *,
    streams: list[str] | None = None,
    full_refresh: bool = False,
    trigger: str = "manual",
    replay_of: uuid.UUID | None = None,
    record_ids: dict[str, list[str]] | None = None,
) -> uuid.UUID:
    """Open a run of ``streams`` (default: all) and enqueue their first pages."""
    with db.tenant(org_id) as session:
        integration = _integration(session, integration_id)
        return open_run(
            session,
            integration,
            streams=streams,
            full_refresh=full_refresh,
            trigger=trigger,
            replay_of=replay_of,
            record_ids=record_ids,
        )


def open_run(
    session: PlugsSession,
    integration: Integration,
    *,
    streams: list[str] | None = None,
    full_refresh: bool = False,
    trigger: str = "manual",
    replay_of: uuid.UUID | None = None,
    record_ids: dict[str, list[str]] | None = None,
    request: dict[str, Any] | None = None,
) -> uuid.UUID:
    """Write a run, its stream runs and their first page tasks in the caller's transaction
    (tenant or system session); ``request`` is recorded in the run's request_data."""
    wanted = RunRequest(
        integration,
        streams=streams,
        trigger=trigger,
        request=dict(request or {}),
        full_refresh=full_refresh,
        replay_of=replay_of,
        record_ids=record_ids,
    )
    open_runs(session, [wanted])
    if wanted.error is not None or wanted.run_id is None:
        raise PlugsError(wanted.error or "the run could not be opened")
    return wanted.run_id


def start_waiting(session: PlugsSession, org_id: uuid.UUID, finished: SyncStreamRun) -> None:
    """Start the streams of the run that were waiting for ``finished`` and now wait no more."""
    # Siblings are read, not locked: the caller holds the run's row lock, which serialises
    # finishing streams (locking siblings too would deadlock two streams finishing at once).
    runs = session.scalars(
        select(SyncStreamRun).where(SyncStreamRun.run_id == finished.run_id)
    ).all()
    done = {r.stream for r in runs if r.status in ("done", "failed")}
    integration = session.get(Integration, finished.integration_id)
    connector = loading.connector_class(integration) if integration else None
    for waiting in (r for r in runs if r.status == "waiting"):
        deps = dependencies(connector, waiting.stream) if connector else ()
        if all(d in done or d not in {r.stream for r in runs} for d in deps):
            waiting.status = "pending"
            outbox.enqueue(session, PAGE_TASK, str(org_id), str(waiting.id))


def _integration(session: PlugsSession, integration_id: uuid.UUID) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise NotFoundError(f"no integration with id {integration_id}")
    if not integration.is_active:
        raise PlugsError(
            f"integration {integration_id} is paused; "
            f"`plugs integrations resume {integration_id}` resumes it"
        )
    return integration


def replay_run(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> uuid.UUID:
    """A new run that fetches again only the records that failed in run ``run_id``."""
    with db.tenant(org_id) as session:
        run = session.get(IntegrationLog, run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id}")
        if run.status == "running":
            raise PlugsError(f"run {run_id} is still running; replay it when it has finished")
        failed: dict[str, list[str]] = {}
        rows = session.execute(
            select(SyncPageOutcome.stream, SyncPageOutcome.failures).where(
                SyncPageOutcome.run_id == run_id, SyncPageOutcome.failed > 0
            )
        )
        for stream, failures in rows:
            failed.setdefault(stream, []).extend(
                str(f["record_id"]) for f in failures if not f.get("warning")
            )
        integration_id = run.integration_id
    if not failed:
        raise PlugsError(f"run {run_id} has no failed records to replay")
    return start_run(
        db,
        org_id,
        integration_id,
        streams=sorted(failed),
        trigger="replay",
        replay_of=run_id,
        record_ids=failed,
    )


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
    failures, warnings = _failures(session, run_id)
    broken = {s.stream: s.last_error for s in streams if s.status == "failed"}
    run.error_details = {"failures": failures, "failed_streams": broken, "warnings": warnings}
    run.response_data = {
        "streams": {s.stream: {"pages": s.pages_done, "status": s.status} for s in streams}
    }
    _advance_cursors(session, streams)
    finish_run(
        session,
        run,
        succeeded=int(processed),
        failed=int(failed),
        broken=bool(broken),
        message=lambda status: _summary(status, int(processed), int(failed), broken),
    )
    _update_integration(session, run, broken)
    return True


#: The reason of the streams a cancel stopped (and of the run's message).
CANCELLED = "cancelled by an operator"


def cancel_run(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> IntegrationLog:
    """Stop a running run at the next page boundary: its unfinished streams end (a page
    being written finishes first: their rows are locked), the run ends ``cancelled`` with
    the counts of the pages written so far.  Returns the run (detached)."""
    with db.tenant(org_id) as session:
        run = session.get(IntegrationLog, run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id}")
        if run.status != "running":
            raise PlugsError(f"run {run_id} has already ended: {run.status}")
        if run.operation == "webhook":
            raise PlugsError(f"run {run_id} is a webhook batch: only syncs can be cancelled")
        streams = _stop_streams(session, run_id, CANCELLED)
        run = session.get(IntegrationLog, run_id, with_for_update=ROW_LOCK, populate_existing=True)
        if run is not None and run.status == "running":  # its last page may have closed it
            processed, failed = (
                int(n)
                for n in session.execute(
                    select(
                        func.coalesce(func.sum(SyncPageOutcome.succeeded), 0),
                        func.coalesce(func.sum(SyncPageOutcome.failed), 0),
                    ).where(SyncPageOutcome.run_id == run_id)
                ).one()
            )
            failures, warnings = _failures(session, run_id)
            broken = {s.stream: s.last_error for s in streams if s.status == "failed"}
            run.error_details = {
                "failures": failures,
                "failed_streams": broken,
                "warnings": warnings,
            }
            run.response_data = {
                "streams": {s.stream: {"pages": s.pages_done, "status": s.status} for s in streams}
            }
            _advance_cursors(session, streams)
            run.status = "cancelled"
            run.records_processed, run.records_failed = processed, failed
            run.completed_at = utcnow()
            run.message = f"cancelled: {processed} records synced, {failed} failed; {CANCELLED}"
        assert run is not None
        session.flush()
        session.expunge(run)
        return run


def stop_run(db: Database, org_id: uuid.UUID, run_id: uuid.UUID, reason: str) -> None:
    """End every unfinished stream of a run with ``reason`` and close the run by the one
    rule: the vendor is unreachable or refused the credentials, so the other streams would
    only fail the same way, one after another."""
    with db.tenant(org_id) as session:
        _stop_streams(session, run_id, reason)
        close_run_if_finished(session, run_id)


def _stop_streams(session: PlugsSession, run_id: uuid.UUID, reason: str) -> list[SyncStreamRun]:
    """Mark the run's unfinished streams failed with ``reason``.  Every stream row is
    locked first, in one order: a page being stored commits before, and the next claim of
    any of them finds its stream finished.  Returns all of the run's streams."""
    streams = session.scalars(
        select(SyncStreamRun)
        .where(SyncStreamRun.run_id == run_id)
        .order_by(SyncStreamRun.id)
        .with_for_update(**ROW_LOCK)
        .execution_options(populate_existing=True)
    ).all()
    for stream_run in streams:
        if stream_run.status not in ("done", "failed"):
            stream_run.status = "failed"
            stream_run.last_error = reason
    session.flush()
    return list(streams)


def run_status(succeeded: int, failed: int, broken: bool) -> str:
    """The one rule for every integration_logs status, sync and webhook runs alike:
    ``success`` when nothing failed or broke, ``failed`` when something did and nothing
    succeeded, ``partial`` otherwise."""
    if not failed and not broken:
        return "success"
    if succeeded == 0:
        return "failed"
    return "partial"


def finish_run(
    session: PlugsSession,
    run: IntegrationLog,
    *,
    succeeded: int,
    failed: int,
    broken: bool = False,
    message: str | Callable[[str], str],
    processed: int | None = None,
) -> None:
    """End ``run`` (its status by :func:`run_status`, its counts, its completion time and
    message) and tell the organization's admins of a failed or partial run, once per
    incident; the host product's endpoints get ``run.*`` and ``records.changed`` events
    (:mod:`events.runs`) in the same transaction.  ``processed`` is the records_processed
    count where it is not ``succeeded`` (a webhook run counts the events it applied, failed
    ones included); ``message`` may be a function of the status."""
    run.status = run_status(succeeded, failed, broken)
    run.records_processed = succeeded if processed is None else processed
    run.records_failed = failed
    run.completed_at = utcnow()
    run.message = message(run.status) if callable(message) else message
    producers.run_ended(session, run)
    run_finished(session, run)


def _failures(
    session: PlugsSession, run_id: uuid.UUID
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The run's failures and its warnings (records stored with a value cut to fit), up to
    :data:`MAX_LISTED_FAILURES` of each, with their reasons."""
    listed: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    rows = session.execute(
        select(SyncPageOutcome.stream, SyncPageOutcome.failures)
        .where(SyncPageOutcome.run_id == run_id)
        .order_by(SyncPageOutcome.created_at)
    )
    for stream, entries in rows:
        for entry in entries:
            warning = bool(entry.get("warning"))
            into = warnings if warning else listed
            if len(into) < MAX_LISTED_FAILURES:
                into.append(
                    {"stream": stream, **{k: v for k, v in entry.items() if k != "warning"}}
                )
    return listed, warnings


def _summary(status: str, processed: int, failed: int, broken: dict[str, str | None]) -> str:
    """One line: the counts, then each distinct stream error once with its streams."""
    text = f"{status}: {processed} records synced, {failed} failed"
    first: dict[str, str] = {}  # the same error on another endpoint is the same cause
    streams_of: dict[str, list[str]] = {}
    for name, reason in broken.items():
        cause = _REQUEST.sub("", reason or "failed")
        first.setdefault(cause, reason or "failed")
        streams_of.setdefault(cause, []).append(name)
    if streams_of:
        text += "; " + "; ".join(
            f"{', '.join(names)}: {first[cause]}" for cause, names in streams_of.items()
        )
    return text


#: The request an HTTP error names (``GET /crm/v3/objects/contacts -> ``).
_REQUEST = re.compile(r"\b[A-Z]+ /\S* -> ")


def _advance_cursors(session: PlugsSession, streams: Sequence[SyncStreamRun]) -> None:
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
    if any((reason or "").startswith(OUR_CONFIGURATION) for reason in broken.values()):
        return  # our configuration failed the run: the connection was never tried
    if broken and run.records_processed == 0:  # the connection itself broke
        integration.status = "error"
    else:
        integration.status = "connected"
        integration.last_sync = run.completed_at
