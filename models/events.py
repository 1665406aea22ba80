"""Events, their attendees and their agenda."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import CheckConstraint, Index, String, UniqueConstraint
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
    from models.expenses import Expense
    from models.media import Media
    from models.organizations import User

EVENT_TYPES = ("conference", "workshop", "networking", "meeting")
EVENT_STATUSES = ("draft", "published", "ongoing", "completed", "cancelled")
ATTENDEE_STATUSES = ("registered", "confirmed", "attended", "no_show", "cancelled")
AGENDA_TYPES = ("presentation", "break", "networking", "workshop")
AGENDA_STATUSES = ("scheduled", "ongoing", "completed", "cancelled")


class Event(OrgScoped, Timestamps, SoftDelete, Base):
    """A conference, workshop, networking evening or meeting an organization runs."""

    __tablename__ = "events"
    __audited__ = True
    __org_refs__ = {"created_by": "users", "updated_by": "users"}

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            CheckConstraint("end_date IS NULL OR end_date >= start_date", name="dates_in_order"),
            CheckConstraint("max_attendees IS NULL OR max_attendees >= 0", name="max_attendees"),
            CheckConstraint("current_attendees >= 0", name="current_attendees"),
            Index(None, "organization_id", "start_date"),
        )

    created_by: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[Str255]
    description: Mapped[str | None]
    event_type: Mapped[str] = enum_column("event_type", *EVENT_TYPES, nullable=False)
    status: Mapped[str] = enum_column("status", *EVENT_STATUSES, nullable=False, default="draft")
    start_date: Mapped[datetime]
    end_date: Mapped[datetime | None]
    timezone: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[Str255 | None]
    venue: Mapped[Str255 | None]
    venue_details: Mapped[Json] = json_column()
    budget: Mapped[Decimal | None]
    currency: Mapped[str | None] = mapped_column(String(3))
    max_attendees: Mapped[int | None]
    current_attendees: Mapped[int] = mapped_column(default=0, server_default="0")
    registration_url: Mapped[Str500 | None]
    settings: Mapped[Json] = json_column()
    metadata_: Mapped[Json] = json_column("metadata")
    updated_by: Mapped[uuid.UUID | None]

    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])
    attendees: Mapped[list[EventAttendee]] = relationship(
        back_populates="event", foreign_keys="EventAttendee.event_id", viewonly=True
    )
    agenda_items: Mapped[list[EventAgendaItem]] = relationship(
        back_populates="event", foreign_keys="EventAgendaItem.event_id", viewonly=True
    )
    expenses: Mapped[list[Expense]] = relationship(foreign_keys="Expense.event_id", viewonly=True)
    media: Mapped[list[Media]] = relationship(foreign_keys="Media.related_event", viewonly=True)


class EventAttendee(OrgScoped, Timestamps, SoftDelete, Base):
    """A user registered for an event (once per event)."""

    __tablename__ = "event_attendees"
    __audited__ = True
    __org_refs__ = {"event_id": "events", "user_id": "users"}
    __org_cascade__ = frozenset({"event_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (
            UniqueConstraint("organization_id", "event_id", "user_id"),
            CheckConstraint(
                "check_out_time IS NULL OR check_in_time IS NULL OR check_out_time >= check_in_time",
                name="check_times_in_order",
            ),
        )

    event_id: Mapped[uuid.UUID] = mapped_column()
    user_id: Mapped[uuid.UUID] = mapped_column()
    status: Mapped[str] = enum_column(
        "status", *ATTENDEE_STATUSES, nullable=False, default="registered"
    )
    registration_date: Mapped[datetime | None]
    check_in_time: Mapped[datetime | None]
    check_out_time: Mapped[datetime | None]
    notes: Mapped[str | None]
    metadata_: Mapped[Json] = json_column("metadata")

    event: Mapped[Event] = relationship(back_populates="attendees", foreign_keys=[event_id])
    user: Mapped[User] = relationship(foreign_keys=[user_id])


class EventAgendaItem(OrgScoped, Timestamps, SoftDelete, Base):
    """A session of an event's programme."""

    __tablename__ = "event_agenda_items"
    __audited__ = True
    __org_refs__ = {"event_id": "events", "created_by": "users", "speaker_id": "users"}
    __org_cascade__ = frozenset({"event_id"})

    @classmethod
    def __table_extras__(cls) -> tuple[Any, ...]:
        return (Index(None, "organization_id", "event_id", "sort_order"),)

    event_id: Mapped[uuid.UUID] = mapped_column()
    created_by: Mapped[uuid.UUID | None] = mapped_column()
    title: Mapped[Str255]
    description: Mapped[str | None]
    start_time: Mapped[datetime | None]
    end_time: Mapped[datetime | None]
    agenda_type: Mapped[str] = enum_column(
        "agenda_type", *AGENDA_TYPES, nullable=False, default="presentation"
    )
    location: Mapped[Str255 | None]
    speaker_id: Mapped[uuid.UUID | None] = mapped_column()
    sort_order: Mapped[int] = mapped_column(default=0, server_default="0")
    status: Mapped[str] = enum_column(
        "status", *AGENDA_STATUSES, nullable=False, default="scheduled"
    )
    metadata_: Mapped[Json] = json_column("metadata")

    event: Mapped[Event] = relationship(back_populates="agenda_items", foreign_keys=[event_id])
    creator: Mapped[User | None] = relationship(foreign_keys=[created_by])
    speaker: Mapped[User | None] = relationship(foreign_keys=[speaker_id])


__all__ = [
    "AGENDA_STATUSES",
    "AGENDA_TYPES",
    "ATTENDEE_STATUSES",
    "EVENT_STATUSES",
    "EVENT_TYPES",
    "Event",
    "EventAgendaItem",
    "EventAttendee",
]
