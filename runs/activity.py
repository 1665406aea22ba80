"""What an organization's integrations have been doing, read for the web console
(:mod:`workers.console`): each integration with its last run and next scheduled run
(failing ones first), the last hours of one integration per hour (records synced and
failed, run durations).

Every query runs in the organization's tenant session: row-level security decides what
is seen, as for the workers.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select

from models.integrations import Integration, IntegrationLog
from models.schedules import SyncSchedule
from models.session import Database
from models.sync_state import SyncPageOutcome

#: Statuses of a run or an integration that put it at the top of the list.
FAILING = ("error", "failed", "partial")


@dataclass(frozen=True)
class IntegrationSummary:
    """One integration in the organization's list."""

    integration: Integration
    last_run: IntegrationLog | None
    next_run_at: datetime | None

    @property
    def failing(self) -> bool:
        last = self.last_run.status if self.last_run is not None else None
        return self.integration.status in FAILING or last in FAILING


def integration_summaries(db: Database, org_id: uuid.UUID) -> list[IntegrationSummary]:
    """The organization's integrations, failing ones first, then by creation."""
    with db.tenant(org_id) as session:
        found = session.scalars(select(Integration).order_by(Integration.created_at)).all()
        newest = (
            select(IntegrationLog.id)
            .where(IntegrationLog.integration_id == Integration.id)
            .order_by(IntegrationLog.created_at.desc())
            .limit(1)
            .correlate(Integration)
            .scalar_subquery()
        )
        ids = [i.id for i in found]
        last_ids = {
            integration_id: run_id
            for integration_id, run_id in session.execute(
                select(Integration.id, newest).where(Integration.id.in_(ids))
            )
        }
        runs = {
            run.id: run
            for run in session.scalars(
                select(IntegrationLog).where(
                    IntegrationLog.id.in_([r for r in last_ids.values() if r is not None])
                )
            )
        }
        next_runs = {
            integration_id: due
            for integration_id, due in session.execute(
                select(SyncSchedule.integration_id, func.min(SyncSchedule.next_run_at)).group_by(
                    SyncSchedule.integration_id
                )
            )
        }
        summaries = [
            IntegrationSummary(
                i,
                runs.get(last_ids[i.id]) if last_ids.get(i.id) else None,
                next_runs.get(i.id) if i.is_active else None,
            )
            for i in found
        ]
    return sorted(summaries, key=lambda s: not s.failing)


@dataclass(frozen=True)
class HourActivity:
    """One hour of one integration: records written by the pages stored in it."""

    start: datetime
    synced: int = 0
    failed: int = 0


@dataclass(frozen=True)
class RunSpan:
    """One run of the period: when it started and how long it took (so far)."""

    run_id: uuid.UUID
    started_at: datetime
    seconds: float
    status: str


@dataclass(frozen=True)
class Activity:
    """The last ``hours`` of one integration, oldest hour first."""

    hours: list[HourActivity]
    runs: list[RunSpan] = field(default_factory=list)


def recent_activity(
    db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, *, now: datetime, hours: int = 24
) -> Activity:
    """Records synced and failed per hour (from the pages stored), and the runs started in
    the last ``hours`` before ``now`` with their durations."""
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    start = end - timedelta(hours=hours)
    synced = [0] * hours
    failed = [0] * hours
    with db.tenant(org_id) as session:
        pages = session.execute(
            select(SyncPageOutcome.created_at, SyncPageOutcome.succeeded, SyncPageOutcome.failed)
            .join(IntegrationLog, IntegrationLog.id == SyncPageOutcome.run_id)
            .where(
                IntegrationLog.integration_id == integration_id,
                SyncPageOutcome.created_at >= start,
            )
        )
        for created_at, succeeded, not_done in pages:
            slot = int((created_at - start).total_seconds() // 3600)
            if 0 <= slot < hours:
                synced[slot] += succeeded
                failed[slot] += not_done
        runs = session.scalars(
            select(IntegrationLog)
            .where(
                IntegrationLog.integration_id == integration_id,
                IntegrationLog.started_at >= start,
            )
            .order_by(IntegrationLog.started_at)
        ).all()
        spans = [
            RunSpan(
                r.id,
                r.started_at,
                max(0.0, ((r.completed_at or now) - r.started_at).total_seconds()),
                r.status,
            )
            for r in runs
            if r.started_at is not None
        ]
    return Activity(
        [HourActivity(start + timedelta(hours=n), synced[n], failed[n]) for n in range(hours)],
        spans,
    )
