"""Sync tasks: one vendor page per task, ids only in the arguments."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from models.outbox import sweep
from models.session import get_database
from runs import sync
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="sync.page", bind=True)
def page(self: PlugsTask, organization_id: str, stream_run_id: str) -> dict[str, Any]:
    """Fetch, store and account for the next pages of one stream of a run.

    Flower shows the records done and failed so far as the task's PROGRESS state.
    """

    def progress(report: sync.PageReport) -> None:
        self.update_state(state="PROGRESS", meta={"stream_run": stream_run_id, **asdict(report)})

    db = get_database()
    report = sync.run_pages(
        db, uuid.UUID(organization_id), uuid.UUID(stream_run_id), progress=progress
    )
    return asdict(report)


@app.task(base=PlugsTask, name="maintenance.sweep_outbox")
def sweep_outbox() -> dict[str, int]:
    """Publish outbox rows a crash left unpublished, and parked pages now due."""
    db = get_database()
    return {"published": sweep(db), "restarted": sync.restart_stalled(db)}
