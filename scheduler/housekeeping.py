"""The static housekeeping schedule, next to the tasks it runs.

Per-integration sync schedules are data in the database (later in ``scheduler/``); what is
here runs for the whole platform.  Every entry is idempotent and safe if two beats run.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

HOUSEKEEPING_SCHEDULE: dict[str, dict[str, Any]] = {
    "sweep-outbox": {
        "task": "maintenance.sweep_outbox",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "canary-ping": {
        "task": "maintenance.ping",
        "schedule": 60.0,
        "options": {"expires": 55},
    },
    "purge-integration-logs": {
        "task": "maintenance.purge_integration_logs",
        "schedule": crontab(minute="17", hour="3"),
        "options": {"expires": 3600},
    },
}
