"""Platform maintenance tasks (queue ``maintenance``)."""

from __future__ import annotations

import socket
from typing import Any

from workers import housekeeping
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
