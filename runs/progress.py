"""How far a run has got, read from the database as it goes: per stream the pages stored
and the records done and failed (sums of page outcomes, written with each page), for
`plugs sync --wait`, `plugs runs watch` and `plugs logs`; and the short label that names
a page task's integration and stream in Flower.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from models import outbox
from models.id_sets import among
from models.integrations import Integration, IntegrationLog
from models.session import Database, PlugsSession
from models.sync_state import SyncPageOutcome, SyncStreamRun
from runs.batch import PAGE_TASK
from runs.staged_load import LOAD_TASK


@dataclass(frozen=True)
class StreamProgress:
    """One stream of a run so far."""

    stream: str
    status: str  # waiting | pending | running | done | failed
    pages: int
    succeeded: int
    failed: int
    last_error: str | None


@dataclass(frozen=True)
class RunProgress:
    """A run so far: its row's status and message, and counts summed from its pages."""

    run_id: uuid.UUID
    integration_id: uuid.UUID
    status: str
    started_at: datetime | None
    completed_at: datetime | None
    message: str | None
    streams: list[StreamProgress] = field(default_factory=list)

    @property
    def succeeded(self) -> int:
        return sum(s.succeeded for s in self.streams)

    @property
    def failed(self) -> int:
        return sum(s.failed for s in self.streams)

    @property
    def finished(self) -> bool:
        return self.status != "running"


def run_progress(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> RunProgress:
    """The run's progress now, in one short transaction."""
    with db.tenant(org_id) as session:
        run = session.get(IntegrationLog, run_id)
        if run is None:
            raise LookupError(f"no run with id {run_id}")
        counts = running_counts(session, [run_id]).get(run_id, {})
        streams = session.scalars(
            select(SyncStreamRun).where(SyncStreamRun.run_id == run_id).order_by(SyncStreamRun.id)
        ).all()
        return RunProgress(
            run_id=run.id,
            integration_id=run.integration_id,
            status=run.status,
            started_at=run.started_at,
            completed_at=run.completed_at,
            message=run.message,
            streams=[
                StreamProgress(
                    s.stream,
                    s.status,
                    s.pages_done,
                    *counts.get(s.stream, (0, 0)),
                    s.last_error,
                )
                for s in streams
            ],
        )


def running_counts(
    session: PlugsSession, run_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[str, tuple[int, int]]]:
    """Per run and stream, the records done and failed so far (sums of page outcomes)."""
    if not run_ids:
        return {}
    rows = session.execute(
        select(
            SyncPageOutcome.run_id,
            SyncPageOutcome.stream,
            func.coalesce(func.sum(SyncPageOutcome.succeeded), 0),
            func.coalesce(func.sum(SyncPageOutcome.failed), 0),
        )
        .where(SyncPageOutcome.run_id.in_(run_ids))
        .group_by(SyncPageOutcome.run_id, SyncPageOutcome.stream)
    )
    counts: dict[uuid.UUID, dict[str, tuple[int, int]]] = {}
    for run_id, stream, succeeded, failed in rows:
        counts.setdefault(run_id, {})[stream] = (int(succeeded), int(failed))
    return counts


def integration_label(integration: Integration) -> str:
    """``hubspot "Acme HubSpot"``: the provider and the operator's name for it, if any."""
    return _label(integration.provider, integration.metadata_)


def _label(provider: str, metadata: dict[str, Any] | None) -> str:
    name = (metadata or {}).get("name")
    return f'{provider} "{name}"' if name else provider


def _page_label(session: PlugsSession, args: list[Any]) -> str | None:
    """The Flower label of a page or load task: ``hubspot "Acme HubSpot" contacts``."""
    if len(args) != 2:
        return None
    return _label_of(session, str(args[1]))


#: stream run id -> label, per process (bounded: cleared when it grows past 4096).
_LABELS: dict[str, str] = {}


def _label_of(session: PlugsSession, stream_run_id: str) -> str | None:
    """A stream run's integration and stream never change: each is looked up once per
    process (the stream run is usually in the session already)."""
    known = _LABELS.get(stream_run_id)
    if known is not None:
        return known
    stream_run = session.get(SyncStreamRun, uuid.UUID(stream_run_id))
    if stream_run is None:
        return None
    integration = session.get(Integration, stream_run.integration_id)
    if integration is None:
        return None
    label = f"{integration_label(integration)} {stream_run.stream}"
    if len(_LABELS) > 4096:
        _LABELS.clear()
    _LABELS[stream_run_id] = label
    return label


def _page_labels(session: PlugsSession, args: list[list[Any]]) -> list[str | None]:
    """The Flower labels of many page tasks, as :func:`_page_label` makes one, in one query:
    a scheduler tick opens thousands of runs at once."""
    ids = [uuid.UUID(str(a[1])) for a in args if len(a) == 2]
    name = Integration.metadata_["name"].as_string()  # not the whole metadata, decoded
    found = {
        stream_run_id: f"{_label(provider, {'name': named})} {stream}"
        for condition in among(session, SyncStreamRun.id, ids)
        for stream_run_id, stream, provider, named in session.execute(
            select(SyncStreamRun.id, SyncStreamRun.stream, Integration.provider, name)
            .join(Integration, Integration.id == SyncStreamRun.integration_id)
            .where(condition)
            .execution_options(include_deleted=True)
        )
    }
    return [found.get(uuid.UUID(str(a[1]))) if len(a) == 2 else None for a in args]


for _task in (PAGE_TASK, LOAD_TASK):  # a load task writes the same stream's pages
    outbox.describe_with(_task, _page_label)
    outbox.describe_many_with(_task, _page_labels)
