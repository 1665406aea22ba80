"""Delivering a chunk of notifications, exactly as far as the database says.

A ``notifications.deliver(org, batch)`` task runs :func:`deliver_batch`:

1. **claim** (one commit): the batch's deliveries that are due (``queued`` and due, or
   ``sending`` whose lease ran out: a worker died) become ``sending`` with a lease and one
   more attempt; those whose notification expired become ``expired`` and are never sent.
   A redelivered task finds nothing left to claim and sends nothing twice.
2. **send** each claimed message through the channel (its providers in order), and
3. **record** every few messages: ``sent``/``delivered`` with the provider's id, ``failed``
   with the reason, or back to ``queued`` with backoff (``due_at``) while attempts remain.

Rows still due after a retry wait are picked up again by the task's own retry and, in any
case, by :func:`sweep` (beat), which also starts chunks held back by quiet hours.
"""

from __future__ import annotations

import logging
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, text, update
from sqlalchemy.orm import Session

from core.errors import PlugsError, RetryableError
from core.settings import get_settings
from models import host_events, outbox
from models.base import utcnow
from models.notification_delivery import NotificationDelivery, PushDevice
from models.notifications import Notification
from models.organizations import User
from models.session import Database, PlugsSession
from notifications import channels as registry
from notifications.channels.base import Channel, Device, Message, Recipient, Sent
from notifications.fanout import DELIVER_TASK

log = logging.getLogger(__name__)
#: Outcomes are committed every this many messages (a crash resends at most these).
RECORD_EVERY = 50
#: Open rows overdue this long are re-enqueued by the sweeper (their task was lost).
SWEEP_GRACE = timedelta(seconds=30)
SWEEP_BATCH = 1000
D = NotificationDelivery


@dataclass
class DeliveryReport:
    """What one run of a batch did."""

    claimed: int = 0
    sent: int = 0
    failed: int = 0
    retrying: int = 0
    expired: int = 0
    #: Seconds until the earliest retry, when some are waiting.
    retry_in: float | None = None

    def summary(self) -> dict[str, int | float | None]:
        return self.__dict__.copy()


@dataclass
class _Outcome:
    delivery_id: uuid.UUID
    attempts: int
    sent: Sent | None = None
    error: str | None = None
    retryable: bool = False
    disabled: list[tuple[uuid.UUID, str]] = field(default_factory=list)


def deliver_batch(db: Database, organization_id: uuid.UUID, batch_id: uuid.UUID) -> DeliveryReport:
    """Claim, send and record the due deliveries of one batch (see the module docstring)."""
    report = DeliveryReport()
    with db.tenant(organization_id) as session:
        channel_name, messages = _claim(session, batch_id, report)
    if not messages:
        return report
    lanes = max(1, min(registry.channel_class(channel_name).connections, len(messages)))
    with ExitStack() as stack:
        channels = [stack.enter_context(registry.open_channel(channel_name)) for _ in range(lanes)]
        pool = stack.enter_context(ThreadPoolExecutor(lanes)) if lanes > 1 else None
        for start in range(0, len(messages), RECORD_EVERY):
            chunk = messages[start : start + RECORD_EVERY]
            sent = _send_chunk(channels, pool, [message for message, _ in chunk])
            outcomes = [
                _outcome(channels[0], message, attempts, result)
                for (message, attempts), result in zip(chunk, sent, strict=True)
            ]
            _record(db, organization_id, outcomes, report)
    return report


def _send_chunk(
    channels: list[Channel], pool: ThreadPoolExecutor | None, messages: list[Message]
) -> list[Sent | Exception]:
    """Send ``messages``, spread over the channels (each with connections of its own, in a
    thread of its own: the providers' answers are waited for together); outcomes in order."""
    if pool is None:
        return channels[0].send_many(messages)
    lanes = len(channels)
    shares = list(pool.map(lambda i: channels[i].send_many(messages[i::lanes]), range(lanes)))
    return [shares[n % lanes][n // lanes] for n in range(len(messages))]


def _claim(
    session: Session, batch_id: uuid.UUID, report: DeliveryReport
) -> tuple[str, list[tuple[Message, int]]]:
    now = utcnow()
    lease = now + timedelta(seconds=get_settings().stall_seconds())
    N, U = Notification, User
    rows = session.execute(
        select(
            D.id,
            D.channel,
            D.attempts,
            N.id,
            N.organization_id,
            N.title,
            N.message,
            N.notification_type,
            N.data,
            N.created_at,
            N.expires_at,
            U.id,
            U.email,
            U.first_name,
            U.last_name,
            U.phone,
        )
        .join(N, N.id == D.notification_id)
        .join(U, U.id == D.user_id)
        .where(
            D.batch_id == batch_id,
            or_(
                and_(D.status == "queued", D.due_at <= now),
                and_(D.status == "sending", D.lease_until < now),
            ),
        )
        .with_for_update(of=D, skip_locked=True)
        .execution_options(include_deleted=True)
    ).all()
    claimed: list[tuple[Message, int]] = []
    expired: list[uuid.UUID] = []
    channel = rows[0][1] if rows else ""  # a batch is of one channel
    for (
        delivery_id,
        _channel,
        attempts,
        notification_id,
        org_id,
        title,
        body,
        kind,
        data,
        created_at,
        expires_at,
        user_id,
        email,
        first,
        last,
        phone,
    ) in rows:
        if expires_at is not None and expires_at <= now:
            expired.append(delivery_id)
            continue
        name = " ".join(p for p in (first, last) if p) or email
        message = Message(
            delivery_id=delivery_id,
            notification_id=notification_id,
            organization_id=org_id,
            recipient=Recipient(id=user_id, email=email, name=name, phone=phone),
            title=title,
            message=body,
            notification_type=kind,
            data=dict(data or {}),
            created_at=created_at,
        )
        claimed.append((message, attempts + 1))
    ids = [m.delivery_id for m, _ in claimed]
    for chosen, values in (
        (ids, {"status": "sending", "lease_until": lease, "attempts": D.attempts + 1}),
        (
            expired,
            {"status": "expired", "reason": "expired before it was sent", "lease_until": None},
        ),
    ):
        if chosen:
            session.execute(
                update(D)
                .where(D.id.in_(chosen))
                .values(updated_at=now, **values)
                .execution_options(synchronize_session=False)
            )
    report.expired = len(expired)
    report.claimed = len(claimed)
    if claimed and registry.channel_class(channel).needs_devices:
        claimed = _with_devices(session, claimed)
    return channel, claimed


def _with_devices(
    session: Session, claimed: list[tuple[Message, int]]
) -> list[tuple[Message, int]]:
    users = {m.recipient.id for m, _ in claimed}
    devices: dict[uuid.UUID, list[Device]] = defaultdict(list)
    for device in session.scalars(
        select(PushDevice).where(PushDevice.user_id.in_(users), PushDevice.is_active)
    ):
        devices[device.user_id].append(Device(device.id, device.token))
    return [(replace(m, devices=tuple(devices[m.recipient.id])), a) for m, a in claimed]


def _outcome(
    channel: Channel, message: Message, attempts: int, result: Sent | Exception
) -> _Outcome:
    """What to record of one message: its :class:`Sent`, or the error ``send`` raised."""
    outcome = _Outcome(message.delivery_id, attempts)
    if isinstance(result, Sent):
        outcome.sent = result
        outcome.disabled = result.disabled_devices
    elif isinstance(result, RetryableError):
        outcome.error, outcome.retryable = str(result), True
    elif isinstance(result, PlugsError):
        outcome.error = str(result)
        outcome.disabled = list(getattr(result, "disabled_devices", []))
    else:  # a bug in a channel: retried, then failed
        log.error(
            "channel %s crashed on delivery %s",
            channel.name,
            message.delivery_id,
            exc_info=result,
        )
        outcome.error, outcome.retryable = f"internal error ({type(result).__name__})", True
    return outcome


def _record(
    db: Database, organization_id: uuid.UUID, outcomes: list[_Outcome], report: DeliveryReport
) -> None:
    if not outcomes:
        return
    settings = get_settings()
    now = utcnow()
    changes = []
    disabled: list[tuple[uuid.UUID, str]] = []
    for outcome in outcomes:
        disabled += outcome.disabled
        change: dict[str, object] = {
            "id": outcome.delivery_id,
            "lease_until": None,
            "updated_at": now,
        }
        if outcome.sent is not None:
            change.update(
                status=outcome.sent.status,
                provider=outcome.sent.provider,
                provider_message_id=outcome.sent.provider_message_id,
                reason=None,
                sent_at=now,
            )
            report.sent += 1
        elif outcome.retryable and outcome.attempts < settings.notification_max_attempts:
            wait = settings.notification_retry_seconds * 2 ** (outcome.attempts - 1)
            change.update(
                status="queued", reason=outcome.error, due_at=now + timedelta(seconds=wait)
            )
            report.retrying += 1
            report.retry_in = wait if report.retry_in is None else min(report.retry_in, wait)
        else:
            reason = outcome.error or "unknown failure"
            if outcome.retryable:
                reason = f"gave up after {outcome.attempts} attempts: {reason}"
            change.update(status="failed", reason=reason[:2000])
            report.failed += 1
        changes.append(change)
    with db.tenant(organization_id) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(_RECORD_SQL, _record_params(changes, now))
        else:
            session.execute(update(NotificationDelivery), changes)
        _tell_host(session, organization_id, [c for c in changes if c.get("status") == "failed"])
        for device_id, reason in disabled:
            session.execute(
                update(PushDevice)
                .where(PushDevice.id == device_id)
                .values(
                    is_active=False, disabled_at=now, disabled_reason=reason[:255], updated_at=now
                )
            )


#: The outcomes of a chunk in one statement and one round trip (the rows travel as arrays):
#: a sent row takes its provider, message id and sending time; a retried one its next due
#: time; every one its status and reason, and loses its lease.
_RECORD_SQL = text("""
UPDATE notification_deliveries AS d SET
    status = o.status,
    reason = o.reason,
    provider = CASE WHEN o.sent THEN o.provider ELSE d.provider END,
    provider_message_id = CASE WHEN o.sent THEN o.provider_message_id
        ELSE d.provider_message_id END,
    sent_at = CASE WHEN o.sent THEN CAST(:now AS timestamptz) ELSE d.sent_at END,
    due_at = coalesce(o.due_at, d.due_at),
    lease_until = NULL,
    updated_at = :now
FROM unnest(
    CAST(:ids AS uuid[]), CAST(:statuses AS text[]), CAST(:sent AS boolean[]),
    CAST(:providers AS text[]), CAST(:message_ids AS text[]), CAST(:reasons AS text[]),
    CAST(:due AS timestamptz[])
) AS o (id, status, sent, provider, provider_message_id, reason, due_at)
WHERE d.id = o.id
""")


def _record_params(changes: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    return {
        "now": now,
        "ids": [c["id"] for c in changes],
        "statuses": [c["status"] for c in changes],
        "sent": ["sent_at" in c for c in changes],
        "providers": [c.get("provider") for c in changes],
        "message_ids": [c.get("provider_message_id") for c in changes],
        "reasons": [c.get("reason") for c in changes],
        "due": [c.get("due_at") for c in changes],
    }


def _tell_host(
    session: PlugsSession, organization_id: uuid.UUID, failed: list[dict[str, Any]]
) -> None:
    """A ``notification.failed`` event per delivery finally failed (docs/events.md)."""
    if not failed:
        return
    endpoints = host_events.subscribers(session, organization_id, "notification.failed")
    if not endpoints["notification.failed"]:
        return
    reasons = {change["id"]: change["reason"] for change in failed}
    rows = session.execute(
        select(D.id, D.notification_id, D.user_id, D.channel, D.attempts).where(
            D.id.in_(list(reasons))
        )
    )
    for delivery_id, notification_id, user_id, channel, attempts in rows:
        payload = {
            "notification_delivery_id": str(delivery_id),
            "notification_id": str(notification_id),
            "user_id": str(user_id),
            "channel": channel,
            "attempts": attempts,
            "reason": reasons[delivery_id],
        }
        host_events.record(
            session,
            organization_id,
            "notification.failed",
            payload,
            endpoints["notification.failed"],
        )


def sweep(db: Database, *, now: datetime | None = None) -> int:
    """Enqueue again the batches with deliveries that are due and nobody is working on:
    held back by quiet hours until now, waiting for a retry whose task was lost, or
    ``sending`` under a lease that ran out.  Returns how many batches were enqueued."""
    now = now or utcnow()
    with db.system("notifications: sweep due deliveries") as session:
        rows = session.execute(
            select(D.organization_id, D.batch_id)
            .where(
                or_(
                    and_(D.status == "queued", D.due_at <= now, D.updated_at <= now - SWEEP_GRACE),
                    and_(D.status == "queued", D.due_at <= now, D.due_at > D.created_at),
                    and_(D.status == "sending", D.lease_until < now),
                )
            )
            .distinct()
            .limit(SWEEP_BATCH)
        ).all()
        outbox.enqueue_many(
            session, DELIVER_TASK, [(org, [str(org), str(batch)]) for org, batch in rows]
        )
    return len(rows)


def expire(db: Database, *, now: datetime | None = None) -> int:
    """Mark open deliveries whose notification has expired as ``expired``; how many."""
    now = now or utcnow()
    with db.system("notifications: expire unsent deliveries") as session:
        expired = select(Notification.id).where(Notification.expires_at <= now)
        result = session.execute(
            update(D)
            .where(D.status == "queued", D.notification_id.in_(expired))
            .values(status="expired", reason="expired before it was sent", updated_at=now)
            .execution_options(synchronize_session=False)
        )
    return cast(CursorResult[Any], result).rowcount
