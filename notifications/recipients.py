"""Who a notification goes to: given users, the organization's admins or members, or an
event's attendees.  Only active users that are not deleted are recipients."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from core.errors import NotFoundError, PlugsError
from models.events import Event, EventAttendee
from models.organizations import User
from notifications.channels.base import Recipient

#: ``--role`` values: admins (users.is_admin) or every member of the organization.
ROLES = ("admins", "members")
_CHUNK = 5000
#: A statement selecting what a :class:`Recipient` is made of: id, email, phone and name.
_Columns: TypeAlias = "Select[uuid.UUID, str, str | None, str | None, str | None]"


@dataclass(frozen=True)
class Audience:
    """Exactly one of: ``user_ids``, ``role`` (one of :data:`ROLES`), ``event_id``."""

    user_ids: tuple[uuid.UUID, ...] = ()
    role: str | None = None
    event_id: uuid.UUID | None = None

    def __post_init__(self) -> None:
        given = sum((bool(self.user_ids), self.role is not None, self.event_id is not None))
        if given != 1:
            raise PlugsError("name the recipients one way: users, a role or an event")
        if self.role is not None and self.role not in ROLES:
            raise PlugsError(f"unknown role {self.role!r}; choose one of {', '.join(ROLES)}")

    def to_json(self) -> dict[str, Any]:
        return {
            "user_ids": [str(u) for u in self.user_ids],
            "role": self.role,
            "event_id": str(self.event_id) if self.event_id else None,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Audience:
        return cls(
            user_ids=tuple(uuid.UUID(u) for u in data.get("user_ids") or ()),
            role=data.get("role"),
            event_id=uuid.UUID(data["event_id"]) if data.get("event_id") else None,
        )


def resolve(session: Session, audience: Audience) -> list[Recipient]:
    """The recipients of ``audience`` in the session's organization."""
    columns = select(User.id, User.email, User.phone, User.first_name, User.last_name).where(
        User.is_active
    )
    if audience.user_ids:
        return _given_users(session, columns, list(dict.fromkeys(audience.user_ids)))
    if audience.event_id is not None:
        if session.get(Event, audience.event_id) is None:
            raise NotFoundError(f"no event with id {audience.event_id}")
        attending = select(EventAttendee.user_id).where(
            EventAttendee.event_id == audience.event_id,
            EventAttendee.status != "cancelled",
            EventAttendee.is_deleted.is_(False),
        )
        return _recipients(session, columns.where(User.id.in_(attending)))
    if audience.role == "admins":
        return _recipients(session, columns.where(User.is_admin))
    return _recipients(session, columns)


def _given_users(session: Session, columns: _Columns, ids: list[uuid.UUID]) -> list[Recipient]:
    found: list[Recipient] = []
    for start in range(0, len(ids), _CHUNK):
        found += _recipients(session, columns.where(User.id.in_(ids[start : start + _CHUNK])))
    missing = set(ids) - {r.id for r in found}
    if missing:
        shown = ", ".join(sorted(str(m) for m in missing)[:3])
        raise NotFoundError(
            f"{len(missing)} user(s) not found or inactive in this organization: {shown}"
        )
    return found


def _recipients(session: Session, statement: _Columns) -> list[Recipient]:
    return [
        Recipient(
            id=row.id,
            email=row.email,
            phone=row.phone,
            name=_name(row.first_name, row.last_name, row.email),
        )
        for row in session.execute(statement.order_by(User.id))
    ]


def _name(first: str | None, last: str | None, email: str) -> str:
    return " ".join(p for p in (first, last) if p) or email


def by_id(recipients: Sequence[Recipient]) -> dict[uuid.UUID, Recipient]:
    return {r.id: r for r in recipients}
