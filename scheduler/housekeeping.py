"""The static beat schedule, next to the tasks it runs.

Per-integration sync schedules are data in the database (:mod:`scheduler.schedules`); one
entry here, the tick ``scheduler.dispatch_due``, starts the due ones every few seconds.
The rest runs for the whole platform.  Every entry is idempotent and safe if two beats
run: the tick claims schedules with row locks and a unique slot, the watchdog and the
token refresh re-check under row locks, the sweepers and purges only act on what is left.
A tick that waited longer than its interval expires: the next one does its work.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

TICK_SECONDS = 5.0


def housekeeping_schedule(tick_seconds: float = TICK_SECONDS) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: the scheduler tick every ``tick_seconds`` and the sweepers."""
    return {
        "dispatch-due-syncs": {
            "task": "scheduler.dispatch_due",
            "schedule": tick_seconds,
            "options": {"expires": max(2 * tick_seconds, 2.0)},
        },
        "schedule-watchdog": {
            "task": "scheduler.watchdog",
            "schedule": 60.0,
            "options": {"expires": 55},
        },
        "sweep-outbox": {
            "task": "maintenance.sweep_outbox",
            "schedule": 15.0,
            "options": {"expires": 14},
        },
        "sweep-webhook-inbox": {
            "task": "webhooks.sweep_inbox",
            "schedule": 30.0,
            "options": {"expires": 29},
        },
        "prune-webhook-inbox": {
            "task": "webhooks.prune_inbox",
            "schedule": crontab(minute="37", hour="3"),
            "options": {"expires": 3600},
        },
        "refresh-idle-tokens": {
            "task": "maintenance.refresh_idle_tokens",
            "schedule": 300.0,
            "options": {"expires": 290},
        },
        "renew-webhook-subscriptions": {
            "task": "webhooks.renew_subscriptions",
            "schedule": 900.0,
            "options": {"expires": 890},
        },
        "sweep-notifications": {
            "task": "notifications.sweep",
            "schedule": 15.0,
            "options": {"expires": 14},
        },
        "sweep-event-deliveries": {
            "task": "events.sweep",
            "schedule": 30.0,
            "options": {"expires": 29},
        },
        "event-reminders": {
            "task": "notifications.event_reminders",
            "schedule": 300.0,
            "options": {"expires": 290},
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
        "purge-schedule-slots": {
            "task": "maintenance.purge_schedule_slots",
            "schedule": crontab(minute="27", hour="3"),
            "options": {"expires": 3600},
        },
        "purge-idempotency-keys": {
            "task": "maintenance.purge_idempotency_keys",
            "schedule": crontab(minute="47", hour="*"),
            "options": {"expires": 3600},
        },
    }


HOUSEKEEPING_SCHEDULE = housekeeping_schedule()
