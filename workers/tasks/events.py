"""Tasks of the events to the host product (queue ``notifications``): ids in, counts out."""

from __future__ import annotations

import uuid

from events import delivery
from models.session import get_database
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="events.deliver")
def deliver(organization_id: str, delivery_id: str) -> str:
    """One attempt of one delivery, claimed first: a redelivered task sends nothing twice."""
    return delivery.deliver(get_database(), uuid.UUID(organization_id), uuid.UUID(delivery_id))


@app.task(base=PlugsTask, name="events.sweep")
def sweep() -> dict[str, int]:
    """Enqueue again deliveries whose task was lost or whose worker died mid-send."""
    return {"enqueued": delivery.sweep(get_database())}
