"""Live in-app notifications over Redis pub/sub: one channel per user
(``plugs:feed:<organization>:<user>``), a JSON event per notification.

Without Redis (the embedded default, ``PLUGS_REDIS_URL`` unset) nothing is published; the
feed's event stream then polls the database instead (see docs/notifications.md).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import redis

from core.settings import get_settings

PREFIX = "plugs:feed"


def topic(organization_id: uuid.UUID, user_id: uuid.UUID) -> str:
    """The pub/sub channel of one user's feed."""
    return f"{PREFIX}:{organization_id}:{user_id}"


@lru_cache(maxsize=4)
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def redis_url() -> str | None:
    url = get_settings().redis_url
    return url.get_secret_value() if url is not None else None


def publish(organization_id: uuid.UUID, user_id: uuid.UUID, event: dict[str, Any]) -> int | None:
    """Publish ``event`` to the user's feed; the number of listeners, None without Redis."""
    url = redis_url()
    if url is None:
        return None
    return int(_client(url).publish(topic(organization_id, user_id), json.dumps(event)))


def publish_many(url: str, events: Sequence[tuple[uuid.UUID, uuid.UUID, dict[str, Any]]]) -> None:
    """Publish each ``(organization_id, user_id, event)`` to that user's feed, all in one
    Redis round trip (a pipeline); raises Redis's errors."""
    pipeline = _client(url).pipeline(transaction=False)
    for organization_id, user_id, event in events:
        pipeline.publish(topic(organization_id, user_id), json.dumps(event))
    pipeline.execute()


def event_of(
    notification_id: uuid.UUID,
    title: str,
    message: str,
    notification_type: str,
    data: dict[str, Any],
    created_at: str,
) -> dict[str, Any]:
    """The JSON shape of a notification in the feed and on its live stream."""
    return {
        "id": str(notification_id),
        "title": title,
        "message": message,
        "type": notification_type,
        "data": data,
        "created_at": created_at,
    }
