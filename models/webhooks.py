"""Webhook deliveries as received, and the vendor subscriptions that send them.

* :class:`WebhookDelivery` (``webhook_inbox``) -- one row per verified delivery, stored
  before the vendor gets its 2xx: the raw body and the headers (secrets removed), the
  vendor's delivery id ``UNIQUE (integration_id, delivery_id)`` so a redelivered request is
  stored once, and its processing state (``received`` -> ``processed`` | ``failed``, with
  attempts, the per-event counts and the run it wrote).  The database is the record of what
  must be processed; the broker only carries the ``webhooks.process`` task that does it.
* :class:`WebhookSubscription` -- a subscription we created at a vendor for the resources
  an integration follows (Microsoft Graph change notifications): the vendor's id, its
  expiry (renewed by a scheduled task before it passes) and its state.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Index, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, Json, OrgScoped, Timestamps, enum_column, json_column

INBOX_STATUSES = ("received", "processed", "failed")
SUBSCRIPTION_STATUSES = ("active", "expired", "removed", "failed")


class WebhookDelivery(OrgScoped, Timestamps, Base):
    """One verified webhook delivery, stored once, processed once."""

    __tablename__ = "webhook_inbox"
    __referenced__ = False
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("integration_id", "delivery_id"),
            # The sweeper's scan: unprocessed rows by age.
            Index(None, "status", "received_at"),
        )

    integration_id: Mapped[uuid.UUID]
    provider: Mapped[str] = mapped_column(String(64))
    #: The vendor's id of the delivery (or a hash of its events' ids): the dedup key.
    delivery_id: Mapped[str] = mapped_column(String(255))
    method: Mapped[str] = mapped_column(String(10))
    #: The URL as requested, with secrets in the query string removed.
    url: Mapped[str]
    #: Request headers, lower-cased, without authorization/cookie/secret-bearing ones.
    headers: Mapped[Json] = json_column()
    body: Mapped[bytes] = mapped_column(LargeBinary)
    received_at: Mapped[datetime]
    event_count: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[str] = enum_column("status", *INBOX_STATUSES, nullable=False, default="received")
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    processed_at: Mapped[datetime | None]
    #: The integration_logs row (operation webhook) the processing wrote.
    run_id: Mapped[uuid.UUID | None]
    last_error: Mapped[str | None]


class WebhookSubscription(OrgScoped, Timestamps, Base):
    """A subscription at the vendor that sends an integration's change notifications."""

    __tablename__ = "webhook_subscriptions"
    __org_refs__ = {"integration_id": "integrations"}
    __org_cascade__ = frozenset({"integration_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("integration_id", "resource"),
            Index(None, "status", "expires_at"),
        )

    integration_id: Mapped[uuid.UUID]
    #: What it follows, as the vendor names it (``/communications/onlineMeetings/...``).
    resource: Mapped[str] = mapped_column(String(500))
    #: The vendor's subscription id (None until created).
    external_id: Mapped[str | None] = mapped_column(String(255))
    change_types: Mapped[str] = mapped_column(String(100), default="created,updated,deleted")
    expires_at: Mapped[datetime | None]
    status: Mapped[str] = enum_column(
        "status", *SUBSCRIPTION_STATUSES, nullable=False, default="active"
    )
    last_error: Mapped[str | None]


__all__ = [
    "INBOX_STATUSES",
    "SUBSCRIPTION_STATUSES",
    "WebhookDelivery",
    "WebhookSubscription",
]
