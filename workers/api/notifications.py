"""``/notifications``: send a notification to users, a role or an event's attendees (what
`plugs notify` does), and list what became of it per channel; ``/users/{id}/feed``: a
user's in-app feed (unread count, mark read)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, Field

from models.accounts import get_user
from models.api_keys import ApiKeyIdentity
from models.notification_delivery import DELIVERY_STATUSES
from notifications import Audience, Content, feed, send
from notifications.feed_tokens import Viewer
from notifications.history import DeliveryRow, delivery_counts, list_deliveries
from workers.api.auth import current_key, writable_key
from workers.api.common import Cursor, Listing, ShortText, Text, db
from workers.api.problems import RESPONSES, WRITE_RESPONSES

router = APIRouter(tags=["notifications"], responses=RESPONSES)
Key = Annotated[ApiKeyIdentity, Depends(current_key)]
WriteKey = Annotated[ApiKeyIdentity, Depends(writable_key)]
Channel = Literal["in_app", "email", "sms", "push"]
NotificationType = Literal["info", "success", "warning", "error", "reminder"]
DeliveryStatus = Literal["queued", "sending", "sent", "delivered", "failed", "expired"]
assert set(DeliveryStatus.__args__) == set(DELIVERY_STATUSES)  # type: ignore[attr-defined]


class AudienceIn(BaseModel):
    """Exactly one of `user_ids`, `role`, `event_id`."""

    user_ids: list[uuid.UUID] = Field(default_factory=list, max_length=10_000)
    role: Literal["admins", "members"] | None = None
    event_id: uuid.UUID | None = Field(default=None, description="the event's attendees")


class NotificationIn(BaseModel):
    audience: AudienceIn
    title: ShortText = Field(min_length=1)
    message: Text = Field(min_length=1)
    type: NotificationType = "info"
    channels: list[Channel] = Field(default=["in_app"], min_length=1)
    data: dict[ShortText, Any] = Field(default_factory=dict)
    expires_at: datetime | None = None
    urgent: bool = Field(default=False, description="not held back by quiet hours")
    key: ShortText | None = Field(
        default=None,
        description="deduplicates: the same key reaches each user and channel once "
        "(default: the Idempotency-Key header)",
    )


class Sent(BaseModel):
    recipients: int
    created: int
    duplicates: int
    opted_out: int
    unreachable: int
    deferred: int = Field(description="held for quiet hours")
    batches: int
    key: str | None


class DeliveryCounts(BaseModel):
    key: str | None
    channels: dict[str, dict[str, int]] = Field(
        description="per channel, how many deliveries are in each status"
    )


class FeedItem(BaseModel):
    id: str
    title: str
    message: str
    type: str
    data: dict[str, Any]
    created_at: str
    is_read: bool
    read_at: str | None


class Feed(BaseModel):
    unread: int
    items: list[FeedItem]


class Unread(BaseModel):
    unread: int


class MarkRead(BaseModel):
    notification_id: uuid.UUID | None = Field(default=None, description="default: all of them")


class Marked(BaseModel):
    marked: int
    unread: int


@router.post("/notifications", status_code=202, responses=WRITE_RESPONSES)
def send_notification(
    body: NotificationIn,
    key: WriteKey,
    idempotency_key: Annotated[ShortText | None, Header()] = None,
) -> Sent:
    """Fan a notification out to users, a role or an event's attendees on the channels;
    deliveries go out through the workers."""
    audience = Audience(
        user_ids=tuple(body.audience.user_ids),
        role=body.audience.role,
        event_id=body.audience.event_id,
    )
    dedup = body.key or idempotency_key
    content = Content(
        title=body.title,
        message=body.message,
        notification_type=body.type,
        channels=tuple(dict.fromkeys(body.channels)),
        data=dict(body.data),
        expires_at=body.expires_at,
        key=dedup,
        urgent=body.urgent,
    )
    result = send(db(), key.organization_id, audience, content)
    return Sent(**result.summary(), key=dedup)


@router.get("/notifications/deliveries")
def list_notification_deliveries(
    key: Key,
    notification_key: Annotated[ShortText | None, Query(alias="key")] = None,
    channel: Channel | None = None,
    status: DeliveryStatus | None = None,
    user_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Cursor | None = None,
) -> Listing[DeliveryRow]:
    """Deliveries (one per user and channel) with their status, newest first."""
    page = list_deliveries(
        db(),
        key.organization_id,
        key=notification_key,
        channel=channel,
        status=status,
        user_id=user_id,
        limit=limit,
        cursor=cursor,
    )
    return Listing(items=page.items, next_cursor=page.next_cursor)


@router.get("/notifications/deliveries/counts")
def count_notification_deliveries(
    key: Key, notification_key: Annotated[ShortText | None, Query(alias="key")] = None
) -> DeliveryCounts:
    """How many deliveries are in each status, per channel (of one notification key)."""
    counts = delivery_counts(db(), key.organization_id, key=notification_key)
    return DeliveryCounts(key=notification_key, channels=counts)


def _viewer(key: ApiKeyIdentity, user_id: uuid.UUID) -> Viewer:
    get_user(db(), key.organization_id, user_id)  # 404 for anyone not of the organization
    return Viewer(key.organization_id, user_id, expires_at=0)


@router.get("/users/{user_id}/feed", tags=["feed"])
def user_feed(
    user_id: uuid.UUID,
    key: Key,
    unread_only: bool = False,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> Feed:
    """The user's in-app feed, newest first, with the unread count."""
    viewer = _viewer(key, user_id)
    items = feed.page(db(), viewer, limit=limit, unread_only=unread_only)
    return Feed(unread=feed.unread_count(db(), viewer), items=[FeedItem(**_item(i)) for i in items])


def _item(item: dict[str, Any]) -> dict[str, Any]:
    return {name: item.get(name) for name in FeedItem.model_fields} | {
        "id": str(item.get("id")),
        "data": dict(item.get("data") or {}),
    }


@router.get("/users/{user_id}/feed/unread-count", tags=["feed"])
def user_unread_count(user_id: uuid.UUID, key: Key) -> Unread:
    """How many of the user's in-app notifications are unread."""
    return Unread(unread=feed.unread_count(db(), _viewer(key, user_id)))


@router.post("/users/{user_id}/feed/read", tags=["feed"], responses=WRITE_RESPONSES)
def mark_feed_read(user_id: uuid.UUID, body: MarkRead, key: WriteKey) -> Marked:
    """Mark one notification of the user's feed read, or all of them."""
    viewer = _viewer(key, user_id)
    marked = feed.mark_read(db(), viewer, body.notification_id)
    return Marked(marked=marked, unread=feed.unread_count(db(), viewer))
