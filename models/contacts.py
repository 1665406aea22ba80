"""Professional networking: contacts and the interactions with them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

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
    from models.media import Media
    from models.organizations import User

CONTACT_TYPES = ("target", "contact", "plug")
CONTACT_STATUSES = ("new_client", "existing_client", "hot_lead", "cold_lead")
PRIORITIES = ("high", "medium", "low")
INTERACTION_TYPES = ("meeting", "call", "email", "linkedin", "event", "follow_up")
INTERACTION_STATUSES = ("completed", "scheduled", "cancelled")


class Contact(OrgScoped, Timestamps, SoftDelete, Base):
    """A person in an organization's professional network."""

    __tablename__ = "contacts"
    __audited__ = True
    __org_refs__ = {"created_by": "users", "updated_by": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("lead_score BETWEEN 0 AND 100", name="lead_score_range"),
            Index(None, "organization_id", "email"),
            Index(None, "organization_id", "updated_at"),
        )

    created_by: Mapped[uuid.UUID | None] = mapped_column()
    first_name: Mapped[Str255 | None]
    last_name: Mapped[Str255 | None]
    email: Mapped[Str255 | None]
    phone: Mapped[Str50 | None]
    company: Mapped[Str255 | None]
    job_title: Mapped[Str255 | None]
    linkedin_url: Mapped[Str500 | None]
    bio: Mapped[str | None]
    avatar_url: Mapped[Str500 | None]
    contact_type: Mapped[str] = enum_column(
        "contact_type", *CONTACT_TYPES, nullable=False, default="contact"
    )
    status: Mapped[str | None] = enum_column("status", *CONTACT_STATUSES)
    priority: Mapped[str | None] = enum_column("priority", *PRIORITIES)
    business_type: Mapped[Str255 | None]
    network_type: Mapped[Str255 | None]
    industry: Mapped[Str255 | None]
    notes: Mapped[str | None]
    metadata_: Mapped[Json] = json_column("metadata")
    lead_score: Mapped[int | None]
    last_interaction: Mapped[datetime | None]
    updated_by: Mapped[uuid.UUID | None]

    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])
    interactions: Mapped[list[ContactInteraction]] = relationship(
        back_populates="contact", foreign_keys="ContactInteraction.contact_id", viewonly=True
    )
    media: Mapped[list[Media]] = relationship(foreign_keys="Media.related_contact", viewonly=True)


class ContactInteraction(OrgScoped, Timestamps, SoftDelete, Base):
    """A meeting, call, email, ... with a contact."""

    __tablename__ = "contact_interactions"
    __audited__ = True
    __org_refs__ = {"contact_id": "contacts", "user_id": "users"}
    __org_cascade__ = frozenset({"contact_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "contact_id", "interaction_date"),)

    contact_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID | None] = mapped_column()
    interaction_type: Mapped[str] = enum_column(
        "interaction_type", *INTERACTION_TYPES, nullable=False
    )
    subject: Mapped[Str255 | None]
    description: Mapped[str | None]
    outcome: Mapped[str | None]
    interaction_date: Mapped[datetime | None]
    status: Mapped[str] = enum_column(
        "status", *INTERACTION_STATUSES, nullable=False, default="completed"
    )
    metadata_: Mapped[Json] = json_column("metadata")

    contact: Mapped[Contact] = relationship(
        back_populates="interactions", foreign_keys=[contact_id]
    )
    user: Mapped[User | None] = relationship(foreign_keys=[user_id])


__all__ = [
    "CONTACT_STATUSES",
    "CONTACT_TYPES",
    "INTERACTION_STATUSES",
    "INTERACTION_TYPES",
    "PRIORITIES",
    "Contact",
    "ContactInteraction",
]
