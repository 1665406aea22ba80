"""``/event-endpoints``, ``/events``, ``/event-deliveries``: the host product's endpoints
that receive the organization's signed events, what was sent, and replays
(docs/events.md) -- what `plugs events` does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel, Field, StringConstraints

from events import delivery, endpoints, history
from models.api_keys import ApiKeyIdentity
from models.audit_trail import audit_tables
from models.host_events import DELIVERY_STATUSES, EVENT_TYPES
from workers.api.auth import current_key, writable_key
from workers.api.common import Cursor, Listing, ShortText, db
from workers.api.problems import RESPONSES, WRITE_RESPONSES

router = APIRouter(tags=["events"], responses=RESPONSES)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]
EventType = Literal[
    "run.succeeded",
    "run.partial",
    "run.failed",
    "integration.error",
    "webhook.failed",
    "notification.failed",
    "records.changed",
]
DeliveryStatus = Literal["pending", "sending", "succeeded", "failed"]
assert set(EventType.__args__) == set(EVENT_TYPES)  # type: ignore[attr-defined]
assert set(DeliveryStatus.__args__) == set(DELIVERY_STATUSES)  # type: ignore[attr-defined]
Url = Annotated[str, StringConstraints(min_length=1, max_length=2000, pattern=r"^[^\x00\s]*$")]


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failure_streak: int = Field(description="deliveries in a row that failed every attempt")
    created_at: datetime


class EndpointCreated(EndpointOut):
    secret: str = Field(description="the signing secret (whsec_...), shown only now")


class EndpointIn(BaseModel):
    url: Url = Field(description="https URL of your receiver (checked by the SSRF guard)")
    event_types: list[EventType] = Field(min_length=1, max_length=len(EVENT_TYPES))
    description: ShortText | None = None


class EndpointChange(BaseModel):
    url: Url | None = None
    event_types: list[EventType] | None = Field(default=None, min_length=1)
    description: ShortText | None = None
    enabled: bool | None = Field(default=None, description="false disables, true enables")


class Secret(BaseModel):
    secret: str = Field(description="the new signing secret, shown only now")


class DeliveryOut(BaseModel):
    id: uuid.UUID
    event_id: uuid.UUID
    endpoint_id: uuid.UUID
    status: str
    attempts: int = Field(description="attempts since it was created or last replayed")
    due_at: datetime
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime


class EventOut(BaseModel):
    id: uuid.UUID = Field(description="also the webhook-id header of its deliveries")
    type: str
    created_at: datetime
    data: dict[str, Any]
    deliveries: list[DeliveryOut]


class AttemptOut(BaseModel):
    number: int
    outcome: str
    status_code: int | None
    duration_ms: int | None
    response: str | None = Field(description="the start of the answer, or why there was none")
    started_at: datetime
    finished_at: datetime | None


class ReplayFailed(BaseModel):
    since: datetime = Field(description="failed deliveries of events since then")
    endpoint_id: uuid.UUID | None = None


class Replayed(BaseModel):
    enqueued: int


def _endpoint(e: endpoints.Endpoint) -> dict[str, Any]:
    return {
        "id": e.id,
        "url": e.url,
        "event_types": list(e.event_types),
        "description": e.description,
        "enabled": e.enabled,
        "disabled_reason": e.disabled_reason,
        "disabled_at": e.disabled_at,
        "failure_streak": e.failure_streak,
        "created_at": e.created_at,
    }


def _delivery(d: history.Delivery) -> DeliveryOut:
    return DeliveryOut(**d.__dict__)


@router.get("/event-endpoints")
def list_endpoints(key: Key) -> Listing[EndpointOut]:
    """The organization's endpoints (never their secrets)."""
    found = endpoints.list_endpoints(db(), key.organization_id)
    return Listing(items=[EndpointOut(**_endpoint(e)) for e in found])


@router.post("/event-endpoints", status_code=201, responses=WRITE_RESPONSES)
def create_endpoint(body: EndpointIn, key: WriteKey) -> EndpointCreated:
    """Register an endpoint; the answer holds its signing secret, shown only this once."""
    created, secret = endpoints.add_endpoint(
        db(), key.organization_id, body.url, body.event_types, description=body.description
    )
    return EndpointCreated(**_endpoint(created), secret=secret)


@router.get("/event-endpoints/{endpoint_id}")
def show_endpoint(endpoint_id: uuid.UUID, key: Key) -> EndpointOut:
    return EndpointOut(**_endpoint(endpoints.show_endpoint(db(), key.organization_id, endpoint_id)))


@router.patch("/event-endpoints/{endpoint_id}", responses=WRITE_RESPONSES)
def change_endpoint(endpoint_id: uuid.UUID, body: EndpointChange, key: WriteKey) -> EndpointOut:
    """Change the URL, event types or description; disable or enable it."""
    org = key.organization_id
    changed = endpoints.update_endpoint(
        db(),
        org,
        endpoint_id,
        url=body.url,
        event_types=body.event_types,
        description=body.description,
    )
    if body.enabled is not None:
        changed = endpoints.set_enabled(
            db(), org, endpoint_id, body.enabled, reason="disabled through the API"
        )
    return EndpointOut(**_endpoint(changed))


@router.delete("/event-endpoints/{endpoint_id}", status_code=204, responses=WRITE_RESPONSES)
def remove_endpoint(endpoint_id: uuid.UUID, key: WriteKey) -> Response:
    """Delete the endpoint and its delivery log."""
    endpoints.remove_endpoint(db(), key.organization_id, endpoint_id)
    return Response(status_code=204)


@router.post("/event-endpoints/{endpoint_id}/rotate-secret", responses=WRITE_RESPONSES)
def rotate_secret(endpoint_id: uuid.UUID, key: WriteKey) -> Secret:
    """A new signing secret for the endpoint, shown only this once."""
    secret = endpoints.rotate_secret(db(), key.organization_id, endpoint_id)
    return Secret(secret=secret)


@router.get("/events")
def list_events(
    key: Key,
    type: EventType | None = None,  # noqa: A002 - the query parameter's name
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor | None = None,
) -> Listing[EventOut]:
    """The organization's events, newest first, each with its deliveries."""
    found, next_cursor = history.list_events(
        db(), key.organization_id, event_type=type, limit=limit, cursor=cursor
    )
    items = [
        EventOut(
            id=e.id,
            type=e.event_type,
            created_at=e.created_at,
            data=e.payload,
            deliveries=[_delivery(d) for d in e.deliveries],
        )
        for e in found
    ]
    return Listing(items=items, next_cursor=next_cursor)


@router.post("/events/{event_id}/replay", status_code=202, responses=WRITE_RESPONSES)
def replay_event(event_id: uuid.UUID, key: WriteKey) -> Replayed:
    """Send the event again to each enabled endpoint it went to (same webhook-id)."""
    audit_tables("event_deliveries")  # not audited by itself; restarted through the ORM
    count = delivery.replay_event(db(), key.organization_id, event_id)
    return Replayed(enqueued=count)


@router.post("/events/replay-failed", status_code=202, responses=WRITE_RESPONSES)
def replay_failed(body: ReplayFailed, key: WriteKey) -> Replayed:
    """Send again every delivery that failed, of events since ``since``."""
    since = body.since if body.since.tzinfo else body.since.replace(tzinfo=UTC)
    audit_tables("event_deliveries")
    count = delivery.replay_failed(db(), key.organization_id, since, endpoint_id=body.endpoint_id)
    return Replayed(enqueued=count)


@router.get("/event-deliveries")
def list_deliveries(
    key: Key,
    endpoint_id: uuid.UUID | None = None,
    status: DeliveryStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor | None = None,
) -> Listing[DeliveryOut]:
    """Deliveries of events to the endpoints, newest first."""
    found, next_cursor = history.list_deliveries(
        db(),
        key.organization_id,
        endpoint_id=endpoint_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Listing(items=[_delivery(d) for d in found], next_cursor=next_cursor)


@router.get("/event-deliveries/{delivery_id}/attempts")
def list_attempts(delivery_id: uuid.UUID, key: Key) -> Listing[AttemptOut]:
    """Every attempt of a delivery: status code, duration, the start of the answer."""
    found = history.list_attempts(db(), key.organization_id, delivery_id)
    return Listing(items=[AttemptOut(**a.__dict__) for a in found])
