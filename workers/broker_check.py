"""A worker on a Redis broker checks its broker every ``PLUGS_BROKER_HEARTBEAT`` seconds.

A Redis connection that goes silent (a dead router, a failover: no RST) is not an error
by itself.  A command waits for its socket timeout; a failed acknowledgement is only
logged, and its message keeps counting against the prefetch limit, so after as many
failed acknowledgements as the worker has processes it consumes nothing, forever, though
the broker answers again.  Two checks run in the consumer's event loop:

* a PING that gets no answer within ``PLUGS_BROKER_SOCKET_TIMEOUT``;
* consuming blocked by messages counted as delivered that no task holds (their
  acknowledgements were lost), twice in a row.

Either raises a connection error there, so Celery drops every broker connection, puts
the unacknowledged messages back and connects again ("Connection to broker lost"), as
AMQP heartbeats make it do on RabbitMQ.

Celery sends the worker's own heartbeat event (for Flower) from the same event loop,
retrying the connection forever: on a silent broker that alone holds the loop, and the
checks, until the broker answers again.  This step sends it once instead; a heartbeat
that cannot go is kept with the other unsent events.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import bootsteps
from celery.worker import state
from redis.exceptions import ConnectionError as RedisConnectionError

from core.settings import get_settings

log = logging.getLogger(__name__)


class BrokerCheck(bootsteps.StartStopStep):
    """A consumer step: the two checks above (Redis brokers; AMQP has heartbeats)."""

    requires = ("celery.worker.consumer.tasks:Tasks", "celery.worker.consumer.heart:Heart")

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self.entry: Any = None
        self.stuck = 0

    def start(self, parent: Any) -> None:
        connection = parent.connection
        hub = getattr(parent, "hub", None)
        if hub is None or connection is None or connection.transport.driver_type != "redis":
            return
        self.stuck = 0
        self.entry = hub.call_repeatedly(get_settings().broker_heartbeat, self.check, parent)
        heart = getattr(parent, "heart", None)
        if heart is not None and getattr(heart, "tref", None) is not None:
            heart.timer.cancel(heart.tref)
            heart.tref = heart.timer.call_repeatedly(
                heart.interval, heart._send, ("worker-heartbeat", False)
            )

    def stop(self, parent: Any) -> None:
        if self.entry is not None:
            self.entry.cancel()
            self.entry = None

    shutdown = stop

    def check(self, parent: Any) -> None:
        consumer = parent.task_consumer
        if consumer is None:
            return
        channel = consumer.channel
        try:
            with channel.conn_or_acquire() as client:
                client.ping()
        except channel.connection_errors:
            log.warning("the broker did not answer a PING; connecting again")
            raise
        # Consuming is blocked by deliveries no task holds (running, waiting or due later).
        qos = channel.qos
        held = set(state.reserved_requests) | set(state.scheduled_requests)
        lost = not qos.can_consume() and len(held) < qos.prefetch_count
        self.stuck = self.stuck + 1 if lost else 0
        if self.stuck >= 2:
            log.warning("acknowledgements to the broker were lost; connecting again")
            raise RedisConnectionError("acknowledgements lost: the consumer cannot consume")
