"""Notification tasks (queue ``notifications``): ids in, library calls, counts out."""

from __future__ import annotations

import uuid
from typing import Any

from core.errors import RetryableError
from models.session import get_database
from notifications import delivery, fanout, producers
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="notifications.deliver")
def deliver(organization_id: str, batch_id: str) -> dict[str, Any]:
    """Send the due deliveries of one chunk; retried with backoff while some wait."""
    report = delivery.deliver_batch(get_database(), uuid.UUID(organization_id), uuid.UUID(batch_id))
    if report.retry_in is not None:
        raise RetryableError(
            f"{report.retrying} deliveries wait for a retry", retry_after=report.retry_in
        )
    return report.summary()


@app.task(base=PlugsTask, name="notifications.fanout")
def fan_out(organization_id: str, request_id: str) -> dict[str, Any]:
    """Do a stored fan-out (``notify_later``) once."""
    return fanout.run_request(get_database(), uuid.UUID(organization_id), uuid.UUID(request_id))


@app.task(base=PlugsTask, name="notifications.sweep")
def sweep() -> dict[str, int]:
    """Start deliveries that are due and idle: after quiet hours, lost tasks, dead leases."""
    db = get_database()
    return {"expired": delivery.expire(db), "enqueued": delivery.sweep(db)}


@app.task(base=PlugsTask, name="notifications.event_reminders")
def event_reminders() -> dict[str, int]:
    """Remind attendees of the events starting within the reminder lead time (once each)."""
    return producers.send_event_reminders(get_database())
