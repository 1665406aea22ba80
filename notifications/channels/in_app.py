"""In-app: the notifications row is the delivery; it is also published live to the user's
feed stream (Redis pub/sub; without Redis, stream clients poll the database)."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from core.errors import RetryableError
from notifications import live
from notifications.channels.base import Channel, Message, Sent


class InAppChannel(Channel):
    """The user's in-app feed; never held back by quiet hours."""

    name = "in_app"
    quiet_hours_apply = False

    def send(self, message: Message) -> Sent:
        outcome = self.send_many([message])[0]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def send_many(self, messages: Sequence[Message]) -> list[Sent | Exception]:
        """Publish every message to its user's feed in one Redis round trip (a pipeline)."""
        url = live.redis_url()
        if url is None:
            return [Sent(provider="feed", status="delivered") for _ in messages]
        events = [
            (
                message.organization_id,
                message.recipient.id,
                live.event_of(
                    message.notification_id,
                    message.title,
                    message.message,
                    message.notification_type,
                    message.data,
                    message.created_at.isoformat(),
                ),
            )
            for message in messages
        ]
        try:
            live.publish_many(url, events)
        except redis.RedisError as exc:
            error = RetryableError(f"publishing to the live feed failed: {type(exc).__name__}")
            return [error for _ in messages]
        return [Sent(provider="redis", status="delivered") for _ in messages]
