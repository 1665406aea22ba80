"""What the maintenance tasks do, as plain functions (tested without Celery too)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import delete, func, select

from core.settings import get_settings
from models import IntegrationLog, Organization
from models.base import utcnow
from models.session import get_database

PURGE_BATCH = 5000


def database_heartbeat() -> dict[str, Any]:
    """Count organizations across the platform: one real round trip to the database."""
    db = get_database()
    with db.system("maintenance.ping: database heartbeat") as session:
        count = session.scalar(select(func.count()).select_from(Organization))
    return {"database": db.engine.dialect.name, "organizations": count, "at": utcnow().isoformat()}


def purge_integration_logs(retention_days: int | None = None) -> int:
    """Delete, in batches, runs that completed more than ``retention_days`` ago.

    Runs still ``running`` are never deleted.  Idempotent: a second call deletes nothing.
    """
    days = retention_days or get_settings().integration_log_retention_days
    cutoff = utcnow() - timedelta(days=days)
    db = get_database()
    deleted = 0
    while True:
        with db.system("maintenance: integration_logs retention") as session:
            batch = (
                select(IntegrationLog.id)
                .where(IntegrationLog.status != "running", IntegrationLog.created_at < cutoff)
                .limit(PURGE_BATCH)
            )
            ids = list(session.scalars(batch))
            if not ids:
                return deleted
            session.execute(delete(IntegrationLog).where(IntegrationLog.id.in_(ids)))
            deleted += len(ids)
