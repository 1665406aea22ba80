"""Append-only records: analytics events and the audit trail."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import Base, CreatedAt, InetType, Json, OrgScoped, Str255, enum_column, json_column

if TYPE_CHECKING:
    from models.organizations import User

AUDIT_ACTIONS = ("create", "update", "delete", "restore")


class AnalyticsEvent(OrgScoped, CreatedAt, Base):
    """Something a user did, for product analytics."""

    __tablename__ = "analytics_events"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "event_name", "event_timestamp"),)

    user_id: Mapped[uuid.UUID | None] = mapped_column()
    event_name: Mapped[Str255]
    event_category: Mapped[Str255 | None]
    properties: Mapped[Json] = json_column()
    session_id: Mapped[Str255 | None]
    ip_address: Mapped[str | None] = mapped_column(InetType)
    user_agent: Mapped[str | None]
    event_timestamp: Mapped[datetime | None]

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


class AuditLog(OrgScoped, CreatedAt, Base):
    """One change to a tenant row, written automatically in the same transaction."""

    __tablename__ = "audit_logs"
    __referenced__ = False
    __org_refs__ = {"user_id": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "table_name", "record_id"),)

    user_id: Mapped[uuid.UUID | None] = mapped_column()
    table_name: Mapped[str] = mapped_column(String(64))
    record_id: Mapped[uuid.UUID]
    action: Mapped[str] = enum_column("action", *AUDIT_ACTIONS, nullable=False)
    old_values: Mapped[Json | None]
    new_values: Mapped[Json | None]
    metadata_: Mapped[Json] = json_column("metadata")

    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


__all__ = ["AUDIT_ACTIONS", "AnalyticsEvent", "AuditLog"]
