"""What produces notifications on its own.

* :func:`run_ended` -- a sync or webhook run that ends ``failed`` or ``partial`` tells the
  organization's admins, once per incident: a run that fails after another failed run of
  the same integration and operation is the same incident (no new notification); the key
  is the run id, so closing paths that run twice notify once.
* :func:`send_event_reminders` (beat) -- attendees hear about an event
  ``PLUGS_REMINDER_LEAD_HOURS`` ahead; keyed by event and start time, so a rescheduled
  event is reminded again and an unchanged one once.
* Expense decisions -- importing this module hooks the session: an expense whose status
  becomes ``approved`` or ``rejected`` notifies its submitter (``created_by``) in the same
  transaction.
"""

from __future__ import annotations

import logging
import uuid
from datetime import timedelta
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session

from core.errors import PlugsError
from core.settings import get_settings
from models.base import utcnow
from models.events import Event
from models.expenses import Expense
from models.integrations import IntegrationLog
from models.session import Database, PlugsSession
from notifications import channels as registry
from notifications.fanout import Content, notify, notify_later
from notifications.recipients import Audience

log = logging.getLogger(__name__)
PROBLEM_STATUSES = ("failed", "partial")


def configured_channels(*wanted: str) -> tuple[str, ...]:
    """Those of ``wanted`` that are installed and configured (in_app always is)."""
    ready = []
    for name in wanted:
        try:
            registry.open_channel(name).check_configured()
        except PlugsError:
            continue
        ready.append(name)
    return tuple(ready)


def run_ended(session: PlugsSession, run: IntegrationLog) -> uuid.UUID | None:
    """Notify the admins of a failed or partial run that opens an incident (see above)."""
    if run.status not in PROBLEM_STATUSES or _same_incident(session, run):
        return None
    content = Content(
        title=f"{run.operation.capitalize()} {run.status}",
        message=run.message or f"A {run.operation} run ended {run.status}.",
        notification_type="error" if run.status == "failed" else "warning",
        channels=configured_channels("in_app", "email"),
        data={"integration_id": str(run.integration_id), "run_id": str(run.id)},
        key=f"run-ended:{run.id}",
    )
    return notify_later(
        session, Audience(role="admins"), content, organization_id=run.organization_id
    )


def _same_incident(session: Session, run: IntegrationLog) -> bool:
    previous = session.scalars(
        select(IntegrationLog.status)
        .where(
            IntegrationLog.organization_id == run.organization_id,
            IntegrationLog.integration_id == run.integration_id,
            IntegrationLog.operation == run.operation,
            IntegrationLog.id != run.id,
            IntegrationLog.status != "running",
            IntegrationLog.started_at <= run.started_at,
        )
        .order_by(IntegrationLog.started_at.desc())
        .limit(1)
    ).first()
    return previous in PROBLEM_STATUSES


def send_event_reminders(db: Database) -> dict[str, int]:
    """Remind the attendees of every published event starting within the lead time."""
    now = utcnow()
    horizon = now + timedelta(hours=get_settings().reminder_lead_hours)
    with db.system("notifications: find events to remind") as session:
        events = session.execute(
            select(Event.id, Event.organization_id).where(
                Event.status == "published", Event.start_date > now, Event.start_date <= horizon
            )
        ).all()
    channels = configured_channels("in_app", "email", "sms", "push")
    created = 0
    for event_id, org_id in events:
        with db.tenant(org_id) as session:
            created += remind(session, session.get(Event, event_id), channels).created
    return {"events": len(events), "notifications": created}


def remind(session: PlugsSession, event: Event | None, channels: tuple[str, ...]) -> Any:
    """Fan out the reminder of ``event`` to its attendees (once per start time)."""
    if event is None:
        raise PlugsError("the event is gone")
    where = f" at {event.venue or event.location}" if (event.venue or event.location) else ""
    content = Content(
        title=f"Reminder: {event.title}",
        message=f"{event.title} starts {event.start_date:%Y-%m-%d %H:%M} UTC{where}.",
        notification_type="reminder",
        channels=channels,
        data={"event_id": str(event.id)},
        expires_at=event.start_date,
        key=f"reminder:{event.id}:{event.start_date.isoformat()}",
    )
    return notify(session, Audience(event_id=event.id), content)


def _expense_decisions(session: PlugsSession, _context: Any, _instances: Any) -> None:
    """before_flush: an expense moving to approved/rejected notifies its submitter."""
    for obj in list(session.dirty):
        if not isinstance(obj, Expense) or obj.created_by is None:
            continue
        history = inspect(obj).attrs.status.history
        if not history.added or obj.status not in ("approved", "rejected"):
            continue
        content = Content(
            title=f"Expense {obj.status}: {obj.title}",
            message=f"Your expense {obj.title!r} ({obj.amount} {obj.currency}) was {obj.status}.",
            notification_type="success" if obj.status == "approved" else "warning",
            channels=configured_channels("in_app", "email", "push"),
            data={"expense_id": str(obj.id)},
            key=f"expense:{obj.id}:{obj.status}",
        )
        notify_later(
            session,
            Audience(user_ids=(obj.created_by,)),
            content,
            organization_id=obj.organization_id,
        )


def install() -> None:
    """Notify submitters of expense decisions from now on (the Celery app calls this once)."""
    if not event.contains(PlugsSession, "before_flush", _expense_decisions):
        event.listen(PlugsSession, "before_flush", _expense_decisions)
