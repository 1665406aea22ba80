"""Webhook tasks (queue ``webhooks``): process a stored delivery, sweep and prune the inbox."""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from typing import Any

from core.errors import RetryableError
from models.session import get_database
from runs import inbox
from workers.app import app
from workers.base_task import PlugsTask

log = logging.getLogger(__name__)


@app.task(base=PlugsTask, name="webhooks.process", max_retries=None)
def process(organization_id: str, delivery_id: str) -> dict[str, Any]:
    """Apply a stored delivery's events once and write its integration_logs row.

    A vendor error worth retrying is retried with backoff by the base task; the delivery's
    own attempt cap (``PLUGS_WEBHOOK_MAX_ATTEMPTS``) marks it failed with its reason.
    """
    report = inbox.process(get_database(), uuid.UUID(organization_id), uuid.UUID(delivery_id))
    return asdict(report)


@app.task(base=PlugsTask, name="webhooks.sweep_inbox")
def sweep_inbox() -> dict[str, int]:
    """Enqueue again stored deliveries whose task was lost."""
    return {"enqueued": inbox.sweep(get_database())}


@app.task(base=PlugsTask, name="webhooks.prune_inbox")
def prune_inbox(retention_days: int | None = None) -> dict[str, int]:
    """Delete processed deliveries older than the retention period."""
    return {"deleted": inbox.prune(get_database(), retention_days=retention_days)}


@app.task(base=PlugsTask, name="webhooks.process_many")
def process_many(deliveries: list[str]) -> dict[str, int]:
    """Process deliveries the receiver stored together (``"org_id:delivery_id"`` each).

    One that hits a vendor error worth retrying (or crashes) is handed to its own
    ``webhooks.process`` task, which retries it with backoff and its attempt cap; the
    others are not held up."""
    db = get_database()
    counts = {"processed": 0, "retrying": 0}
    for pair in deliveries:
        organization_id, delivery_id = pair.split(":", 1)
        try:
            inbox.process(db, uuid.UUID(organization_id), uuid.UUID(delivery_id))
            counts["processed"] += 1
        except RetryableError:
            process.apply_async(args=[organization_id, delivery_id], countdown=5)
            counts["retrying"] += 1
        except Exception:  # noqa: BLE001 - one delivery's bug must not hold up the batch
            log.exception("webhook delivery %s crashed; handed to its own task", delivery_id)
            process.apply_async(args=[organization_id, delivery_id], countdown=5)
            counts["retrying"] += 1
    return counts
