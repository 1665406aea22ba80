"""Delivering an event to an endpoint, exactly as far as the database says.

An ``events.deliver(org, delivery)`` task runs :func:`deliver`:

1. **claim** (one commit): a pending delivery that is due (or one ``sending`` whose lease
   ran out: its worker died) becomes ``sending`` with a lease, and its attempt is written
   (``sending``) before anything is sent.  A redelivered task finds it claimed or finished
   and sends nothing.
2. **send** it, signed (:mod:`events.sender`).
3. **record** the attempt (status, duration, the start of the answer) and the delivery:
   ``succeeded``; or ``pending`` again, due after the next wait of
   ``PLUGS_EVENT_RETRY_SCHEDULE`` (a task parked in the outbox until then); or ``failed``
   once the schedule is used up.

A worker killed between sending and recording leaves the delivery ``sending``; when its
lease runs out the sweeper sends it again, with the same ``webhook-id``: receivers
deduplicate by it (the Standard Webhooks contract).

An endpoint whose deliveries keep failing -- ``PLUGS_EVENT_DISABLE_AFTER_FAILURES`` in a
row failed every attempt, or every attempt since ``PLUGS_EVENT_DISABLE_AFTER_DAYS`` ago
failed -- is disabled and the organization's admins are told (in-app and email).
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from core.errors import NotFoundError
from core.redaction import add_secrets
from core.settings import get_settings
from events import endpoints, sender
from models import host_events, outbox
from models.base import utcnow
from models.host_events import EventAttempt, EventDelivery, EventEndpoint, HostEvent
from models.session import ROW_LOCK, Database, PlugsSession
from notifications.fanout import Content, notify_later
from notifications.producers import configured_channels
from notifications.recipients import Audience

log = logging.getLogger(__name__)
#: A claim is another task's after this long (the POST times out well before).
LEASE = timedelta(seconds=120)
#: Open deliveries idle this long past their due time are enqueued again by the sweeper.
SWEEP_GRACE = timedelta(seconds=60)
SWEEP_BATCH = 1000


@dataclass(frozen=True)
class _Claimed:
    delivery_id: uuid.UUID
    number: int
    url: str
    secret: str
    message_id: str
    body: bytes


def body_of(event: HostEvent) -> bytes:
    """What every endpoint receives for ``event`` (Standard Webhooks' payload shape)."""
    document = {
        "type": event.event_type,
        "timestamp": event.created_at.isoformat(),
        "data": event.payload,
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def deliver(db: Database, organization_id: uuid.UUID, delivery_id: uuid.UUID) -> str:
    """Claim, send and record one attempt of a delivery; what happened, in a word."""
    claimed = _claim(db, organization_id, delivery_id)
    if isinstance(claimed, str):
        return claimed
    add_secrets(claimed.secret)
    result = sender.send(claimed.url, claimed.secret, claimed.message_id, claimed.body, utcnow())
    return _record(db, organization_id, claimed, result)


def _claim(db: Database, organization_id: uuid.UUID, delivery_id: uuid.UUID) -> _Claimed | str:
    now = utcnow()
    with db.tenant(organization_id) as session:
        delivery = session.get(EventDelivery, delivery_id, with_for_update=ROW_LOCK)
        if delivery is None or delivery.status in ("succeeded", "failed"):
            return "already"
        if delivery.status == "sending" and (delivery.lease_until or now) > now:
            return "busy"
        if delivery.status == "pending" and delivery.due_at > now + timedelta(seconds=1):
            return "not-due"
        endpoint = session.get(EventEndpoint, delivery.endpoint_id)
        event = session.get(HostEvent, delivery.event_id)
        if endpoint is None or event is None:
            return "already"
        if not endpoint.enabled:
            delivery.status, delivery.lease_until = "failed", None
            delivery.last_error = f"not sent: the endpoint is disabled ({endpoint.disabled_reason})"
            return "endpoint-disabled"
        secret = endpoints.signing_secret(endpoint)  # our keys' failure raises: nothing claimed
        number = 1 + (
            session.scalar(
                select(func.max(EventAttempt.number)).where(EventAttempt.delivery_id == delivery.id)
            )
            or 0
        )
        delivery.status, delivery.lease_until = "sending", now + LEASE
        delivery.attempts += 1
        session.add(EventAttempt(delivery_id=delivery.id, number=number, outcome="sending"))
        return _Claimed(delivery.id, number, endpoint.url, secret, str(event.id), body_of(event))


def _record(
    db: Database, organization_id: uuid.UUID, claimed: _Claimed, result: sender.Sent
) -> str:
    now = utcnow()
    with db.tenant(organization_id) as session:
        session.execute(
            update(EventAttempt)
            .where(
                EventAttempt.delivery_id == claimed.delivery_id,
                EventAttempt.number == claimed.number,
            )
            .values(
                outcome="succeeded" if result.ok else "failed",
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                response=result.response[:1000],
                finished_at=now,
            )
        )
        delivery = session.get(EventDelivery, claimed.delivery_id, with_for_update=ROW_LOCK)
        if delivery is None or delivery.status != "sending":
            return "recorded"  # another worker took it over after our lease ran out
        endpoint = session.get(EventEndpoint, delivery.endpoint_id, with_for_update=ROW_LOCK)
        if endpoint is None:
            return "recorded"
        delivery.lease_until = None
        delivery.last_status_code = result.status_code
        if result.ok:
            delivery.status, delivery.delivered_at, delivery.last_error = "succeeded", now, None
            endpoint.failure_streak, endpoint.failing_since = 0, None
            return "succeeded"
        delivery.last_error = result.response[:1000]
        endpoint.failing_since = endpoint.failing_since or now
        schedule = get_settings().event_retry_schedule
        if delivery.attempts <= len(schedule):
            due = now + timedelta(seconds=schedule[delivery.attempts - 1])
            delivery.status, delivery.due_at = "pending", due
            host_events.enqueue_delivery(session, delivery, at=due)
            return "retrying"
        delivery.status = "failed"
        endpoint.failure_streak += 1
        _disable_if_failing(session, endpoint, now)
        return "failed"


def _disable_if_failing(session: PlugsSession, endpoint: EventEndpoint, now: datetime) -> None:
    settings = get_settings()
    since = endpoint.failing_since or now
    days = timedelta(days=settings.event_disable_after_days)
    if endpoint.failure_streak >= settings.event_disable_after_failures:
        reason = f"{endpoint.failure_streak} deliveries in a row failed every attempt"
    elif since <= now - days:
        reason = f"every attempt failed since {since:%Y-%m-%d %H:%M} UTC"
    else:
        return
    endpoint.enabled, endpoint.disabled_at, endpoint.disabled_reason = False, now, reason
    log.warning("event endpoint %s disabled: %s", endpoint.id, reason)
    notify_later(
        session,
        Audience(role="admins"),
        Content(
            title="Event endpoint disabled",
            message=f"Events are no longer sent to {endpoint.url}: {reason}. "
            f"`plugs events endpoints enable {endpoint.id}` sends them again.",
            notification_type="warning",
            channels=configured_channels("in_app", "email"),
            data={"endpoint_id": str(endpoint.id), "url": endpoint.url},
            key=f"event-endpoint-disabled:{endpoint.id}:{now.isoformat()}",
        ),
        organization_id=endpoint.organization_id,
    )


def sweep(db: Database, *, now: datetime | None = None) -> int:
    """Enqueue again the deliveries due and idle (their task was lost) and those
    ``sending`` under a lease that ran out (a worker died); how many."""
    now = now or utcnow()
    d = EventDelivery
    with db.system("events: sweep due deliveries") as session:
        rows = session.execute(
            select(d.organization_id, d.id)
            .where(
                or_(
                    and_(
                        d.status == "pending",
                        d.due_at <= now - SWEEP_GRACE,
                        d.updated_at <= now - SWEEP_GRACE,
                    ),
                    and_(d.status == "sending", d.lease_until < now),
                )
            )
            .limit(SWEEP_BATCH)
        ).all()
        outbox.enqueue_many(
            session,
            host_events.DELIVER_TASK,
            [(org, [str(org), str(delivery_id)]) for org, delivery_id in rows],
        )
    return len(rows)


# --- replays -----------------------------------------------------------------------------


def replay_event(db: Database, organization_id: uuid.UUID, event_id: uuid.UUID) -> int:
    """Send an event again to each enabled endpoint it was delivered to (or that failed),
    with a fresh retry schedule; how many deliveries were started."""
    with db.tenant(organization_id) as session:
        if session.get(HostEvent, event_id) is None:
            raise NotFoundError(f"no event with id {event_id}")
        return _restart(session, EventDelivery.event_id == event_id)


def replay_failed(
    db: Database,
    organization_id: uuid.UUID,
    since: datetime,
    *,
    endpoint_id: uuid.UUID | None = None,
) -> int:
    """Send again every delivery that failed, of events since ``since`` (to one endpoint,
    or all); how many were started."""
    with db.tenant(organization_id) as session:
        where: Any = and_(EventDelivery.status == "failed", EventDelivery.created_at >= since)
        if endpoint_id is not None:
            endpoints.get_endpoint(session, endpoint_id)
            where = and_(where, EventDelivery.endpoint_id == endpoint_id)
        return _restart(session, where)


def _restart(session: PlugsSession, where: Any) -> int:
    now = utcnow()
    rows = session.scalars(
        select(EventDelivery)
        .join(EventEndpoint, EventEndpoint.id == EventDelivery.endpoint_id)
        .where(where, EventEndpoint.enabled.is_(True), EventDelivery.status != "sending")
        .with_for_update(of=EventDelivery)
    ).all()
    for delivery in rows:
        delivery.status, delivery.attempts, delivery.due_at = "pending", 0, now
        delivery.last_error = None
        host_events.enqueue_delivery(session, delivery)
    return len(rows)
