"""What an organization's runs and webhook deliveries were: listings with filters, newest
first, a page at a time (:mod:`models.keyset`), for `plugs logs` and the HTTP API.

A running run's counts are its pages' sums so far (the row's counts are written when it
ends); everything is read in the organization's tenant session.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import defer

from core.errors import NotFoundError
from models import keyset
from models.integrations import IntegrationLog
from models.session import Database
from models.webhooks import WebhookDelivery
from runs.progress import running_counts


@dataclass(frozen=True)
class Page:
    """One page of a listing; ``next_cursor`` None: the last."""

    items: list[Any] = field(default_factory=list)
    next_cursor: str | None = None


def list_runs(
    db: Database,
    org_id: uuid.UUID,
    *,
    integration_id: uuid.UUID | None = None,
    status: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 50,
    cursor: str | None = None,
    details: bool = True,
) -> Page:
    """The organization's runs (detached ``IntegrationLog`` rows), newest first: of one
    integration, in one status, created in ``[since, until)``; a running run carries its
    counts so far.  ``details`` False leaves ``response_data`` and ``error_details`` unread
    (a listing that shows neither, the API's, need not fetch and decode them per row;
    reading them on such a run raises)."""
    query = select(IntegrationLog)
    if not details:
        query = query.options(
            defer(IntegrationLog.response_data), defer(IntegrationLog.error_details)
        )
    if integration_id is not None:
        query = query.where(IntegrationLog.integration_id == integration_id)
    if status is not None:
        query = query.where(IntegrationLog.status == status)
    if since is not None:
        query = query.where(IntegrationLog.created_at >= since)
    if until is not None:
        query = query.where(IntegrationLog.created_at < until)
    query = keyset.after(query, IntegrationLog.created_at, IntegrationLog.id, cursor, limit)
    with db.tenant(org_id) as session:
        rows = list(session.scalars(query))
        items, next_cursor = keyset.cut(rows, limit, lambda r: (r.created_at, r.id))
        running = [r.id for r in items if r.status == "running"]
        counts = running_counts(session, running)
        session.expunge_all()
    for run in items:
        if run.id in counts:
            run.records_processed = sum(done for done, _ in counts[run.id].values())
            run.records_failed = sum(failed for _, failed in counts[run.id].values())
    return Page(items, next_cursor)


def get_run(db: Database, org_id: uuid.UUID, run_id: uuid.UUID) -> IntegrationLog:
    """One run of the organization (detached); NotFoundError for any other id."""
    with db.tenant(org_id) as session:
        run = session.get(IntegrationLog, run_id)
        if run is None:
            raise NotFoundError(f"no run with id {run_id}")
        session.expunge(run)
        return run


def failed_records(run: IntegrationLog) -> list[dict[str, Any]]:
    """The run's failed records with their reasons (``stream``, ``record_id``,
    ``reason``...), as many as the run kept (its count of failures is exact)."""
    return list((run.error_details or {}).get("failures") or [])


def list_webhook_deliveries(
    db: Database,
    org_id: uuid.UUID,
    *,
    integration_id: uuid.UUID | None = None,
    status: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page:
    """The organization's stored webhook deliveries (detached), newest first."""
    query = select(WebhookDelivery)
    if integration_id is not None:
        query = query.where(WebhookDelivery.integration_id == integration_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    query = keyset.after(query, WebhookDelivery.received_at, WebhookDelivery.id, cursor, limit)
    with db.tenant(org_id) as session:
        rows = list(session.scalars(query))
        session.expunge_all()
    items, next_cursor = keyset.cut(rows, limit, lambda r: (r.received_at, r.id))
    return Page(items, next_cursor)
