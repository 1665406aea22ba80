"""Expenses recorded against events, with an approval workflow."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from models.base import (
    Base,
    Json,
    OrgScoped,
    SoftDelete,
    Str255,
    Str500,
    Timestamps,
    enum_column,
    json_column,
)

if TYPE_CHECKING:
    from models.events import Event
    from models.organizations import User

EXPENSE_TYPES = ("travel", "accommodation", "catering", "venue", "marketing", "other")
EXPENSE_STATUSES = ("pending", "approved", "rejected", "paid")


class Expense(OrgScoped, Timestamps, SoftDelete, Base):
    """Money spent, usually for an event; approved by another user."""

    __tablename__ = "expenses"
    __audited__ = True
    __org_refs__ = {"created_by": "users", "event_id": "events", "approved_by": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("amount >= 0", name="amount_not_negative"),
            Index(None, "organization_id", "event_id"),
            Index(None, "organization_id", "status"),
        )

    created_by: Mapped[uuid.UUID | None] = mapped_column()
    event_id: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[Str255]
    description: Mapped[str | None]
    amount: Mapped[Decimal]
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    category: Mapped[Str255 | None]
    expense_type: Mapped[str] = enum_column(
        "expense_type", *EXPENSE_TYPES, nullable=False, default="other"
    )
    expense_date: Mapped[date | None]
    status: Mapped[str] = enum_column(
        "status", *EXPENSE_STATUSES, nullable=False, default="pending"
    )
    receipt_url: Mapped[Str500 | None]
    notes: Mapped[str | None]
    approved_by: Mapped[uuid.UUID | None] = mapped_column()
    approved_at: Mapped[datetime | None]
    metadata_: Mapped[Json] = json_column("metadata")

    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])
    approver: Mapped[User | None] = relationship(foreign_keys=[approved_by])
    event: Mapped[Event | None] = relationship(foreign_keys=[event_id])


__all__ = ["EXPENSE_STATUSES", "EXPENSE_TYPES", "Expense"]
