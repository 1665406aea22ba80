"""What notification fan-out needs beyond the ``notifications`` table of docs/erd.md.

* :class:`NotificationDelivery` -- one per ``notifications`` row: the delivery's state
  (``queued`` -> ``sending`` -> ``sent``/``delivered`` | ``failed`` with a reason |
  ``expired``), its attempts, when it is due (quiet hours and retry backoff park it here,
  never in a countdown), the provider that took it, and the chunk (``batch_id``) whose task
  delivers it.  ``UNIQUE (organization_id, user_id, channel, dedup_key)`` makes a keyed
  notification happen once per user and channel however often it is asked for; the insert
  is ``ON CONFLICT DO NOTHING``.  The foreign key to the notification is checked at commit,
  so the delivery row (the dedup guard) is written first and only its winners get a
  notification row.
* :class:`NotificationRequest` -- a fan-out asked for from inside a transaction (a failed
  run, an approved expense): the audience and the content, done by the
  ``notifications.fanout`` task, which takes only its id.
* :class:`NotificationPreference` -- a user's opt-out (or opt-in) per notification type
  (``*`` = every type) and channel.
* :class:`NotificationProfile` -- a user's time zone and quiet hours.
* :class:`PushDevice` -- a device token of a user for the push channel; a token the
  provider reports unregistered is disabled, never retried.
"""

from __future__ import annotations

import uuid
from datetime import datetime, time
from typing import Any

from sqlalchemy import ForeignKeyConstraint, Index, String, Time, UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Json, OrgScoped, Timestamps, enum_column, json_column
from models.notifications import CHANNELS

DELIVERY_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "expired")
#: States a delivery never leaves.
FINAL_STATUSES = ("sent", "delivered", "failed", "expired")
ANY_TYPE = "*"


class NotificationDelivery(OrgScoped, Timestamps, Base):
    """The delivery of one notification (one user, one channel)."""

    __tablename__ = "notification_deliveries"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}
    __org_cascade__ = frozenset({"user_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            # Deferred: the delivery row (dedup guard) is inserted before its notification.
            ForeignKeyConstraint(
                ["organization_id", "notification_id"],
                ["notifications.organization_id", "notifications.id"],
                ondelete="CASCADE",
                deferrable=True,
                initially="DEFERRED",
                name="fk_notification_deliveries_notification",
            ),
            UniqueConstraint("notification_id"),
            UniqueConstraint(
                "organization_id",
                "user_id",
                "channel",
                "dedup_key",
                name="uq_notification_deliveries_dedup",
            ),
            Index(None, "batch_id", "status"),
            # The sweeper's scan: open deliveries by due time.
            Index(None, "status", "due_at"),
        )

    #: No foreign key of its own to ``organizations`` (migration 0012): the composite ones
    #: to ``users`` and ``notifications`` already guarantee the organization and delete
    #: the row with it, one check per inserted row fewer.
    organization_id: Mapped[uuid.UUID] = mapped_column(nullable=False, sort_order=-90)
    notification_id: Mapped[uuid.UUID]
    user_id: Mapped[uuid.UUID]
    channel: Mapped[str] = enum_column("channel", *CHANNELS, nullable=False)
    #: The caller's idempotency key (None: not deduplicated).
    dedup_key: Mapped[str | None] = mapped_column(String(255))
    #: The chunk of deliveries one ``notifications.deliver`` task handles.
    batch_id: Mapped[uuid.UUID]
    status: Mapped[str] = enum_column(
        "status", *DELIVERY_STATUSES, nullable=False, default="queued"
    )
    #: Not before this time: quiet hours, retry backoff.
    due_at: Mapped[datetime]
    #: While ``sending``: the claim is another task's after this time (a dead worker's).
    lease_until: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    urgent: Mapped[bool] = mapped_column(default=False, server_default=false())
    provider: Mapped[str | None] = mapped_column(String(64))
    provider_message_id: Mapped[str | None] = mapped_column(String(255))
    #: Why it failed (or why the last attempt failed, while it is retried).
    reason: Mapped[str | None]
    sent_at: Mapped[datetime | None]


class NotificationRequest(OrgScoped, Timestamps, Base):
    """A fan-out to do: who (``audience``) and what (``content``), done once."""

    __tablename__ = "notification_requests"
    __referenced__ = False

    audience: Mapped[Json] = json_column()
    content: Mapped[Json] = json_column()
    status: Mapped[str] = enum_column(
        "status", "pending", "done", nullable=False, default="pending"
    )
    #: The fan-out's counts once done.
    result: Mapped[Json] = json_column()


class NotificationPreference(OrgScoped, Timestamps, Base):
    """Whether a user gets one type of notification (``*``: any) on one channel."""

    __tablename__ = "notification_preferences"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}
    __org_cascade__ = frozenset({"user_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint(
                "organization_id",
                "user_id",
                "notification_type",
                "channel",
                name="uq_notification_preferences_user_type_channel",
            ),
        )

    user_id: Mapped[uuid.UUID]
    notification_type: Mapped[str] = mapped_column(String(32), default=ANY_TYPE)
    channel: Mapped[str] = enum_column("channel", *CHANNELS, nullable=False)
    enabled: Mapped[bool] = mapped_column(default=True, server_default=true())


class NotificationProfile(OrgScoped, Timestamps, Base):
    """A user's time zone and quiet hours (local times; end before start spans midnight)."""

    __tablename__ = "notification_profiles"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}
    __org_cascade__ = frozenset({"user_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("organization_id", "user_id"),)

    user_id: Mapped[uuid.UUID]
    #: IANA name, e.g. Europe/Paris (None: the organization's, else UTC).
    time_zone: Mapped[str | None] = mapped_column(String(64))
    quiet_start: Mapped[time | None] = mapped_column(Time())
    quiet_end: Mapped[time | None] = mapped_column(Time())


class PushDevice(OrgScoped, Timestamps, Base):
    """A push token of one of a user's devices."""

    __tablename__ = "push_devices"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}
    __org_cascade__ = frozenset({"user_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("organization_id", "token"),
            Index(None, "organization_id", "user_id", "is_active"),
        )

    user_id: Mapped[uuid.UUID]
    token: Mapped[str] = mapped_column(String(512))
    platform: Mapped[str | None] = mapped_column(String(16))
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    last_used_at: Mapped[datetime | None]


__all__ = [
    "ANY_TYPE",
    "DELIVERY_STATUSES",
    "FINAL_STATUSES",
    "NotificationDelivery",
    "NotificationPreference",
    "NotificationProfile",
    "NotificationRequest",
    "PushDevice",
]
