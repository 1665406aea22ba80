"""The schedule watchdog: integrations whose expected run did not start in time.

A schedule is overdue when its due time (``next_run_at``) is more than the grace period
(``PLUGS_SCHEDULE_GRACE_SECONDS``) in the past: the tick moves every schedule it handles
past ``now``, so an overdue one means beat or the workers are not keeping up.  Paused and
deleted integrations are never overdue (the tick moves their schedules on too).

Each incident is reported once: a warning in the log and ``schedule_overdue_since`` in the
integration's metadata, set under the integration's row lock (two beats' watchdogs report
it once); it is removed, with an info line, when the integration is back on schedule.
:func:`overdue` is the count a metrics endpoint exposes.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Select, and_, func, select

from core.settings import get_settings
from models.base import utcnow
from models.integrations import Integration
from models.schedules import SyncSchedule
from models.session import ROW_LOCK, Database, PlugsSession

log = logging.getLogger(__name__)
MARK = "schedule_overdue_since"


@dataclass
class WatchdogReport:
    """Overdue integrations now, and the incidents that started or ended on this check."""

    overdue: int = 0
    reported: list[uuid.UUID] = field(default_factory=list)
    recovered: list[uuid.UUID] = field(default_factory=list)


def _cutoff(grace: timedelta | None, now: datetime | None) -> datetime:
    grace = grace or timedelta(seconds=get_settings().schedule_grace_seconds)
    return (now or utcnow()) - grace


def _overdue_query(cutoff: datetime) -> Select[uuid.UUID, datetime]:
    return (
        select(Integration.id, func.min(SyncSchedule.next_run_at))
        .join(
            Integration,
            and_(
                Integration.organization_id == SyncSchedule.organization_id,
                Integration.id == SyncSchedule.integration_id,
            ),
        )
        .where(SyncSchedule.next_run_at < cutoff, Integration.is_active.is_(True))
        .group_by(Integration.id)
    )


def overdue(db: Database, *, grace: timedelta | None = None, now: datetime | None = None) -> int:
    """How many active integrations have a schedule overdue by more than the grace period."""
    with db.system("scheduler: count overdue schedules") as session:
        found = _overdue_query(_cutoff(grace, now)).subquery()
        return int(session.scalar(select(func.count()).select_from(found)) or 0)


def check(
    db: Database, *, grace: timedelta | None = None, now: datetime | None = None
) -> WatchdogReport:
    """Report new overdue incidents once and close the ones that are over."""
    report = WatchdogReport()
    with db.system("scheduler: watchdog") as session:
        late = dict(session.execute(_overdue_query(_cutoff(grace, now))).all())
        report.overdue = len(late)
        flagged = set(
            session.scalars(
                select(Integration.id).where(Integration.metadata_[MARK].as_string().is_not(None))
            )
        )
        for integration in _locked(session, (set(late) - flagged) | (flagged - set(late))):
            _update(integration, late.get(integration.id), report)
    return report


def _locked(session: PlugsSession, ids: set[uuid.UUID]) -> list[Integration]:
    if not ids:
        return []
    query = select(Integration).where(Integration.id.in_(ids)).order_by(Integration.id)
    return list(session.scalars(query.with_for_update(**ROW_LOCK)))


def _update(integration: Integration, since: datetime | None, report: WatchdogReport) -> None:
    """Flag or unflag one integration, re-checked under its row lock."""
    metadata = dict(integration.metadata_ or {})
    if since is not None and MARK not in metadata:
        metadata[MARK] = since.isoformat()
        report.reported.append(integration.id)
        log.warning(
            "integration %s (%s, organization %s): its scheduled sync due at %s has not "
            "started; is beat running and are workers consuming the default queue?",
            integration.id,
            integration.provider,
            integration.organization_id,
            metadata[MARK],
        )
    elif since is None and MARK in metadata:
        started = metadata.pop(MARK)
        report.recovered.append(integration.id)
        log.info("integration %s is back on schedule (overdue since %s)", integration.id, started)
    else:
        return
    integration.metadata_ = metadata
