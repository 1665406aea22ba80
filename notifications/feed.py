"""The in-app feed of one user: listing, unread count, marking read.  Only ``in_app``
notifications that are not deleted and not expired are in it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, func, or_, select, update
from sqlalchemy.sql.elements import ColumnElement

from core.errors import NotFoundError
from models.audit_trail import record_actor_action
from models.base import utcnow
from models.notifications import Notification
from models.session import Database
from notifications import live
from notifications.feed_tokens import Viewer

MAX_PAGE = 100


def _visible(viewer: Viewer, now: datetime) -> list[ColumnElement[bool]]:
    return [
        Notification.user_id == viewer.user_id,
        Notification.channel == "in_app",
        or_(Notification.expires_at.is_(None), Notification.expires_at > now),
    ]


def as_json(row: Notification) -> dict[str, Any]:
    event = live.event_of(
        row.id,
        row.title,
        row.message,
        row.notification_type,
        dict(row.data or {}),
        row.created_at.isoformat(),
    )
    return {
        **event,
        "is_read": row.is_read,
        "read_at": row.read_at.isoformat() if row.read_at else None,
    }


def page(
    db: Database,
    viewer: Viewer,
    *,
    limit: int = 50,
    unread_only: bool = False,
    after: datetime | None = None,
) -> list[dict[str, Any]]:
    """Newest first (or, with ``after``, those created after it, oldest first)."""
    with db.tenant(viewer.organization_id, user_id=viewer.user_id) as session:
        query = select(Notification).where(*_visible(viewer, utcnow()))
        if unread_only:
            query = query.where(Notification.is_read.is_(False))
        if after is not None:
            query = query.where(Notification.created_at > after).order_by(
                Notification.created_at, Notification.id
            )
        else:
            query = query.order_by(Notification.created_at.desc(), Notification.id.desc())
        return [as_json(n) for n in session.scalars(query.limit(max(1, min(limit, MAX_PAGE))))]


def unread_count(db: Database, viewer: Viewer) -> int:
    with db.tenant(viewer.organization_id, user_id=viewer.user_id) as session:
        query = (
            select(func.count())
            .select_from(Notification)
            .where(*_visible(viewer, utcnow()), Notification.is_read.is_(False))
        )
        return int(session.scalar(query) or 0)


def mark_read(db: Database, viewer: Viewer, notification_id: uuid.UUID | None = None) -> int:
    """Mark one notification (or, with None, every one) read; how many changed."""
    now = utcnow()
    with db.tenant(viewer.organization_id, user_id=viewer.user_id) as session:
        statement = update(Notification).where(
            Notification.user_id == viewer.user_id,
            Notification.channel == "in_app",
            Notification.is_deleted.is_(False),
        )
        if notification_id is not None:
            exists = session.scalar(
                select(Notification.id).where(
                    Notification.id == notification_id, *_visible(viewer, now)
                )
            )
            if exists is None:
                raise NotFoundError(f"no notification {notification_id} in this feed")
            statement = statement.where(Notification.id == notification_id)
        result = session.execute(
            statement.where(Notification.is_read.is_(False))
            .values(is_read=True, read_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
        marked = cast(CursorResult[Any], result).rowcount
        record_actor_action(
            session,
            viewer.organization_id,
            table="notifications",
            record_id=notification_id or viewer.user_id,
            values={"is_read": True, "marked": marked, "user_id": str(viewer.user_id)},
        )
        return marked
