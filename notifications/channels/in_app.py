"""In-app: the notifications row is the delivery; it is also published live to the user's
feed stream (Redis pub/sub; without Redis, stream clients poll the database)."""

from __future__ import annotations

import redis

from core.errors import RetryableError
from notifications import live
from notifications.channels.base import Channel, Message, Sent


class InAppChannel(Channel):
    """The user's in-app feed; never held back by quiet hours."""

    name = "in_app"
    quiet_hours_apply = False

    def send(self, message: Message) -> Sent:
        event = live.event_of(
            message.notification_id,
            message.title,
            message.message,
            message.notification_type,
            message.data,
            message.created_at.isoformat(),
        )
        try:
            listeners = live.publish(message.organization_id, message.recipient.id, event)
        except redis.RedisError as exc:
            raise RetryableError(
                f"publishing to the live feed failed: {type(exc).__name__}"
            ) from exc
        provider = "feed" if listeners is None else "redis"
        return Sent(provider=provider, status="delivered")
