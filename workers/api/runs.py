"""``/runs``: list an organization's runs (filters, cursor pages), show one with its
per-stream counts as it goes, its failed records with their reasons; start a sync,
replay a run's failures, cancel a run -- the functions `plugs sync`, `plugs logs` and
`plugs runs` call."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from models.api_keys import ApiKeyIdentity
from models.audit_trail import audit_tables
from models.integrations import RUN_STATUSES, IntegrationLog
from runs import history, lifecycle
from runs.progress import run_progress
from workers.api.auth import current_key, writable_key
from workers.api.common import Cursor, Listing, ShortText, db
from workers.api.problems import RESPONSES, WRITE_RESPONSES

router = APIRouter(prefix="/runs", tags=["runs"], responses=RESPONSES)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]
RunStatus = Literal["running", "success", "failed", "partial", "cancelled"]
assert set(RunStatus.__args__) == set(RUN_STATUSES)  # type: ignore[attr-defined]


class RunOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    operation: str
    status: str
    trigger: str | None
    started_at: datetime | None
    completed_at: datetime | None
    records_processed: int = Field(description="so far, while running")
    records_failed: int
    message: str | None
    created_at: datetime


class StreamOut(BaseModel):
    stream: str
    status: str = Field(description="waiting, pending, running, done or failed")
    pages: int
    succeeded: int
    failed: int
    last_error: str | None


class RunDetail(RunOut):
    streams: list[StreamOut]
    replay_of: uuid.UUID | None


class FailedRecord(BaseModel):
    stream: str | None = None
    record_id: str | None = None
    reason: str | None = None


class Failures(BaseModel):
    run_id: uuid.UUID
    records_failed: int = Field(description="exact; `items` lists up to the first 1000")
    items: list[FailedRecord]
    failed_streams: dict[str, str | None]


class SyncRequest(BaseModel):
    integration_id: uuid.UUID
    streams: list[ShortText] = Field(default_factory=list, description="default: all")
    full_refresh: bool = Field(default=False, description="ignore the saved cursors")


class Started(BaseModel):
    run_id: uuid.UUID


def run_out(run: IntegrationLog) -> RunOut:
    request: dict[str, Any] = run.request_data or {}
    return RunOut(
        id=run.id,
        integration_id=run.integration_id,
        operation=run.operation,
        status=run.status,
        trigger=request.get("trigger"),
        started_at=run.started_at,
        completed_at=run.completed_at,
        records_processed=run.records_processed,
        records_failed=run.records_failed,
        message=run.message,
        created_at=run.created_at,
    )


@router.get("")
def list_runs(
    key: Key,
    integration_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    since: Annotated[datetime | None, Query(description="created at or after (ISO 8601)")] = None,
    until: Annotated[datetime | None, Query(description="created before (ISO 8601)")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor | None = None,
) -> Listing[RunOut]:
    """The organization's runs, newest first; a running run shows its counts so far."""
    page = history.list_runs(
        db(),
        key.organization_id,
        integration_id=integration_id,
        status=status,
        since=_aware(since),
        until=_aware(until),
        limit=limit,
        cursor=cursor,
        details=False,
    )
    return Listing(items=[run_out(r) for r in page.items], next_cursor=page.next_cursor)


def _aware(moment: datetime | None) -> datetime | None:
    from datetime import UTC

    return moment.replace(tzinfo=UTC) if moment and moment.tzinfo is None else moment


@router.get("/{run_id}")
def show_run(run_id: uuid.UUID, key: Key) -> RunDetail:
    """A run with its streams' pages and records done and failed so far."""
    run = history.get_run(db(), key.organization_id, run_id)
    progress = run_progress(db(), key.organization_id, run_id)
    out = run_out(run)
    if progress.status == "running":
        out.records_processed, out.records_failed = progress.succeeded, progress.failed
    replay_of = (run.request_data or {}).get("replay_of")
    return RunDetail(
        **out.model_dump(),
        streams=[StreamOut(**vars(s)) for s in progress.streams],
        replay_of=uuid.UUID(replay_of) if replay_of else None,
    )


@router.get("/{run_id}/failures")
def run_failures(run_id: uuid.UUID, key: Key) -> Failures:
    """The run's failed records with their reasons."""
    run = history.get_run(db(), key.organization_id, run_id)
    details = run.error_details or {}
    return Failures(
        run_id=run.id,
        records_failed=run.records_failed,
        items=[FailedRecord(**_known(f)) for f in history.failed_records(run)],
        failed_streams=dict(details.get("failed_streams") or {}),
    )


def _known(failure: dict[str, Any]) -> dict[str, Any]:
    return {
        k: None if failure.get(k) is None else str(failure[k]) for k in FailedRecord.model_fields
    }


@router.post("", status_code=202, responses=WRITE_RESPONSES)
def start_sync(body: SyncRequest, key: WriteKey) -> Started:
    """Start a sync of an integration (all its streams, or `streams`); it runs on the
    workers: follow it with `GET /runs/{run_id}`."""
    audit_tables("integration_logs")  # not audited by itself; inserted in bulk with its audit
    run_id = lifecycle.start_run(
        db(),
        key.organization_id,
        body.integration_id,
        streams=list(body.streams) or None,
        full_refresh=body.full_refresh,
        trigger="api",
    )
    return Started(run_id=run_id)


@router.post("/{run_id}/replay", status_code=202, responses=WRITE_RESPONSES)
def replay_run(run_id: uuid.UUID, key: WriteKey) -> Started:
    """A new run that fetches again only the records that failed in this one."""
    audit_tables("integration_logs")  # the new run's audit row is written with it
    new_run = lifecycle.replay_run(db(), key.organization_id, run_id)
    return Started(run_id=new_run)


@router.post("/{run_id}/cancel", responses=WRITE_RESPONSES)
def cancel_run(run_id: uuid.UUID, key: WriteKey) -> RunOut:
    """Stop a running sync at the next page boundary; it ends `cancelled`."""
    audit_tables("integration_logs")  # not audited by itself; updated through the ORM
    run = lifecycle.cancel_run(db(), key.organization_id, run_id)
    return run_out(run)
