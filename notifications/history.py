"""What became of the notifications an organization sent: its deliveries (one per user and
channel) with their recipient, title and status, newest first a page at a time, and their
counts per channel and status -- for the web console and the HTTP API.  Read in the
organization's tenant session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.sql.elements import ColumnElement

from models import keyset
from models.notification_delivery import NotificationDelivery
from models.notifications import Notification
from models.organizations import User
from models.session import Database


@dataclass(frozen=True)
class DeliveryRow:
    """One delivery: to whom (``recipient``: the user's email), what, on which channel,
    and how it went."""

    id: uuid.UUID
    notification_id: uuid.UUID
    user_id: uuid.UUID
    recipient: str | None
    title: str | None
    channel: str
    status: str
    attempts: int
    provider: str | None
    reason: str | None
    key: str | None
    created_at: datetime
    sent_at: datetime | None


@dataclass(frozen=True)
class DeliveryPage:
    """One page of deliveries; ``next_cursor`` None: the last."""

    items: list[DeliveryRow] = field(default_factory=list)
    next_cursor: str | None = None


def _filters(
    key: str | None, channel: str | None, status: str | None, user_id: uuid.UUID | None
) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if key is not None:
        where.append(NotificationDelivery.dedup_key == key)
    if channel is not None:
        where.append(NotificationDelivery.channel == channel)
    if status is not None:
        where.append(NotificationDelivery.status == status)
    if user_id is not None:
        where.append(NotificationDelivery.user_id == user_id)
    return where


def list_deliveries(
    db: Database,
    org_id: uuid.UUID,
    *,
    key: str | None = None,
    channel: str | None = None,
    status: str | None = None,
    user_id: uuid.UUID | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> DeliveryPage:
    """The organization's deliveries: of one idempotency key, channel, status or user."""
    d = NotificationDelivery
    query = (
        select(
            d.id,
            d.notification_id,
            d.user_id,
            User.email,
            Notification.title,
            d.channel,
            d.status,
            d.attempts,
            d.provider,
            d.reason,
            d.dedup_key,
            d.created_at,
            d.sent_at,
        )
        .outerjoin(
            Notification,
            and_(
                Notification.organization_id == d.organization_id,
                Notification.id == d.notification_id,
            ),
        )
        .outerjoin(User, and_(User.organization_id == d.organization_id, User.id == d.user_id))
        .where(*_filters(key, channel, status, user_id))
        .execution_options(include_deleted=True)
    )
    query = keyset.after(query, d.created_at, d.id, cursor, limit)
    with db.tenant(org_id) as session:
        rows = [DeliveryRow(*list(row)) for row in session.execute(query)]
    items, next_cursor = keyset.cut(rows, limit, lambda r: (r.created_at, r.id))
    return DeliveryPage(items, next_cursor)


def recent_deliveries(
    db: Database, org_id: uuid.UUID, *, channel: str | None = None, limit: int = 100
) -> list[DeliveryRow]:
    """The organization's newest deliveries (of one channel)."""
    return list_deliveries(db, org_id, channel=channel, limit=limit).items


def delivery_counts(
    db: Database, org_id: uuid.UUID, *, key: str | None = None
) -> dict[str, dict[str, int]]:
    """Per channel, how many deliveries are in each status (of one idempotency key)."""
    query = (
        select(NotificationDelivery.channel, NotificationDelivery.status, func.count())
        .where(*_filters(key, None, None, None))
        .group_by(NotificationDelivery.channel, NotificationDelivery.status)
    )
    counts: dict[str, dict[str, int]] = {}
    with db.tenant(org_id) as session:
        for channel, status, count in session.execute(query):
            counts.setdefault(channel, {})[status] = int(count)
    return counts
