"""Fan-out: one call reaches a set of recipients on a set of channels.

:func:`notify` resolves the recipients, applies their preferences and quiet hours, writes
one ``notifications`` row and one delivery row per (user, channel) in bulk, and enqueues
one ``notifications.deliver`` task per chunk of deliveries per channel, all through the
outbox of the caller's transaction.  With a ``key``, the same notification to the same user
and channel is written once however often it is asked for: the delivery rows are inserted
first with ``ON CONFLICT DO NOTHING`` and only the ones that went in get a notification.

:func:`notify_later` stores the request and lets the ``notifications.fanout`` task do it
(for producers inside another transaction: a failed run, an approved expense).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from core.errors import PlugsError, TenancyError
from core.settings import get_settings
from models import outbox
from models.base import utcnow
from models.bulk import bulk_insert, insert_new, jsonable
from models.notification_delivery import NotificationDelivery, NotificationRequest
from models.notifications import CHANNELS, NOTIFICATION_TYPES, Notification
from models.organizations import Organization
from models.session import Database, PlugsSession
from models.tenancy import organization_of
from notifications import channels as registry
from notifications.channels.base import Channel, Recipient
from notifications.preferences import OrgDefaults, Preferences
from notifications.recipients import Audience, resolve

DELIVER_TASK = "notifications.deliver"
FANOUT_TASK = "notifications.fanout"
_INSERT_CHUNK = 10_000


@dataclass(frozen=True)
class Content:
    """What to send, on which channels, until when; ``key`` deduplicates."""

    title: str
    message: str
    notification_type: str = "info"
    channels: tuple[str, ...] = ("in_app",)
    data: dict[str, Any] = field(default_factory=dict)
    expires_at: datetime | None = None
    key: str | None = None
    #: Urgent messages are not held back by quiet hours.
    urgent: bool = False

    def check(self, now: datetime) -> None:
        """Refuse bad input with a message that says what is wrong."""
        if not self.title.strip() or len(self.title) > 255:
            raise PlugsError("a notification needs a title of 1 to 255 characters")
        if not self.message.strip():
            raise PlugsError("a notification needs a message")
        if self.notification_type not in NOTIFICATION_TYPES:
            raise PlugsError(
                f"unknown type {self.notification_type!r}; choose one of {', '.join(NOTIFICATION_TYPES)}"
            )
        if not self.channels:
            raise PlugsError("name at least one channel")
        for name in self.channels:
            if name not in CHANNELS:
                raise PlugsError(f"unknown channel {name!r}; choose from {', '.join(CHANNELS)}")
        if self.expires_at is not None and self.expires_at <= now:
            raise PlugsError("the notification has already expired")
        if self.key is not None and not 0 < len(self.key) <= 255:
            raise PlugsError("an idempotency key has 1 to 255 characters")

    def to_json(self) -> dict[str, Any]:
        return {**jsonable(asdict(self)), "channels": list(self.channels)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Content:
        expires = data.get("expires_at")
        return cls(
            **{
                **data,
                "channels": tuple(data["channels"]),
                "expires_at": datetime.fromisoformat(expires) if expires else None,
            }
        )


@dataclass
class FanoutResult:
    """What a fan-out did, in counts."""

    recipients: int = 0
    created: int = 0
    duplicates: int = 0
    opted_out: int = 0
    unreachable: int = 0
    deferred: int = 0
    batches: int = 0

    def summary(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class _Planned:
    channel: str
    recipient: Recipient
    due_at: datetime
    notification_id: uuid.UUID = field(default_factory=uuid.uuid4)
    batch_id: uuid.UUID | None = None


def notify(
    session: PlugsSession, audience: Audience, content: Content, *, now: datetime | None = None
) -> FanoutResult:
    """Fan ``content`` out to ``audience`` in the session's transaction (a tenant session)."""
    org_id = organization_of(session)
    if org_id is None:
        raise TenancyError("notify() needs a tenant session: Database.tenant(org_id)")
    now = now or utcnow()
    content.check(now)
    channels = [registry.open_channel(name) for name in dict.fromkeys(content.channels)]
    for channel in channels:
        channel.check_configured()
    recipients = resolve(session, audience)
    organization = session.get(Organization, org_id)
    defaults = OrgDefaults.from_settings(organization.settings if organization else None)
    preferences = Preferences(session, defaults, [r.id for r in recipients])
    result = FanoutResult(recipients=len(recipients))
    planned = [
        row
        for channel in channels
        for row in _plan(session, channel, recipients, preferences, content, now, result)
    ]
    batches = _assign_batches(planned, now, get_settings().notification_chunk_size)
    won = _insert_deliveries(session, org_id, content, planned, now)
    kept = [row for row in planned if row.notification_id in won]
    result.duplicates = len(planned) - len(kept)
    result.created = len(kept)
    result.deferred = sum(1 for row in kept if row.due_at > now)
    bulk_insert(
        session,
        Notification.__table__,
        [_notification_row(org_id, content, row, now) for row in kept],
    )
    due_batches = sorted({str(row.batch_id) for row in kept if row.batch_id in batches})
    outbox.enqueue_many(
        session, DELIVER_TASK, [(org_id, [str(org_id), batch]) for batch in due_batches]
    )
    result.batches = len(due_batches)
    return result


def send(
    db: Database, organization_id: uuid.UUID, audience: Audience, content: Content
) -> FanoutResult:
    """:func:`notify` in a unit of work of its own; deliveries are enqueued after its commit."""
    with db.tenant(organization_id) as session:
        return notify(session, audience, content)


def notify_later(
    session: PlugsSession,
    audience: Audience,
    content: Content,
    *,
    organization_id: uuid.UUID | None = None,
) -> uuid.UUID:
    """Store the fan-out and enqueue ``notifications.fanout`` in the caller's transaction.

    Adds rows without flushing, so it may be called from a ``before_flush`` hook;
    ``organization_id`` defaults to the tenant session's (a system session must give it).
    """
    content.check(utcnow())
    org_id = organization_id or organization_of(session)
    if org_id is None:
        raise TenancyError("notify_later() in a system session needs an organization_id")
    request = NotificationRequest(
        id=uuid.uuid4(),
        organization_id=org_id,
        audience=audience.to_json(),
        content=content.to_json(),
    )
    session.add(request)
    outbox.enqueue(session, FANOUT_TASK, str(org_id), str(request.id), organization_id=org_id)
    return request.id


def run_request(db: Database, organization_id: uuid.UUID, request_id: uuid.UUID) -> dict[str, Any]:
    """Do a stored fan-out once (a redelivered task finds it done and does nothing)."""
    with db.tenant(organization_id) as session:
        request = session.get(NotificationRequest, request_id, with_for_update=True)
        if request is None:
            raise PlugsError(f"no notification request with id {request_id}")
        if request.status != "done":
            content = Content.from_json(request.content)
            if content.expires_at is not None and content.expires_at <= utcnow():
                request.result = {"skipped": "expired before it was fanned out"}
            else:
                request.result = notify(
                    session, Audience.from_json(request.audience), content
                ).summary()
            request.status = "done"
        return dict(request.result)


def _plan(
    session: Session,
    channel: Channel,
    recipients: Sequence[Recipient],
    preferences: Preferences,
    content: Content,
    now: datetime,
    result: FanoutResult,
) -> Iterator[_Planned]:
    reachable = channel.reachable(session, recipients)
    holds = channel.quiet_hours_apply and not content.urgent
    for recipient in recipients:
        if not preferences.enabled(recipient.id, content.notification_type, channel.name):
            result.opted_out += 1
        elif recipient.id not in reachable:
            result.unreachable += 1
        else:
            due = preferences.due_at(recipient.id, now) if holds else now
            yield _Planned(channel.name, recipient, due)


def _assign_batches(planned: list[_Planned], now: datetime, size: int) -> set[uuid.UUID]:
    """Chunk rows per channel (due now apart from held back); the ids of the due chunks."""
    groups: dict[tuple[str, bool], list[_Planned]] = {}
    for row in planned:
        groups.setdefault((row.channel, row.due_at <= now), []).append(row)
    due: set[uuid.UUID] = set()
    for (_, is_due), rows in groups.items():
        for start in range(0, len(rows), size):
            batch = uuid.uuid4()
            for row in rows[start : start + size]:
                row.batch_id = batch
            if is_due:
                due.add(batch)
    return due


def _delivery_row(
    org_id: uuid.UUID, content: Content, row: _Planned, now: datetime
) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": org_id,
        "notification_id": row.notification_id,
        "user_id": row.recipient.id,
        "channel": row.channel,
        "dedup_key": content.key,
        "batch_id": row.batch_id,
        "status": "queued",
        "due_at": row.due_at,
        "attempts": 0,
        "urgent": content.urgent,
        "created_at": now,
        "updated_at": now,
    }


def _notification_row(
    org_id: uuid.UUID, content: Content, row: _Planned, now: datetime
) -> dict[str, Any]:
    return {
        "id": row.notification_id,
        "organization_id": org_id,
        "user_id": row.recipient.id,
        "title": content.title,
        "message": content.message,
        "notification_type": content.notification_type,
        "channel": row.channel,
        "data": content.data,
        "is_read": False,
        "expires_at": content.expires_at,
        "created_at": now,
        "updated_at": now,
        "is_deleted": False,
    }


def _insert_deliveries(
    session: Session, org_id: uuid.UUID, content: Content, planned: list[_Planned], now: datetime
) -> set[uuid.UUID]:
    """Insert the delivery rows, skipping duplicates; the notification ids that went in."""
    rows = [_delivery_row(org_id, content, row, now) for row in planned]
    table = NotificationDelivery.__table__
    won: set[uuid.UUID] = set()
    for start in range(0, len(rows), _INSERT_CHUNK):
        chunk = rows[start : start + _INSERT_CHUNK]
        won.update(uuid.UUID(str(v)) for v in insert_new(session, table, chunk, "notification_id"))
    return won
