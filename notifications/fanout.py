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

import json
import secrets
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from core.errors import PlugsError, TenancyError
from core.settings import get_settings
from models import outbox
from models.audit_trail import record_actor_action
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


@dataclass(slots=True)
class _Planned:
    channel: str
    user_id: uuid.UUID
    due_at: datetime
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
    due = _assign_batches(planned, now, get_settings().notification_chunk_size)
    written = _write(session, org_id, content, planned, now)
    result.created = sum(count for count, _ in written.values())
    result.duplicates = len(planned) - result.created
    result.deferred = sum(deferred for _, deferred in written.values())
    due_batches = sorted(str(batch) for batch in written if batch in due)
    outbox.enqueue_many(
        session, DELIVER_TASK, [(org_id, [str(org_id), batch]) for batch in due_batches]
    )
    result.batches = len(due_batches)
    return result


def send(
    db: Database, organization_id: uuid.UUID, audience: Audience, content: Content
) -> FanoutResult:
    """:func:`notify` in a unit of work of its own; deliveries are enqueued after its commit.
    Sent for an actor (an API key), its summary is in the audit trail in that unit of work."""
    with db.tenant(organization_id) as session:
        result = notify(session, audience, content)
        record_actor_action(
            session,
            organization_id,
            table="notifications",
            record_id=uuid.uuid4(),
            action="create",
            values={"audience": audience.to_json(), "title": content.title, **result.summary()},
        )
        return result


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
    holds = channel.quiet_hours_apply and not content.urgent and preferences.may_hold
    kind, name = content.notification_type, channel.name
    # most users have no preference of their own: the organization's default, looked up once
    choosers, default = preferences.choosers, preferences.default(kind, name)
    for recipient in recipients:
        user_id = recipient.id
        if not (preferences.enabled(user_id, kind, name) if user_id in choosers else default):
            result.opted_out += 1
        elif user_id not in reachable:
            result.unreachable += 1
        else:
            yield _Planned(name, user_id, preferences.due_at(user_id, now) if holds else now)


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


def _write(
    session: Session, org_id: uuid.UUID, content: Content, planned: list[_Planned], now: datetime
) -> dict[uuid.UUID, tuple[int, int]]:
    """Insert the delivery rows (skipping duplicates of a keyed notification) and, for the
    ones that went in, their notifications; per batch: (rows written, of them held back)."""
    if session.get_bind().dialect.name == "postgresql":
        write: Callable[[list[_Planned]], list[tuple[uuid.UUID, int, int]]] = _PostgresWriter(
            session, org_id, content, now
        ).write
    else:
        write = partial(_write_rows, session, org_id, content, now=now)
    written: dict[uuid.UUID, tuple[int, int]] = {}
    for start in range(0, len(planned), _INSERT_CHUNK):
        for batch, count, deferred in write(planned[start : start + _INSERT_CHUNK]):
            before = written.get(batch, (0, 0))
            written[batch] = (before[0] + count, before[1] + deferred)
    return written


#: One statement and one round trip per chunk: the planned rows travel as four arrays, the
#: delivery rows go in first (the dedup guard: a keyed duplicate is skipped by ``ON CONFLICT
#: DO NOTHING``) and only the ones that went in get a notification row, in the same
#: statement.  ``{conflict}`` is empty without a key: fresh ids cannot collide, so the
#: conflict pre-check of every unique index is not paid for.
#:
#: The ids are time-ordered (the layout of UUIDv7: milliseconds, version, random bits, then a
#: counter of the fan-out's rows): each index on an id gets its new entries at one place
#: instead of all over the tree, which cost a seventh of the statement with random ids.
_WRITE_SQL = """
WITH planned AS (
    SELECT * FROM unnest(
        CAST(:users AS uuid[]), CAST(:channels AS text[]),
        CAST(:due AS timestamptz[]), CAST(:batches AS uuid[])
    ) WITH ORDINALITY AS p (user_id, channel, due_at, batch_id, n)
), delivery AS (
    INSERT INTO notification_deliveries (id, organization_id, notification_id, user_id,
        channel, dedup_key, batch_id, status, due_at, attempts, urgent, created_at, updated_at)
    SELECT CAST(:delivery_ids || lpad(to_hex(:first + n), 8, '0') AS uuid), :org,
        CAST(:notification_ids || lpad(to_hex(:first + n), 8, '0') AS uuid), user_id, channel,
        :key, batch_id, 'queued', due_at, 0, :urgent, :now, :now
    FROM planned {conflict}
    RETURNING notification_id, user_id, channel, batch_id, due_at
), notification AS (
    INSERT INTO notifications (id, organization_id, user_id, title, message,
        notification_type, channel, data, is_read, expires_at, created_at, updated_at,
        is_deleted)
    SELECT notification_id, :org, user_id, :title, :message, :type, channel,
        CAST(:data AS jsonb), false, :expires, :now, :now, false
    FROM delivery
)
SELECT batch_id, count(*), count(*) FILTER (WHERE due_at > :now) FROM delivery GROUP BY batch_id
"""
#: Only a duplicate of a keyed notification is skipped; any other conflict is an error.
_ON_DUPLICATE = "ON CONFLICT ON CONSTRAINT uq_notification_deliveries_dedup DO NOTHING"


class _PostgresWriter:
    """Writes one fan-out's planned rows in chunks (:data:`_WRITE_SQL`)."""

    def __init__(
        self, session: Session, org_id: uuid.UUID, content: Content, now: datetime
    ) -> None:
        self.session, self.now = session, now
        self.statement = text(
            _WRITE_SQL.format(conflict="" if content.key is None else _ON_DUPLICATE)
        )
        self.params = {
            "org": org_id,
            "key": content.key,
            "urgent": content.urgent,
            "now": now,
            "title": content.title,
            "message": content.message,
            "type": content.notification_type,
            "data": json.dumps(jsonable(content.data)),
            "expires": content.expires_at,
            "delivery_ids": _id_prefix(now),
            "notification_ids": _id_prefix(now),
        }
        self.written = 0
        #: the text of each uuid and time, made once however many rows name it
        self.texts: dict[object, str] = {}

    def write(self, rows: list[_Planned]) -> list[tuple[uuid.UUID, int, int]]:
        texts = self.texts

        def text_of(value: object) -> str:
            found = texts.get(value)
            if found is None:
                found = texts[value] = (
                    value.isoformat() if isinstance(value, datetime) else str(value)
                )
            return found

        params = {
            **self.params,
            # array literals: PostgreSQL parses them far faster than the driver adapts lists
            "users": _array(text_of(row.user_id) for row in rows),
            "channels": _array(row.channel for row in rows),
            "due": _array(text_of(row.due_at) for row in rows),
            "batches": _array(text_of(row.batch_id) for row in rows),
            "first": self.written,
        }
        self.written += len(rows)
        return [
            (batch, count, deferred)
            for batch, count, deferred in self.session.execute(self.statement, params)
        ]


def _id_prefix(now: datetime) -> str:
    """The first 24 of the 32 hex digits of a UUIDv7 made at ``now``: 48 bits of
    milliseconds, the version, 12 random bits, the variant and 30 more random bits (the
    last 8 digits count the fan-out's rows).  Two fan-outs in the same millisecond collide
    with a chance of one in 2**42, and then the insert fails (a primary key), never skips."""
    millis = int(now.timestamp() * 1000) & (2**48 - 1)
    random = secrets.randbits(42)
    high, low = random >> 30, random & (2**30 - 1)
    return f"{millis:012x}7{high:03x}{0x8 << 28 | low:08x}"


def _array(values: Iterator[str]) -> str:
    """A PostgreSQL array literal of values that need no quoting (uuids, names, times)."""
    return "{" + ",".join(values) + "}"


def _write_rows(
    session: Session, org_id: uuid.UUID, content: Content, rows: list[_Planned], *, now: datetime
) -> list[tuple[uuid.UUID, int, int]]:
    """:class:`_PostgresWriter` on other databases: row dicts, then the winners' notifications."""
    ids = {id(row): uuid.uuid4() for row in rows}
    deliveries = [
        {
            "id": uuid.uuid4(),
            "organization_id": org_id,
            "notification_id": ids[id(row)],
            "user_id": row.user_id,
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
        for row in rows
    ]
    table = NotificationDelivery.__table__
    won = {uuid.UUID(str(v)) for v in insert_new(session, table, deliveries, "notification_id")}
    kept = [row for row in rows if ids[id(row)] in won]
    notifications = [
        {
            "id": ids[id(row)],
            "organization_id": org_id,
            "user_id": row.user_id,
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
        for row in kept
    ]
    bulk_insert(session, Notification.__table__, notifications)
    counts: dict[uuid.UUID, list[int]] = {}
    for row in kept:
        assert row.batch_id is not None
        count = counts.setdefault(row.batch_id, [0, 0])
        count[0] += 1
        count[1] += row.due_at > now
    return [(batch, count, deferred) for batch, (count, deferred) in counts.items()]
