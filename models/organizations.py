"""Organizations (the tenants) and their users."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import UniqueConstraint, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from models.base import (
    Base,
    Json,
    OrgScoped,
    SoftDelete,
    Str50,
    Str255,
    Str500,
    Timestamps,
    enum_column,
    json_column,
)

if TYPE_CHECKING:
    from models.audit import AnalyticsEvent, AuditLog
    from models.contacts import Contact
    from models.events import Event
    from models.expenses import Expense
    from models.integrations import Integration
    from models.media import Media
    from models.notifications import Notification

SUBSCRIPTION_PLANS = ("free", "pro", "enterprise")


class Organization(Timestamps, SoftDelete, Base):
    """A customer organization: every other row belongs to exactly one."""

    __tablename__ = "organizations"
    __audited__ = True

    name: Mapped[Str255]
    domain: Mapped[Str255 | None]
    subscription_plan: Mapped[str] = enum_column(
        "subscription_plan", *SUBSCRIPTION_PLANS, nullable=False, default="free"
    )
    settings: Mapped[Json] = json_column()
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())

    users: Mapped[list[User]] = relationship(back_populates="organization", viewonly=True)
    contacts: Mapped[list[Contact]] = relationship(viewonly=True)
    events: Mapped[list[Event]] = relationship(viewonly=True)
    media: Mapped[list[Media]] = relationship(viewonly=True)
    expenses: Mapped[list[Expense]] = relationship(viewonly=True)
    notifications: Mapped[list[Notification]] = relationship(
        viewonly=True,  # no direct foreign key (migration 0012): users' composite one holds
        primaryjoin="Organization.id == foreign(Notification.organization_id)",
    )
    integrations: Mapped[list[Integration]] = relationship(viewonly=True)
    analytics_events: Mapped[list[AnalyticsEvent]] = relationship(viewonly=True)
    audit_logs: Mapped[list[AuditLog]] = relationship(viewonly=True)


class User(OrgScoped, Timestamps, SoftDelete, Base):
    """A person who signs in to an organization; the email is unique within it."""

    __tablename__ = "users"
    __audited__ = True
    __audit_redacted__ = frozenset({"password_hash"})
    __org_refs__ = {"created_by": "users", "updated_by": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (UniqueConstraint("organization_id", "email"),)

    email: Mapped[Str255]
    password_hash: Mapped[Str255 | None]
    first_name: Mapped[Str255 | None]
    last_name: Mapped[Str255 | None]
    phone: Mapped[Str50 | None]
    bio: Mapped[str | None]
    avatar_url: Mapped[Str500 | None]
    job_title: Mapped[Str255 | None]
    company: Mapped[Str255 | None]
    linkedin_url: Mapped[Str500 | None]
    is_active: Mapped[bool] = mapped_column(default=True, server_default=true())
    is_verified: Mapped[bool] = mapped_column(default=False, server_default=false())
    is_admin: Mapped[bool] = mapped_column(default=False, server_default=false())
    verified_at: Mapped[datetime | None]
    last_login: Mapped[datetime | None]
    created_by: Mapped[uuid.UUID | None]
    updated_by: Mapped[uuid.UUID | None]

    organization: Mapped[Organization] = relationship(back_populates="users")

    @validates("email")
    def _normalise_email(self, _key: str, email: str) -> str:
        email = email.strip().lower()
        if "@" not in email or email.startswith("@") or email.endswith("@"):
            raise ValueError(f"not an email address: {email!r}")
        return email

    @property
    def full_name(self) -> str:
        return " ".join(p for p in (self.first_name, self.last_name) if p) or self.email


__all__ = ["SUBSCRIPTION_PLANS", "Organization", "User"]
