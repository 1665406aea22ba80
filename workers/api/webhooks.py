"""``/webhook-deliveries``: the webhook deliveries stored for the organization's
integrations (by status), and replaying them -- what `plugs webhooks replay` does."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field

from models.api_keys import ApiKeyIdentity
from models.webhooks import INBOX_STATUSES, WebhookDelivery
from runs import history, inbox
from workers.api.auth import current_key, writable_key
from workers.api.common import Cursor, Listing, db, integration_in
from workers.api.problems import RESPONSES, WRITE_RESPONSES

router = APIRouter(prefix="/webhook-deliveries", tags=["webhook deliveries"], responses=RESPONSES)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]
InboxStatus = Literal["received", "processed", "failed"]
assert set(InboxStatus.__args__) == set(INBOX_STATUSES)  # type: ignore[attr-defined]


class WebhookDeliveryOut(BaseModel):
    id: uuid.UUID
    integration_id: uuid.UUID
    provider: str
    delivery_id: str = Field(description="the vendor's id of the delivery")
    status: str
    event_count: int
    attempts: int
    received_at: datetime
    processed_at: datetime | None
    run_id: uuid.UUID | None
    last_error: str | None


class ReplayRequest(BaseModel):
    integration_id: uuid.UUID
    since: datetime | None = Field(default=None, description="only those received since")
    failed_only: bool = False


class Replayed(BaseModel):
    enqueued: int


def _out(row: WebhookDelivery) -> WebhookDeliveryOut:
    return WebhookDeliveryOut(
        id=row.id,
        integration_id=row.integration_id,
        provider=row.provider,
        delivery_id=row.delivery_id,
        status=row.status,
        event_count=row.event_count,
        attempts=row.attempts,
        received_at=row.received_at,
        processed_at=row.processed_at,
        run_id=row.run_id,
        last_error=row.last_error,
    )


@router.get("")
def list_deliveries(
    key: Key,
    status: InboxStatus | None = None,
    integration_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor | None = None,
) -> Listing[WebhookDeliveryOut]:
    """Stored webhook deliveries, newest first."""
    page = history.list_webhook_deliveries(
        db(),
        key.organization_id,
        integration_id=integration_id,
        status=status,
        limit=limit,
        cursor=cursor,
    )
    return Listing(items=[_out(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/replay", status_code=202, responses=WRITE_RESPONSES)
def replay_deliveries(body: ReplayRequest, key: WriteKey) -> Replayed:
    """Process an integration's stored deliveries again (effects are idempotent)."""
    integration_in(key, body.integration_id)
    since = body.since
    if since is not None and since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    count = inbox.replay(
        db(), key.organization_id, body.integration_id, since=since, failed_only=body.failed_only
    )
    return Replayed(enqueued=count)
