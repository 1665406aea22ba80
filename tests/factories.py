"""Rows for tests, made through the public API (a tenant unit of work), one of every table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from models import (
    AnalyticsEvent,
    AuditLog,
    Contact,
    ContactInteraction,
    Event,
    EventAgendaItem,
    EventAttendee,
    Expense,
    Integration,
    IntegrationLog,
    Media,
    MediaCollection,
    MediaCollectionItem,
    Notification,
    User,
)
from models.accounts import create_organization
from models.base import utcnow
from models.session import Database


@dataclass
class World:
    """One organization with a row in every table; ids by table name."""

    org_id: uuid.UUID
    ids: dict[str, uuid.UUID]


def make_world(db: Database, name: str = "Org") -> World:
    org = create_organization(db, f"{name} {uuid.uuid4().hex[:6]}", domain="example.test")
    now = utcnow()
    with db.tenant(org.id) as s:
        user = User(email=f"owner-{uuid.uuid4().hex[:6]}@example.test", first_name="Olive")
        s.add(user)
        s.flush()
        contact = Contact(first_name="Cleo", email="cleo@example.test", created_by=user.id)
        event = Event(title="Summit", event_type="conference", start_date=now, created_by=user.id)
        collection = MediaCollection(name="Photos", created_by=user.id)
        integration = Integration(provider="hubspot", integration_type="crm")
        s.add_all([contact, event, collection, integration])
        s.flush()
        media = Media(file_name="a.jpg", media_type="image", related_event=event.id, file_size=10)
        s.add(media)
        s.flush()
        rows = {
            "contact_interactions": ContactInteraction(
                contact_id=contact.id, user_id=user.id, interaction_type="call"
            ),
            "event_attendees": EventAttendee(event_id=event.id, user_id=user.id),
            "event_agenda_items": EventAgendaItem(
                event_id=event.id, title="Keynote", speaker_id=user.id
            ),
            "expenses": Expense(
                title="Coffee",
                amount=Decimal("12.50"),
                event_id=event.id,
                expense_date=now.date(),
            ),
            "media_collection_items": MediaCollectionItem(
                collection_id=collection.id, media_id=media.id
            ),
            "notifications": Notification(
                user_id=user.id, title="Hi", message="Welcome", expires_at=now + timedelta(days=1)
            ),
            "integration_logs": IntegrationLog(
                integration_id=integration.id, operation="sync", started_at=now
            ),
            "analytics_events": AnalyticsEvent(
                user_id=user.id, event_name="login", ip_address="192.0.2.1", event_timestamp=now
            ),
        }
        s.add_all(rows.values())
        s.flush()
        ids = {table: row.id for table, row in rows.items()}
        ids.update(
            organizations=org.id,
            users=user.id,
            contacts=contact.id,
            events=event.id,
            media_collections=collection.id,
            integrations=integration.id,
            media=media.id,
        )
    with db.tenant(org.id) as s:
        ids["audit_logs"] = s.scalars(select(AuditLog.id).limit(1)).one()
    return World(org.id, ids)
