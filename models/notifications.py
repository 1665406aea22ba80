"""Notifications to users, one row per (user, channel)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    IsDeleted,
    Json,
    OrgScoped,
    Str255,
    Timestamps,
    enum_column,
    json_column,
)

if TYPE_CHECKING:
    from models.organizations import User

NOTIFICATION_TYPES = ("info", "success", "warning", "error", "reminder")
CHANNELS = ("in_app", "email", "sms", "push")


class Notification(OrgScoped, Timestamps, IsDeleted, Base):
    """A message to one user on one channel."""

    __tablename__ = "notifications"
    __audited__ = False  # high-volume delivery records, not business entities
    __org_refs__ = {"user_id": "users"}
    __org_cascade__ = frozenset({"user_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "user_id", "is_read", "created_at"),)

    #: No foreign key of its own to ``organizations`` (migration 0012): the composite one
    #: ``(organization_id, user_id) -> users`` already guarantees the organization and
    #: deletes the row with it (through its users), one check per inserted row fewer.
    organization_id: Mapped[uuid.UUID] = mapped_column(nullable=False, sort_order=-90)
    user_id: Mapped[uuid.UUID] = mapped_column()
    title: Mapped[Str255]
    message: Mapped[str]
    notification_type: Mapped[str] = enum_column(
        "notification_type", *NOTIFICATION_TYPES, nullable=False, default="info"
    )
    channel: Mapped[str] = enum_column("channel", *CHANNELS, nullable=False, default="in_app")
    data: Mapped[Json] = json_column()
    is_read: Mapped[bool] = mapped_column(default=False, server_default=false())
    read_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])


__all__ = ["CHANNELS", "NOTIFICATION_TYPES", "Notification"]
