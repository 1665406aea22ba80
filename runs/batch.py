"""Opening runs: the one way, for one run (``plugs sync``) or 10,000 (a scheduler tick).

:func:`open_runs` writes, for each request, the run (``integration_logs``, status running),
a stream run per stream starting from the saved cursor (or from nothing for a full refresh;
from given record ids for a replay), and the first page task of each stream that waits for
nothing, through the outbox -- with one query for the saved cursors and, on PostgreSQL, one
``INSERT`` statement for the three tables of the whole batch.  :func:`runs.lifecycle.open_run`
is a batch of one.  A caller that must record the run ids before the runs exist (the
scheduler's slots) gives them out first with :func:`assign_runs`.  Opened for
an actor that names ``integration_logs`` (an API request, :func:`models.audit_trail.audit_tables`),
their audit rows are written with them.

Works in a system session (rows of many organizations) or a tenant session.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select

from connectors.base import Connector
from connectors.registry import get_connector
from core.errors import PlugsError
from models import outbox
from models.audit_trail import record_inserts
from models.base import utcnow
from models.bulk import bulk_insert_all
from models.id_sets import among
from models.ids import uuid4s
from models.integrations import Integration, IntegrationLog
from models.session import PlugsSession
from models.sync_state import OutboxMessage, SyncCursor, SyncStreamRun

#: The task that runs a stream's pages (workers/tasks/sync.py).
PAGE_TASK = "sync.page"


@dataclass(frozen=True)
class IntegrationRef:
    """What opening a run needs of an integration (an :class:`Integration` row works too)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    provider: str
    settings: dict[str, Any]


@dataclass
class RunRequest:
    """One run to open: of ``streams`` (None: the integration's default streams)."""

    integration: Integration | IntegrationRef
    streams: list[str] | None = None
    trigger: str = "manual"
    request: dict[str, Any] = field(default_factory=dict)
    full_refresh: bool = False
    replay_of: uuid.UUID | None = None
    #: Stream -> vendor record ids to fetch again (a replay) instead of paging.
    record_ids: dict[str, list[str]] | None = None
    #: Filled by :func:`assign_runs` (or :func:`open_runs`): the new run's id, or why it
    #: could not be opened.
    run_id: uuid.UUID | None = None
    error: str | None = None
    #: The checked stream names (set with ``run_id``).
    names: list[str] = field(default_factory=list, repr=False)


def assign_runs(requests: Sequence[RunRequest]) -> None:
    """Give each request the id its run will have, or ``error`` when it cannot be opened
    (an unknown connector or stream), without writing anything."""
    connectors: dict[str, type[Connector]] = {}
    unassigned = [r for r in requests if r.run_id is None and r.error is None]
    for request, run_id in zip(unassigned, uuid4s(len(unassigned)), strict=True):
        names = _streams(request, connectors)
        if names is not None:
            request.run_id, request.names = run_id, names


def open_runs(session: PlugsSession, requests: Sequence[RunRequest]) -> None:
    """Open a run for each request in the session's transaction (see the module).

    A request that cannot be opened (unknown connector or stream) gets ``error`` and no
    rows; the others get ``run_id`` (the one :func:`assign_runs` gave, if it was called).
    """
    assign_runs(requests)
    planned = [r for r in requests if r.run_id is not None]
    states = _saved_states(
        session,
        [(r.integration.id, n) for r in planned if not r.full_refresh for n in r.names],
    )
    now = utcnow()
    connectors: dict[str, type[Connector]] = {}
    ids = iter(uuid4s(sum(len(r.names) for r in planned)))
    runs, stream_runs, messages = [], [], []
    for request in planned:
        assert request.run_id is not None
        names = request.names
        runs.append(_run_row(request, request.run_id, names, now))
        connector = _connector(request.integration.provider, connectors)
        exports = {s.name for s in connector.export_streams}
        for name in names:
            waits = [d for d in dependencies(connector, name) if d in names]
            state = {} if request.full_refresh else states.get((request.integration.id, name), {})
            row = _stream_run_row(
                request, next(ids), name, name in exports, state, waits=bool(waits)
            )
            row["created_at"] = row["updated_at"] = now
            stream_runs.append(row)
            if not waits:
                org = str(request.integration.organization_id)
                messages.append((request.integration.organization_id, [org, str(row["id"])]))
    tasks = outbox.new_messages(PAGE_TASK, messages)
    # one statement on PostgreSQL (the stream runs' references to their runs are checked
    # at its end, when both are in)
    bulk_insert_all(
        session,
        [
            (IntegrationLog.__table__, runs),
            (SyncStreamRun.__table__, stream_runs),
            (OutboxMessage.__table__, outbox.table_rows(tasks)),
        ],
    )
    # audit rows of tables the actor names (an API request's runs); none for a tick's
    record_inserts(session, IntegrationLog, runs)
    record_inserts(session, SyncStreamRun, stream_runs)
    outbox.after_insert(session, tasks)


def _connector(provider: str, known: dict[str, type[Connector]]) -> type[Connector]:
    """:func:`get_connector`, looked up once per batch (it loads an entry point)."""
    connector = known.get(provider)
    if connector is None:
        connector = known[provider] = get_connector(provider)
    return connector


def _streams(request: RunRequest, connectors: dict[str, type[Connector]]) -> list[str] | None:
    """The request's stream names, checked against its connector; None (and ``error``)
    when it cannot be opened."""
    try:
        connector = _connector(request.integration.provider, connectors)
        names = request.streams or default_streams(connector, request.integration)
        known = {s.name for s in connector.streams} | {s.name for s in connector.export_streams}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise PlugsError(
                f"{connector.provider} has no stream {', '.join(unknown)}; its streams: "
                f"{', '.join(sorted(known))}"
            )
    except (PlugsError, LookupError) as exc:
        request.error = str(exc)
        return None
    return names


def default_streams(
    connector: type[Connector], integration: Integration | IntegrationRef
) -> list[str]:
    names = [s.name for s in connector.streams]
    if str(integration.settings.get("write_back", "")).lower() in ("1", "true", "yes", "on"):
        names += [s.name for s in connector.export_streams]
    return names


def dependencies(connector: type[Connector], name: str) -> tuple[str, ...]:
    """The streams ``name`` waits for (when they run in the same run)."""
    for stream in connector.streams:
        if stream.name == name:
            return stream.after
    return ()


def _saved_states(
    session: PlugsSession, pairs: list[tuple[uuid.UUID, str]]
) -> dict[tuple[uuid.UUID, str], dict[str, Any]]:
    """The saved cursor state of each (integration, stream), in one query."""
    if not pairs:
        return {}
    wanted = set(pairs)
    integrations = list({integration_id for integration_id, _ in pairs})
    return {
        (integration_id, stream): dict(state)
        for condition in among(session, SyncCursor.integration_id, integrations)
        for integration_id, stream, state in session.execute(
            select(SyncCursor.integration_id, SyncCursor.stream, SyncCursor.state).where(condition)
        )
        if (integration_id, stream) in wanted
    }


def _run_row(
    request: RunRequest, run_id: uuid.UUID, names: list[str], now: datetime
) -> dict[str, Any]:
    integration = request.integration
    return {
        "id": run_id,
        "organization_id": integration.organization_id,
        "integration_id": integration.id,
        "operation": "sync",
        "status": "running",
        "started_at": now,
        "created_at": now,
        "message": f"{request.trigger} sync of {', '.join(names)}",
        "request_data": {
            "streams": names,
            "full_refresh": request.full_refresh,
            "trigger": request.trigger,
            "replay_of": str(request.replay_of) if request.replay_of else None,
            **request.request,
        },
        "records_processed": 0,
        "records_failed": 0,
        "response_data": {},
        "error_details": {},
    }


def _stream_run_row(
    request: RunRequest,
    stream_run_id: uuid.UUID,
    name: str,
    push: bool,
    state: dict[str, Any],
    *,
    waits: bool,
) -> dict[str, Any]:
    return {
        "id": stream_run_id,
        "organization_id": request.integration.organization_id,
        "run_id": request.run_id,
        "integration_id": request.integration.id,
        "stream": name,
        "direction": "push" if push else "pull",
        "start_state": state,
        "high_water": state,
        "page_cursor": (
            {"ids": request.record_ids[name]}
            if request.record_ids and name in request.record_ids
            else None
        ),
        "status": "waiting" if waits else "pending",
        "pages_done": 0,
        "pages_staged": 0,
        "attempts": 0,
    }
