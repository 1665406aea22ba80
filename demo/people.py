"""The demo organization's own data: the organization, its users (one admin) and a few
events with attendees, one asking for a Zoom meeting and one for a Teams meeting.

Everything is found by a natural key (the organization's name, a user's email, an event's
title) before it is created, so running the demo again adds nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from models import Organization, User, accounts
from models.events import Event, EventAttendee
from models.session import Database

DEMO_ORG = "The Plugs Demo"
#: email, first name, last name, admin
DEMO_USERS = (
    ("ada@demo.theplugs.test", "Ada", "Lovelace", True),
    ("grace@demo.theplugs.test", "Grace", "Hopper", False),
    ("alan@demo.theplugs.test", "Alan", "Turing", False),
)
ZOOM_EVENT = "Intro workshop (on Zoom)"
TEAMS_EVENT = "Quarterly review (on Teams)"
#: title, event type, what it asks for (settings; see connectors.meetings)
DEMO_EVENTS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    (ZOOM_EVENT, "workshop", {"meeting_platform": "zoom"}),
    (TEAMS_EVENT, "meeting", {"meeting_platform": "teams"}),
    ("Summer summit", "conference", {}),
)


@dataclass(frozen=True)
class DemoPeople:
    """Ids of what :func:`ensure_people` found or created."""

    organization: Organization
    admin_id: uuid.UUID
    user_ids: tuple[uuid.UUID, ...]
    event_ids: dict[str, uuid.UUID]  # by title


def ensure_people(db: Database) -> DemoPeople:
    """The demo organization with its users and events, created where missing."""
    existing = [o for o in accounts.list_organizations(db) if o.name == DEMO_ORG]
    org = existing[0] if existing else accounts.create_organization(db, DEMO_ORG, plan="pro")
    with db.tenant(org.id) as session:
        have = set(session.scalars(select(User.email)))
    for email, first, last, admin in DEMO_USERS:
        if email not in have:
            accounts.create_user(
                db, org.id, email, first_name=first, last_name=last, is_admin=admin
            )
    with db.tenant(org.id) as session:
        users = {u.email: u.id for u in session.scalars(select(User))}
    user_ids = tuple(users[email] for email, *_ in DEMO_USERS)
    return DemoPeople(org, user_ids[0], user_ids, _ensure_events(db, org.id, user_ids))


def _ensure_events(
    db: Database, org_id: uuid.UUID, user_ids: tuple[uuid.UUID, ...]
) -> dict[str, uuid.UUID]:
    """The demo events (a week from now, then a day apart), every user attending each."""
    first = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
    with db.tenant(org_id) as session:
        found = {e.title: e.id for e in session.scalars(select(Event))}
        for number, (title, kind, settings) in enumerate(DEMO_EVENTS):
            if title in found:
                continue
            start = first + timedelta(days=number)
            event = Event(
                title=title,
                event_type=kind,
                status="published",
                start_date=start,
                end_date=start + timedelta(minutes=90),
                timezone="UTC",
                settings=settings,
                description=f"A demo event of {DEMO_ORG}.",
            )
            session.add(event)
            session.flush()
            session.add_all(
                EventAttendee(event_id=event.id, user_id=user_id, status="confirmed")
                for user_id in user_ids
            )
            found[title] = event.id
    return {title: found[title] for title, *_ in DEMO_EVENTS}
