"""Scheduler tasks (queue ``default``): the beat tick and the schedule watchdog."""

from __future__ import annotations

from typing import Any

from models.session import get_database
from scheduler import dispatch, watchdog
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="scheduler.dispatch_due")
def dispatch_due() -> dict[str, Any]:
    """Start the syncs of every schedule that is due (one slot each, never twice)."""
    return dispatch.dispatch_due(get_database()).summary()


@app.task(base=PlugsTask, name="scheduler.watchdog")
def check_overdue() -> dict[str, int]:
    """Report integrations whose scheduled sync did not start within the grace period."""
    report = watchdog.check(get_database())
    return {
        "overdue": report.overdue,
        "reported": len(report.reported),
        "recovered": len(report.recovered),
    }
