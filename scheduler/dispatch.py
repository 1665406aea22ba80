"""The beat tick: claim the due schedules, record their slots, open their runs.

Each batch is one transaction of a system session:

1. claim up to ``batch_size`` schedules with ``next_run_at <= now``, oldest first,
   ``FOR UPDATE OF sync_schedules SKIP LOCKED`` on PostgreSQL: two beats' ticks split the
   due rows instead of waiting for (or repeating) each other.  SQLite has no SKIP LOCKED:
   the batch takes the database's write lock first, which serialises ticks.  The same
   query says whether each integration has a sync still ``running``;
2. per schedule, the slot it stands for at ``now``: the latest due time (after downtime
   the missed ones are folded into it and counted, not run one by one), and its outcome:
   ``skipped`` while a sync of the integration runs (never overlapped), ``skipped`` when
   its run cannot be opened (e.g. its connector is gone), else started with the id its
   run will have (:func:`runs.batch.assign_runs`);
3. insert one ``schedule_slots`` row per slot, with that outcome, ``ON CONFLICT
   (schedule_id, slot) DO NOTHING RETURNING``: the unique key is the real guard -- a slot
   another tick already took returns nothing here and gets no run;
4. the runs of the fresh started slots -- the rows :func:`runs.sync.open_run` writes,
   opened in bulk by :func:`runs.batch.open_runs` -- in this transaction, with
   ``{"slot": ..., "schedule_id": ...}`` in their request_data;
5. ``next_run_at`` moves to the first due time after ``now``.

Schedules of paused integrations move on without a slot (a resumed one continues at its
next due time); schedules of deleted integrations are removed.  Run page tasks go through
the outbox and are published right after each batch commits, by a background thread while
the tick goes on with the next batch (labelled for Flower in one query per batch by
:mod:`runs.progress`); the tick returns once all are published.  When its first batch is
full, the tick asks once for a second tick (``more``), which a worker runs in another
process: the two share the rest through SKIP LOCKED.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, delete, exists, select, text, update
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from models import outbox
from models.base import utcnow
from models.bulk import rows_json
from models.ids import uuid4s
from models.integrations import Integration, IntegrationLog
from models.schedules import ScheduleSlot, SyncSchedule
from models.session import Database, PlugsSession
from runs import progress  # noqa: F401 - it labels the page tasks a tick publishes
from runs.batch import IntegrationRef, RunRequest, assign_runs, open_runs
from scheduler.timing import Due, Timing

log = logging.getLogger(__name__)
BATCH_SIZE = 500
#: A tick stops claiming after this long; the next tick goes on where it stopped.
TICK_BUDGET_SECONDS = 120.0
STILL_RUNNING = "a run of this integration is still running"


@dataclass
class TickReport:
    """What one tick did (the task's result, shown in Flower)."""

    started: int = 0
    skipped: int = 0
    #: Slots another tick had already recorded (the unique key held).
    taken: int = 0
    paused: int = 0
    removed: int = 0
    batches: int = 0
    seconds: float = 0.0
    #: Of ``seconds``: committing the batches (their page tasks are published meanwhile).
    commit_seconds: float = 0.0
    #: Of ``seconds``: waiting, after the last batch, until every page task was published.
    publish_wait_seconds: float = 0.0
    run_ids: list[str] = field(default_factory=list, repr=False)

    def summary(self) -> dict[str, Any]:
        """The counts, JSON-able."""
        return {
            "started": self.started,
            "skipped": self.skipped,
            "taken": self.taken,
            "paused": self.paused,
            "removed": self.removed,
            "batches": self.batches,
            "seconds": round(self.seconds, 3),
            "commit_seconds": round(self.commit_seconds, 3),
            "publish_wait_seconds": round(self.publish_wait_seconds, 3),
        }


@dataclass(frozen=True)
class DueRow:
    """A claimed schedule with what the tick needs of its integration (a plain row: the
    tick loads no ORM objects, thousands of them would cost more than the SQL)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    integration_id: uuid.UUID
    kind: str
    every_seconds: int | None
    cron: str | None
    timezone: str
    streams: list[str]
    next_run_at: datetime
    provider: str
    #: The one integration setting opening a run reads (not the whole JSON document).
    write_back: str | None
    is_active: bool
    is_deleted: bool
    #: A sync of the integration is still running (read with the claim).
    running: bool

    def due(self, now: datetime) -> Due:
        """The slot this schedule stands for at ``now``."""
        return Timing(self.kind, self.every_seconds, self.cron, self.timezone).due(
            self.next_run_at, now
        )


@dataclass
class _Claim:
    """One claimed schedule of an active integration and the slot it stands for."""

    row: DueRow
    due: Due
    slot_id: uuid.UUID
    status: str = "started"
    reason: str | None = None
    run_id: uuid.UUID | None = None


def dispatch_due(
    db: Database,
    *,
    now: datetime | None = None,
    batch_size: int = BATCH_SIZE,
    budget: float = TICK_BUDGET_SECONDS,
    more: Callable[[], None] | None = None,
) -> TickReport:
    """Start every schedule due at ``now`` (default: the current time); see the module.

    ``more`` is called once, on PostgreSQL, when the first batch was full (more are due):
    the worker task starts a second tick there, in another worker process, and the two
    split the rest (each claims with SKIP LOCKED).  A failure to call it is logged.
    """
    now = now or utcnow()
    report = TickReport()
    started = time.monotonic()
    # A batch's page tasks go to the broker while the next batch is claimed and written
    # (not on SQLite: marking them published would wait for the next batch's write lock).
    background = outbox.publishing_in_background() if db.is_postgresql else nullcontext()
    with background:
        while time.monotonic() - started < budget:
            claimed = _dispatch_batch(db, now, batch_size, report)
            report.batches += 1
            if claimed < batch_size:
                break
            if report.batches == 1 and more is not None and db.is_postgresql:
                _ask(more)
        waiting = time.monotonic()
    report.publish_wait_seconds = time.monotonic() - waiting
    report.seconds = time.monotonic() - started
    if report.started or report.skipped:
        log.info("scheduler tick: %s", report.summary())
    return report


def _ask(more: Callable[[], None]) -> None:
    try:
        more()
    except Exception:  # noqa: BLE001 - a courtesy: this tick does the work alone
        log.warning("could not start a second scheduler tick", exc_info=True)


def _dispatch_batch(db: Database, now: datetime, size: int, report: TickReport) -> int:
    with db.system("scheduler: dispatch due schedules") as session:
        rows = _claim(session, now, size)
        gone = [r.id for r in rows if r.is_deleted]
        claims, moves = _plan([r for r in rows if not r.is_deleted], now, report)
        if gone:
            session.execute(delete(SyncSchedule).where(SyncSchedule.id.in_(gone)))
        if claims:
            _start(session, claims, now, report)
        _move_on(session, moves)
        report.removed += len(gone)
        work_done = time.monotonic()
    report.commit_seconds += time.monotonic() - work_done
    return len(rows)


#: A schedule whose timing cannot be evaluated (a time zone gone from the system's database)
#: is looked at again this much later instead of blocking the ticks.
BROKEN_RETRY = timedelta(hours=1)


def _plan(
    rows: list[DueRow], now: datetime, report: TickReport
) -> tuple[list[_Claim], list[tuple[uuid.UUID, datetime]]]:
    """Claims of active integrations; new due times of paused ones (no slot) and broken ones."""
    claims, moves = [], []
    slot_ids = iter(uuid4s(len(rows)))
    for row in rows:
        try:
            due = row.due(now)
        except ValueError as exc:
            log.error("schedule %s cannot be evaluated: %s", row.id, exc)
            moves.append((row.id, now + BROKEN_RETRY))
            continue
        if row.is_active:
            claims.append(_Claim(row, due, next(slot_ids)))
        else:
            moves.append((row.id, due.following))
            report.paused += 1
    return claims, moves


_DUE_COLUMNS = (
    SyncSchedule.id,
    SyncSchedule.organization_id,
    SyncSchedule.integration_id,
    SyncSchedule.kind,
    SyncSchedule.every_seconds,
    SyncSchedule.cron,
    SyncSchedule.timezone,
    SyncSchedule.streams,
    SyncSchedule.next_run_at,
    Integration.provider,
    Integration.settings["write_back"].as_string(),
    Integration.is_active,
    Integration.is_deleted,
    # A literal predicate, so PostgreSQL always plans it on the partial index of running runs.
    exists()
    .where(
        IntegrationLog.integration_id == SyncSchedule.integration_id,
        text("integration_logs.status = 'running'"),
    )
    .label("running"),
)


def _claim(session: PlugsSession, now: datetime, size: int) -> list[DueRow]:
    """Lock up to ``size`` due schedules (skipping ones another tick holds) with their
    integrations, soft-deleted ones included (their schedules are removed)."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    if not postgresql:  # take SQLite's write lock first: ticks run one at a time
        session.execute(
            update(SyncSchedule)
            .where(SyncSchedule.next_run_at <= now)
            .values(next_run_at=SyncSchedule.next_run_at)
            .execution_options(synchronize_session=False)
        )
    query = (
        select(*_DUE_COLUMNS)
        .join(
            Integration,
            and_(
                Integration.organization_id == SyncSchedule.organization_id,
                Integration.id == SyncSchedule.integration_id,
            ),
        )
        .where(SyncSchedule.next_run_at <= now)
        .order_by(SyncSchedule.next_run_at)
        .limit(size)
        .execution_options(include_deleted=True)
    )
    if postgresql:
        query = query.with_for_update(skip_locked=True, of=SyncSchedule)
    return [DueRow(*row) for row in session.execute(query)]


def _start(session: PlugsSession, claims: list[_Claim], now: datetime, report: TickReport) -> None:
    """Record the claims' slots and open the runs of the fresh ones that start.

    Each claim's outcome is settled before its slot is written: skipped while a sync of its
    integration still runs, skipped when its run cannot be opened (e.g. its connector is
    gone: that slot only), else started with the id its run will have.  The slot insert
    then says which slots are fresh; only their runs are opened, in bulk.
    """
    for claim in claims:
        if claim.row.running:
            claim.status, claim.reason = "skipped", STILL_RUNNING
    starting = [c for c in claims if c.status == "started"]
    requests = [
        RunRequest(
            IntegrationRef(
                c.row.integration_id,
                c.row.organization_id,
                c.row.provider,
                {} if c.row.write_back is None else {"write_back": c.row.write_back},
            ),
            streams=list(c.row.streams) or None,
            trigger="schedule",
            request={"slot": c.due.slot.isoformat(), "schedule_id": str(c.row.id)},
        )
        for c in starting
    ]
    assign_runs(requests)
    for claim, request in zip(starting, requests, strict=True):
        if request.error is not None:
            claim.status, claim.reason = "skipped", f"could not start: {request.error}"[:500]
            log.warning("schedule %s: %s", claim.row.id, claim.reason)
        else:
            claim.run_id = request.run_id
    fresh_ids = _insert_slots(session, claims, now)
    fresh = [c for c in claims if c.slot_id in fresh_ids]
    for claim in claims:
        if claim.slot_id not in fresh_ids:
            claim.run_id = None  # another tick has this slot: no run here
    opening = {c.run_id for c in fresh}
    open_runs(session, [r for r in requests if r.run_id in opening])
    _advance(session, claims, fresh, now)
    report.taken += len(claims) - len(fresh)
    report.started += sum(1 for c in fresh if c.status == "started")
    report.skipped += sum(1 for c in fresh if c.status == "skipped")
    report.run_ids.extend(str(c.run_id) for c in fresh if c.run_id is not None)


def _insert_slots(session: PlugsSession, claims: list[_Claim], now: datetime) -> set[uuid.UUID]:
    """Record each claim's slot with its outcome; returns the ids of the slots no other
    tick had taken."""
    rows = [
        {
            "id": c.slot_id,
            "organization_id": c.row.organization_id,
            "schedule_id": c.row.id,
            "integration_id": c.row.integration_id,
            "slot": c.due.slot,
            "status": c.status,
            "run_id": c.run_id,
            "missed": c.due.missed,
            "reason": c.reason,
            "created_at": now,
        }
        for c in claims
    ]
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(_SLOTS_SQL, {"rows": rows_json(rows)}).scalars()
        return {uuid.UUID(str(i)) for i in found}
    statement = (
        sqlite_insert(ScheduleSlot.__table__)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["schedule_id", "slot"])
        .returning(ScheduleSlot.__table__.c.id)
    )
    return set(session.execute(statement).scalars())


#: One statement for the whole batch: the rows travel as one JSON parameter.
_SLOTS_SQL = text(
    "INSERT INTO schedule_slots (id, organization_id, schedule_id, integration_id, slot, "
    "status, run_id, missed, reason, created_at) "
    "SELECT id, organization_id, schedule_id, integration_id, slot, status, run_id, missed, "
    "reason, created_at FROM jsonb_populate_recordset(NULL::schedule_slots, CAST(:rows AS jsonb)) "
    "ON CONFLICT (schedule_id, slot) DO NOTHING RETURNING id"
)


#: Every fresh slot's schedule moved on, in one statement; a started one records its run.
_ADVANCE_SQL = text(
    "UPDATE sync_schedules AS s SET next_run_at = v.following, last_slot_at = v.slot, "
    "last_slot_status = v.status, updated_at = :now, "
    "last_run_at = CASE WHEN v.run_id IS NULL THEN s.last_run_at ELSE :now END, "
    "last_run_id = coalesce(v.run_id, s.last_run_id) "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v "
    "(schedule_id uuid, following timestamptz, slot timestamptz, status text, run_id uuid) "
    "WHERE s.id = v.schedule_id"
)


def _postgresql(session: PlugsSession) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _advance(
    session: PlugsSession, claims: list[_Claim], fresh: list[_Claim], now: datetime
) -> None:
    """Every claimed schedule moves to its next due time; fresh slots are recorded on it."""
    recorded = {id(c) for c in fresh}
    _move_on(session, [(c.row.id, c.due.following) for c in claims if id(c) not in recorded])
    rows = [
        {
            "schedule_id": c.row.id,
            "following": c.due.following,
            "slot": c.due.slot,
            "status": c.status,
            "run_id": c.run_id,
        }
        for c in fresh
    ]
    if _postgresql(session):
        if rows:
            session.execute(_ADVANCE_SQL, {"rows": rows_json(rows), "now": now})
        return
    table = SyncSchedule.__table__
    for started in (True, False):
        params = [row for row in rows if (row["run_id"] is not None) == started]
        if not params:
            continue
        values: dict[str, Any] = {
            "next_run_at": bindparam("following"),
            "last_slot_at": bindparam("slot"),
            "last_slot_status": bindparam("status"),
            "updated_at": now,
        }
        if started:
            values.update(last_run_at=now, last_run_id=bindparam("run_id"))
        statement = update(table).where(table.c.id == bindparam("schedule_id")).values(values)
        session.connection().execute(statement, params)


_MOVE_ON_SQL = text(
    "UPDATE sync_schedules AS s SET next_run_at = v.following "
    "FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS v (schedule_id uuid, following timestamptz) "
    "WHERE s.id = v.schedule_id"
)


def _move_on(session: PlugsSession, moves: list[tuple[uuid.UUID, datetime]]) -> None:
    """Set ``next_run_at`` of schedules that get no slot now (paused, or taken already)."""
    if not moves:
        return
    if _postgresql(session):
        rows = [{"schedule_id": i, "following": following} for i, following in moves]
        session.execute(_MOVE_ON_SQL, {"rows": rows_json(rows)})
        return
    table = SyncSchedule.__table__
    statement = (
        update(table)
        .where(table.c.id == bindparam("schedule_id"))
        .values(next_run_at=bindparam("following"))
    )
    session.connection().execute(
        statement, [{"schedule_id": i, "following": following} for i, following in moves]
    )
