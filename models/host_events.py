"""Events pushed to the host product: its endpoints, the events, their deliveries and
every attempt (docs/events.md).

* :class:`EventEndpoint` -- a URL of the host product's, with the event types it wants and
  the secret deliveries are signed with (AES-GCM ciphertext, like integration
  credentials: ``events.endpoints`` seals and opens it), enabled or disabled with a reason,
  and its run of failures (``failure_streak`` finally-failed deliveries in a row,
  ``failing_since`` the first failed attempt since the last success).
* :class:`HostEvent` -- one event (``run.failed``, ``records.changed``...) with the JSON
  payload every endpoint receives; its id is the ``webhook-id`` of every delivery.
* :class:`EventDelivery` -- one event to one endpoint: ``pending`` (due at ``due_at``) ->
  ``sending`` (claimed until ``lease_until``) -> ``succeeded`` | ``failed`` (every
  attempt of the schedule failed), or back to ``pending`` for the next attempt.
* :class:`EventAttempt` -- the log of each attempt: status code, duration, a snippet of
  the answer (never a secret of ours: the signing secret is only in a header we send).

:func:`emit` writes an event and the deliveries of the endpoints that subscribe to its
type in the caller's transaction, and the delivery tasks into the outbox
(:mod:`models.outbox`): they are published only if that transaction commits.  An event
nobody subscribes to is not stored.

:func:`install` (called by the Celery app, ``workers.app``) makes every transaction that
puts an integration in status ``error`` -- refused credentials in a sync, a check or a
token refresh, a broken connection -- emit ``integration.error``, wherever it does it.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ForeignKeyConstraint,
    Index,
    SmallInteger,
    String,
    UniqueConstraint,
    event,
    inspect,
    select,
    true,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from models import outbox
from models.base import (
    Base,
    CreatedAt,
    Json,
    OrgScoped,
    Timestamps,
    enum_column,
    json_column,
    utcnow,
)
from models.integrations import Integration
from models.session import PlugsSession

#: Every event type, and what it means (docs/events.md describes their payloads).
EVENT_TYPES = {
    "run.succeeded": "a sync or webhook run ended with nothing failed",
    "run.partial": "a run ended with some records failed",
    "run.failed": "a run ended with nothing synced",
    "integration.error": "an integration went to status error (refused credentials, broken)",
    "webhook.failed": "a vendor's webhook delivery could not be processed, finally",
    "notification.failed": "a notification delivery failed, finally",
    "records.changed": "a run changed records: counts and ids per entity type",
}
DELIVERY_STATUSES = ("pending", "sending", "succeeded", "failed")
ATTEMPT_OUTCOMES = ("sending", "succeeded", "failed")
#: The task that delivers one :class:`EventDelivery` (``events.deliver(org_id, id)``).
DELIVER_TASK = "events.deliver"


class EventEndpoint(OrgScoped, Timestamps, Base):
    """A URL of the host product's that receives an organization's events."""

    __tablename__ = "event_endpoints"
    __audited__ = True
    __audit_redacted__ = frozenset({"secret"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "enabled"),)

    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str | None] = mapped_column(String(500))
    #: The event types it receives (names of :data:`EVENT_TYPES`).
    event_types: Mapped[list[Any]] = json_column(array=True)
    #: The signing secret, sealed: ``{"v", "kid", "nonce", "ct"}``.
    secret: Mapped[Json] = json_column()
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    #: Deliveries finally failed in a row (a success resets it).
    failure_streak: Mapped[int] = mapped_column(default=0, server_default="0")
    #: The first failed attempt since the last successful one.
    failing_since: Mapped[datetime | None]


class HostEvent(OrgScoped, CreatedAt, Base):
    """One event, as every endpoint receives it."""

    __tablename__ = "host_events"

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "created_at"),)

    event_type: Mapped[str] = mapped_column(String(64))
    payload: Mapped[Json] = json_column()


class EventDelivery(OrgScoped, Timestamps, Base):
    """One event to one endpoint: its state, attempts and when it is next due."""

    __tablename__ = "event_deliveries"
    __org_refs__ = {"endpoint_id": "event_endpoints"}
    __org_cascade__ = frozenset({"endpoint_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            # Checked at commit: emit() may add the rows in any order, even mid-flush.
            ForeignKeyConstraint(
                ["organization_id", "event_id"],
                ["host_events.organization_id", "host_events.id"],
                ondelete="CASCADE",
                deferrable=True,
                initially="DEFERRED",
                name="fk_event_deliveries_event",
            ),
            UniqueConstraint("event_id", "endpoint_id"),
            Index(None, "endpoint_id", "created_at"),
            # The sweeper's scan: open deliveries by due time.
            Index(None, "status", "due_at"),
        )

    event_id: Mapped[uuid.UUID]
    endpoint_id: Mapped[uuid.UUID]
    status: Mapped[str] = enum_column(
        "status", *DELIVERY_STATUSES, nullable=False, default="pending"
    )
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    due_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: While ``sending``: after this time the claim is a dead worker's.
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None] = mapped_column(SmallInteger())
    last_error: Mapped[str | None] = mapped_column(String(1000))
    delivered_at: Mapped[datetime | None]


class EventAttempt(OrgScoped, CreatedAt, Base):
    """One attempt of a delivery: what the endpoint answered, and how fast."""

    __tablename__ = "event_attempts"
    __referenced__ = False
    __org_refs__ = {"delivery_id": "event_deliveries"}
    __org_cascade__ = frozenset({"delivery_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("delivery_id", "number"),)

    delivery_id: Mapped[uuid.UUID]
    number: Mapped[int]
    outcome: Mapped[str] = enum_column(
        "outcome", *ATTEMPT_OUTCOMES, nullable=False, default="sending"
    )
    status_code: Mapped[int | None] = mapped_column(SmallInteger())
    duration_ms: Mapped[int | None]
    #: The start of the answer, or why there was none (secrets scrubbed).
    response: Mapped[str | None] = mapped_column(String(1000))
    finished_at: Mapped[datetime | None]


def emit(
    session: PlugsSession,
    organization_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
) -> uuid.UUID | None:
    """Write an event of ``organization_id`` and a pending delivery to each enabled endpoint
    subscribed to ``event_type``, in the session's transaction; their tasks go out after
    it commits.  Returns the event's id, or None when no endpoint wants it (not stored)."""
    endpoints = subscribers(session, organization_id, event_type)[event_type]
    if not endpoints:
        return None
    return record(session, organization_id, event_type, payload, endpoints)


def subscribers(
    session: PlugsSession, organization_id: uuid.UUID, *event_types: str
) -> dict[str, list[uuid.UUID]]:
    """Per event type, the enabled endpoints of the organization that receive it (one
    query for all of them)."""
    unknown = [t for t in event_types if t not in EVENT_TYPES]
    if unknown:
        raise ValueError(f"unknown event type {unknown[0]!r}")
    with session.no_autoflush:  # the caller's pending rows are flushed when it decides
        rows = session.execute(
            select(EventEndpoint.id, EventEndpoint.event_types).where(
                EventEndpoint.organization_id == organization_id,
                EventEndpoint.enabled.is_(True),
            )
        ).all()
    return {t: [id_ for id_, types in rows if t in (types or ())] for t in event_types}


def record(
    session: PlugsSession,
    organization_id: uuid.UUID,
    event_type: str,
    payload: dict[str, Any],
    endpoint_ids: list[uuid.UUID],
) -> uuid.UUID:
    """Write the event, its deliveries to ``endpoint_ids`` and their tasks (see :func:`emit`)."""
    now = utcnow()
    event = HostEvent(
        id=uuid.uuid4(),
        organization_id=organization_id,
        event_type=event_type,
        payload=payload,
        created_at=now,
    )
    session.add(event)
    for endpoint_id in endpoint_ids:
        queue_delivery(session, organization_id, event.id, endpoint_id, now)
    return event.id


def queue_delivery(
    session: PlugsSession,
    organization_id: uuid.UUID,
    event_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    now: datetime,
) -> EventDelivery:
    """A new pending delivery of the event to the endpoint, and its task (outbox)."""
    delivery = EventDelivery(
        id=uuid.uuid4(),
        organization_id=organization_id,
        event_id=event_id,
        endpoint_id=endpoint_id,
        due_at=now,
    )
    session.add(delivery)
    enqueue_delivery(session, delivery)
    return delivery


def enqueue_delivery(
    session: PlugsSession, delivery: EventDelivery, *, at: datetime | None = None
) -> None:
    """The task that sends ``delivery`` (at ``at``: a retry), published after the commit."""
    org = str(delivery.organization_id)
    outbox.enqueue(
        session,
        DELIVER_TASK,
        org,
        str(delivery.id),
        available_at=at,
        organization_id=delivery.organization_id,
    )


def _integration_errors(session: Session, _context: Any, _instances: Any) -> None:
    """``integration.error`` for each integration this flush puts in status error."""
    for obj in list(session.dirty):
        if not isinstance(obj, Integration):
            continue
        history = inspect(obj).attrs.status.history
        if "error" in (history.added or ()) and "error" not in (history.deleted or ()):
            emit(
                session,  # type: ignore[arg-type]
                obj.organization_id,
                "integration.error",
                {
                    "integration_id": str(obj.id),
                    "provider": obj.provider,
                    "status": "error",
                    "reason": (obj.metadata_ or {}).get("last_error"),
                },
            )


def install() -> None:
    """Emit ``integration.error`` from every session from now on (see the docstring)."""
    if not event.contains(PlugsSession, "before_flush", _integration_errors):
        event.listen(PlugsSession, "before_flush", _integration_errors)


__all__ = [
    "ATTEMPT_OUTCOMES",
    "DELIVERY_STATUSES",
    "DELIVER_TASK",
    "EVENT_TYPES",
    "EventAttempt",
    "EventDelivery",
    "EventEndpoint",
    "HostEvent",
    "emit",
    "enqueue_delivery",
    "install",
    "queue_delivery",
    "record",
    "subscribers",
]
