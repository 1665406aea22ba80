"""Platform maintenance tasks (queue ``maintenance``)."""

from __future__ import annotations

import socket
from typing import Any

from core.settings import get_settings
from models.api_keys import purge_idempotency_keys as purge_stored_answers
from models.session import get_database
from runs import token_refresh
from scheduler import maintenance as housekeeping
from scheduler import schedules
from workers.app import app
from workers.base_task import PlugsTask


@app.task(base=PlugsTask, name="maintenance.ping")
def ping() -> dict[str, Any]:
    """Prove the worker reaches the database: a canary for health checks and `plugs status`."""
    return {"worker": socket.gethostname(), **housekeeping.database_heartbeat()}


@app.task(base=PlugsTask, name="maintenance.purge_integration_logs")
def purge_integration_logs(retention_days: int | None = None) -> dict[str, int]:
    """Delete finished integration_logs rows older than the retention period."""
    return {"deleted": housekeeping.purge_integration_logs(retention_days)}


@app.task(base=PlugsTask, name="maintenance.purge_schedule_slots")
def purge_schedule_slots(retention_days: int | None = None) -> dict[str, int]:
    """Delete schedule slot records older than the integration_logs retention period."""
    days = retention_days or get_settings().integration_log_retention_days
    return {"deleted": schedules.purge_slots(get_database(), days)}


@app.task(base=PlugsTask, name="maintenance.purge_idempotency_keys")
def purge_idempotency_keys() -> dict[str, int]:
    """Delete the API's stored answers to Idempotency-Keys past their 24 hours."""
    return {"deleted": purge_stored_answers(get_database())}


@app.task(base=PlugsTask, name="maintenance.refresh_idle_tokens")
def refresh_idle_tokens() -> dict[str, int]:
    """Refresh the OAuth tokens of idle integrations that expire within the margin."""
    report = token_refresh.refresh_idle(get_database())
    return {"checked": report.checked, "refreshed": report.refreshed, "failed": report.failed}
