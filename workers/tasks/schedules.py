"""Scheduler tasks (queue ``default``): the beat tick and the schedule watchdog."""

from __future__ import annotations

from typing import Any

from models.session import get_database
from scheduler import dispatch, watchdog
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="scheduler.dispatch_due")
def dispatch_due() -> dict[str, Any]:
    """Start the syncs of every schedule that is due (one slot each, never twice); with
    more than a batch due, a second tick (:func:`dispatch_more`) shares the work."""
    return dispatch.dispatch_due(get_database(), more=_second_tick).summary()


@app.task(base=PlugsTask, name="scheduler.dispatch_more")
def dispatch_more() -> dict[str, Any]:
    """A second tick beside one that found more than a batch due, in another worker
    process: the two claim with SKIP LOCKED, so they split the due schedules.  It asks
    for no further help; finding nothing due (the first one was faster) is fine."""
    return dispatch.dispatch_due(get_database()).summary()


def _second_tick() -> None:
    # Not through the outbox: if it is lost, the first tick does the work alone.  No
    # waiting on a broker that is down (the tick's page tasks wait in the outbox then).
    dispatch_more.apply_async(retry=False, add_to_parent=False)


@app.task(base=PlugsTask, name="scheduler.watchdog")
def check_overdue() -> dict[str, int]:
    """Report integrations whose scheduled sync did not start within the grace period."""
    report = watchdog.check(get_database())
    return {
        "overdue": report.overdue,
        "reported": len(report.reported),
        "recovered": len(report.recovered),
    }
