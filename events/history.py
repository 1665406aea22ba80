"""What was sent: an organization's events with their deliveries, and each delivery's
attempts, newest first (the CLI and the HTTP API show these); and which organization an
endpoint or event belongs to (operators name them by id)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from core.errors import NotFoundError
from models import keyset
from models.host_events import EventAttempt, EventDelivery, EventEndpoint, HostEvent
from models.session import Database


@dataclass(frozen=True)
class Attempt:
    number: int
    outcome: str
    status_code: int | None
    duration_ms: int | None
    response: str | None
    started_at: datetime
    finished_at: datetime | None


@dataclass(frozen=True)
class Delivery:
    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: str
    attempts: int
    due_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class Event:
    id: uuid.UUID
    event_type: str
    payload: dict[str, Any]
    created_at: datetime
    deliveries: tuple[Delivery, ...]


def _delivery(row: EventDelivery) -> Delivery:
    return Delivery(
        id=row.id,
        event_id=row.event_id,
        endpoint_id=row.endpoint_id,
        status=row.status,
        attempts=row.attempts,
        due_at=row.due_at,
        last_status_code=row.last_status_code,
        last_error=row.last_error,
        delivered_at=row.delivered_at,
        created_at=row.created_at,
    )


def list_events(
    db: Database,
    organization_id: uuid.UUID,
    *,
    event_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Event], str | None]:
    """A page of the organization's events, newest first, each with its deliveries; and
    the cursor of the next page (None: the last)."""
    query = select(HostEvent)
    if event_type is not None:
        query = query.where(HostEvent.event_type == event_type)
    query = keyset.after(query, HostEvent.created_at, HostEvent.id, cursor, limit)
    with db.tenant(organization_id) as session:
        rows, next_cursor = keyset.cut(
            list(session.scalars(query)), limit, lambda e: (e.created_at, e.id)
        )
        by_event: dict[uuid.UUID, list[Delivery]] = {e.id: [] for e in rows}
        if rows:
            deliveries = session.scalars(
                select(EventDelivery)
                .where(EventDelivery.event_id.in_(list(by_event)))
                .order_by(EventDelivery.created_at)
            )
            for row in deliveries:
                by_event[row.event_id].append(_delivery(row))
        events = [
            Event(e.id, e.event_type, dict(e.payload), e.created_at, tuple(by_event[e.id]))
            for e in rows
        ]
    return events, next_cursor


def list_deliveries(
    db: Database,
    organization_id: uuid.UUID,
    *,
    endpoint_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> tuple[list[Delivery], str | None]:
    """A page of deliveries, newest first, of one endpoint or all, in one status or any;
    and the cursor of the next page."""
    query = select(EventDelivery)
    if endpoint_id is not None:
        query = query.where(EventDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(EventDelivery.status == status)
    query = keyset.after(query, EventDelivery.created_at, EventDelivery.id, cursor, limit)
    with db.tenant(organization_id) as session:
        rows, next_cursor = keyset.cut(
            list(session.scalars(query)), limit, lambda d: (d.created_at, d.id)
        )
        return [_delivery(row) for row in rows], next_cursor


def list_attempts(
    db: Database, organization_id: uuid.UUID, delivery_id: uuid.UUID
) -> list[Attempt]:
    """Every attempt of a delivery, in order."""
    with db.tenant(organization_id) as session:
        if session.get(EventDelivery, delivery_id) is None:
            raise NotFoundError(f"no event delivery with id {delivery_id}")
        rows = session.scalars(
            select(EventAttempt)
            .where(EventAttempt.delivery_id == delivery_id)
            .order_by(EventAttempt.number)
        )
        return [
            Attempt(
                r.number,
                r.outcome,
                r.status_code,
                r.duration_ms,
                r.response,
                r.created_at,
                r.finished_at,
            )
            for r in rows
        ]


def organization_of_endpoint(db: Database, endpoint_id: uuid.UUID) -> uuid.UUID:
    with db.system("cli: find the organization of an event endpoint") as session:
        org_id = session.scalar(
            select(EventEndpoint.organization_id).where(EventEndpoint.id == endpoint_id)
        )
    if org_id is None:
        raise NotFoundError(f"no event endpoint with id {endpoint_id}")
    return org_id


def organization_of_event(db: Database, event_id: uuid.UUID) -> uuid.UUID:
    with db.system("cli: find the organization of an event") as session:
        org_id = session.scalar(select(HostEvent.organization_id).where(HostEvent.id == event_id))
    if org_id is None:
        raise NotFoundError(f"no event with id {event_id}")
    return org_id
