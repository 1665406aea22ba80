"""Sync tasks: a stream's next pages per task (``sync.page``), the staged pages of a full
refresh per load task (``sync.load``); ids only in the arguments."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict
from typing import Any

from core.queues import ROUTES
from models.outbox import sweep
from models.session import get_database
from runs import sync
from workers.app import app
from workers.base_task import PlugsTask
from workers.metrics import queue_depths

log = logging.getLogger(__name__)

#: Seconds between two progress reports of one task (its PROGRESS state and
#: ``task-progress`` event: Flower's view of a page task).
PROGRESS_EVERY = 1.0
#: Seconds to wait for the broker when asking whether other work waits.
WAITING_TIMEOUT = 1.0


@app.task(base=PlugsTask, name="sync.page", bind=True)
def page(self: PlugsTask, organization_id: str, stream_run_id: str) -> dict[str, Any]:
    """Fetch, store and account for the next pages of one stream of a run.

    Flower shows the records done and failed so far: the task's PROGRESS state in the
    result backend, and a ``task-progress`` event whose ``result`` Flower shows on the
    task's page and in its API while the task runs (its keyword arguments name the
    integration and the stream: the outbox label).
    """
    label = _label(self)
    sent = [0.0]

    def progress(report: sync.PageReport) -> None:
        now = time.monotonic()
        if now - sent[0] >= PROGRESS_EVERY:  # not every batch: each is a round trip to Redis
            sent[0] = now
            meta = {"stream_run": stream_run_id, **asdict(report)}
            self.update_state(state="PROGRESS", meta=meta)
            done = f"{report.succeeded} records done, {report.failed} failed in this task"
            self.send_event("task-progress", result=f"{label or report.stream}: {done}")

    db = get_database()
    report = sync.run_pages(
        db,
        uuid.UUID(organization_id),
        uuid.UUID(stream_run_id),
        progress=progress,
        others_waiting=lambda: _others_waiting(self),
    )
    return asdict(report)


@app.task(base=PlugsTask, name="sync.load")
def load(organization_id: str, stream_run_id: str) -> dict[str, Any]:
    """Write staged pages of a full refresh (fetched by ``sync.page``): any worker process
    may run one, so the pages of one stream are written by several at once.  The load that
    finds every page fetched and written finishes the stream."""
    report = sync.load_staged(get_database(), uuid.UUID(organization_id), uuid.UUID(stream_run_id))
    return asdict(report)


def _others_waiting(task: PlugsTask) -> bool:
    """Whether messages wait in this task's queue (other streams, other organizations'
    syncs): then the task hands its worker over after its current transaction instead of
    keeping it for up to ``PAGES_PER_TASK`` of them.  A broker that cannot tell says no."""
    info = task.request.delivery_info or {}
    queue = info.get("routing_key") or ROUTES["sync.*"]
    try:
        return queue_depths(app, [queue], timeout=WAITING_TIMEOUT)[queue] > 0
    except Exception:  # noqa: BLE001 - not knowing is no reason to fail the page
        log.warning("could not read the depth of queue %s", queue, exc_info=True)
        return False


def _label(task: PlugsTask) -> str | None:
    """The integration and stream the outbox named this task with (its kwargsrepr)."""
    label = getattr(task.request, "kwargsrepr", None)
    return label if isinstance(label, str) and label not in ("", "{}") else None


@app.task(base=PlugsTask, name="maintenance.sweep_outbox")
def sweep_outbox() -> dict[str, int]:
    """Publish outbox rows a crash left unpublished, and parked pages now due."""
    db = get_database()
    return {"published": sweep(db), "restarted": sync.restart_stalled(db)}
