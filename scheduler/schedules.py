"""Schedules as data: setting, clearing, pausing and listing them (behind `plugs schedules`).

A change is a row write; the next beat tick reads it, so nothing restarts.  Pausing an
integration (``is_active`` false) stops its schedules, resuming continues them at their
next due time; deleting the integration removes them.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, delete, select

from connectors import integrations as integration_rows
from connectors.registry import get_connector
from core.errors import NotFoundError, PlugsError
from models.audit_trail import record_actor_action
from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.schedules import ScheduleSlot, SyncSchedule
from models.session import Database, PlugsSession
from runs import inbox
from scheduler.timing import Timing, describe

PURGE_BATCH = 5000


def set_schedule(
    db: Database,
    integration_id: uuid.UUID,
    timing: Timing,
    *,
    streams: Sequence[str] = (),
) -> SyncSchedule:
    """Create or replace the schedule of ``integration_id`` for ``streams`` (default: all
    of its streams).  Its first due time is computed from now."""
    org_id = integration_rows.organization_of(db, integration_id)
    names = sorted(set(streams))
    with db.tenant(org_id) as session:
        integration = _integration(session, integration_id)
        _check_streams(integration.provider, names)
        key = ",".join(names)
        schedule = session.scalars(
            select(SyncSchedule).where(
                SyncSchedule.integration_id == integration_id, SyncSchedule.streams_key == key
            )
        ).one_or_none()
        if schedule is None:
            schedule = SyncSchedule(integration_id=integration_id, streams=names, streams_key=key)
            session.add(schedule)
        schedule.kind, schedule.every_seconds = timing.kind, timing.every_seconds
        schedule.cron, schedule.timezone = timing.cron, timing.timezone
        schedule.next_run_at = timing.first(utcnow())
    return schedule


def clear_schedules(
    db: Database, integration_id: uuid.UUID, *, streams: Sequence[str] | None = None
) -> int:
    """Remove the integration's schedules (only the one for ``streams`` if given)."""
    org_id = integration_rows.organization_of(db, integration_id)
    with db.tenant(org_id) as session:
        statement = delete(SyncSchedule).where(SyncSchedule.integration_id == integration_id)
        if streams is not None:
            statement = statement.where(SyncSchedule.streams_key == ",".join(sorted(set(streams))))
        result = session.execute(statement.execution_options(synchronize_session=False))
        removed = cast(CursorResult[Any], result).rowcount
        record_actor_action(
            session,
            org_id,
            table="integrations",
            record_id=integration_id,
            values={"schedules_removed": removed, "streams": sorted(set(streams or ()))},
        )
        return removed


def set_active(db: Database, integration_id: uuid.UUID, active: bool) -> int:
    """Pause (``active`` false) or resume an integration (``is_active``): its schedules
    and its webhook processing stop or go on.  Paused, its webhook deliveries are still
    received and stored but wait in the inbox; resuming enqueues them.  Returns how many
    waiting deliveries were enqueued (0 when pausing)."""
    org_id = integration_rows.organization_of(db, integration_id)
    with db.tenant(org_id) as session:
        _integration(session, integration_id).is_active = active
    return inbox.enqueue_waiting(db, org_id, integration_id) if active else 0


@dataclass(frozen=True)
class ScheduleView:
    """One row of `plugs schedules list`."""

    integration_id: uuid.UUID
    organization_id: uuid.UUID
    provider: str
    active: bool
    schedule: str
    next_run_at: datetime
    last_run_at: datetime | None
    #: ``skipped``, or for a slot that started a run the run's status as it is now
    #: (``running``, then ``success``, ``partial`` or ``failed``).
    last_slot_status: str | None


def list_schedules(
    db: Database, org_id: uuid.UUID | None = None, *, integration_id: uuid.UUID | None = None
) -> list[ScheduleView]:
    """Every schedule (of one organization, or of all; or of one integration), by next
    due time."""
    query = (
        select(SyncSchedule, Integration.provider, Integration.is_active, IntegrationLog.status)
        .join(
            Integration,
            and_(
                Integration.organization_id == SyncSchedule.organization_id,
                Integration.id == SyncSchedule.integration_id,
            ),
        )
        .outerjoin(
            IntegrationLog,
            and_(
                IntegrationLog.organization_id == SyncSchedule.organization_id,
                IntegrationLog.id == SyncSchedule.last_run_id,
            ),
        )
        .order_by(SyncSchedule.next_run_at)
    )
    if integration_id is not None:
        query = query.where(SyncSchedule.integration_id == integration_id)
    unit = db.tenant(org_id) if org_id else db.system("plugs schedules list")
    with unit as session:
        return [
            ScheduleView(
                schedule.integration_id,
                schedule.organization_id,
                provider,
                active,
                describe_schedule(schedule),
                schedule.next_run_at,
                schedule.last_run_at,
                _slot_state(schedule, run_status),
            )
            for schedule, provider, active, run_status in session.execute(query)
        ]


def _slot_state(schedule: SyncSchedule, run_status: str | None) -> str | None:
    """The last slot's state now: the status of the run it started (the slot row says only
    ``started``), else what the slot row says."""
    if schedule.last_slot_status == "started" and run_status is not None:
        return run_status
    return schedule.last_slot_status


def describe_schedule(schedule: SyncSchedule) -> str:
    """``every 15m`` or ``cron '0 * * * *' UTC``, with the streams when not all."""
    text = describe(schedule.kind, schedule.every_seconds, schedule.cron, schedule.timezone)
    return f"{text} streams={schedule.streams_key}" if schedule.streams_key else text


def purge_slots(db: Database, retention_days: int) -> int:
    """Delete slot records older than ``retention_days``, in batches; idempotent."""
    cutoff = utcnow() - timedelta(days=retention_days)
    deleted = 0
    while True:
        with db.system("scheduler: schedule_slots retention") as session:
            ids = list(
                session.scalars(
                    select(ScheduleSlot.id)
                    .where(ScheduleSlot.created_at < cutoff)
                    .limit(PURGE_BATCH)
                )
            )
            if not ids:
                return deleted
            session.execute(delete(ScheduleSlot).where(ScheduleSlot.id.in_(ids)))
            deleted += len(ids)


def _integration(session: PlugsSession, integration_id: uuid.UUID) -> Integration:
    integration = session.get(Integration, integration_id)
    if integration is None:
        raise NotFoundError(f"no integration with id {integration_id}")
    return integration


def _check_streams(provider: str, names: list[str]) -> None:
    connector = get_connector(provider)
    known = {s.name for s in connector.streams} | {s.name for s in connector.export_streams}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise PlugsError(
            f"{provider} has no stream {', '.join(unknown)}; its streams: {', '.join(sorted(known))}"
        )
