"""`plugs status`: is the platform working?  Workers that answer a ping, messages waiting
per queue, the webhook inbox and outbox backlogs, and the integrations that are failing
(status ``error``, or their last finished sync failed).

Exit code 1 when no worker answers the ping or the database or broker cannot be read, so
a script or a container healthcheck can use it.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import click
from sqlalchemy import and_, func, or_, select

from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.session import PlugsSession, get_database
from workers.metrics import inbox_backlog, outbox_backlog, queue_depths

#: At most this many failing integrations are listed (the count is always complete).
FAILING_SHOWN = 50


@dataclass
class FailingIntegration:
    integration_id: uuid.UUID
    organization_id: uuid.UUID
    provider: str
    status: str
    last_run_status: str | None
    last_run_at: datetime | None
    message: str | None


@dataclass
class Status:
    """What `plugs status` found; ``problems`` names what could not be read."""

    workers: list[str] = field(default_factory=list)
    queues: dict[str, int] = field(default_factory=dict)
    inbox: dict[str, int] = field(default_factory=dict)
    inbox_oldest_seconds: float | None = None
    outbox: dict[str, int] = field(default_factory=dict)
    failing_total: int = 0
    failing: list[FailingIntegration] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return bool(self.workers) and not self.problems


def failing_integrations(session: PlugsSession) -> tuple[int, list[FailingIntegration]]:
    """Active integrations in status ``error`` or whose last finished sync run failed:
    how many, and the first :data:`FAILING_SHOWN`."""
    latest = (
        select(IntegrationLog.integration_id, func.max(IntegrationLog.created_at).label("at"))
        .where(IntegrationLog.operation == "sync", IntegrationLog.status != "running")
        .group_by(IntegrationLog.integration_id)
        .subquery()
    )
    query = (
        select(Integration, IntegrationLog)
        .outerjoin(latest, latest.c.integration_id == Integration.id)
        .outerjoin(
            IntegrationLog,
            and_(
                IntegrationLog.integration_id == Integration.id,
                IntegrationLog.created_at == latest.c.at,
            ),
        )
        .where(
            Integration.is_active.is_(True),
            or_(Integration.status == "error", IntegrationLog.status == "failed"),
        )
    )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = session.execute(
        query.order_by(Integration.provider, Integration.id).limit(FAILING_SHOWN)
    )
    found = [
        FailingIntegration(
            integration.id,
            integration.organization_id,
            integration.provider,
            integration.status,
            run.status if run else None,
            (run.completed_at or run.created_at) if run else None,
            _first_line(run.message) if run else None,
        )
        for integration, run in rows.tuples()
    ]
    return total, found


def _first_line(text: str | None) -> str | None:
    return text.strip().splitlines()[0][:160] if text and text.strip() else None


def gather(ping_timeout: float) -> Status:
    """Read everything `plugs status` shows; a source that fails is named in ``problems``."""
    from workers.app import app

    status = Status()
    try:
        status.queues = queue_depths(app)
    except Exception as exc:  # noqa: BLE001 - shown, and the exit code says it
        status.problems.append(f"broker unreachable: {_describe(exc)}")
    else:
        replies = app.control.ping(timeout=ping_timeout) or []
        status.workers = sorted(name for reply in replies for name in reply)
    try:
        with get_database().system("plugs status: backlogs and failing integrations") as session:
            now = utcnow()
            backlog = inbox_backlog(session)
            status.inbox = {provider: count for provider, (count, _) in backlog.items()}
            oldest = [first for _, first in backlog.values() if first is not None]
            if oldest:
                status.inbox_oldest_seconds = (now - min(oldest)).total_seconds()
            status.outbox = outbox_backlog(session, now)
            status.failing_total, status.failing = failing_integrations(session)
    except Exception as exc:  # noqa: BLE001 - shown, and the exit code says it
        status.problems.append(f"database unreachable: {_describe(exc)}")
    return status


def _describe(exc: BaseException) -> str:
    from core.redaction import Redactor
    from core.settings import get_settings

    first = (str(exc).strip() or type(exc).__name__).splitlines()[0]
    return Redactor.from_settings(get_settings())(first)[:300]


def render(status: Status, ping_timeout: float) -> list[str]:
    """The human-readable report, line by line."""
    lines = [f"Workers answering a ping within {ping_timeout:g}s: {len(status.workers)}"]
    lines += [f"  {name}" for name in status.workers]
    if status.queues:
        lines.append("Queues (messages waiting):")
        width = max(len(q) for q in status.queues)
        lines += [f"  {q:<{width}}  {n}" for q, n in status.queues.items()]
    if not status.problems or status.outbox:
        inbox_total = sum(status.inbox.values())
        age = status.inbox_oldest_seconds
        oldest = f" (oldest {age:.0f}s ago)" if age is not None else ""
        by_provider = ", ".join(f"{p} {n}" for p, n in sorted(status.inbox.items()))
        lines.append(
            f"Webhook inbox not processed: {inbox_total}{oldest}"
            + (f": {by_provider}" if by_provider else "")
        )
        outbox = status.outbox
        lines.append(
            f"Outbox not published: {outbox.get('due', 0)} due, {outbox.get('parked', 0)} parked"
        )
        lines.append(f"Failing integrations: {status.failing_total}")
        lines += [_failing_line(f) for f in status.failing]
        if status.failing_total > len(status.failing):
            lines.append(f"  ... and {status.failing_total - len(status.failing)} more")
    lines += [f"Problem: {problem}" for problem in status.problems]
    if not status.workers and not any("broker" in p for p in status.problems):
        lines.append("Problem: no worker answered the ping (start one with `plugs worker`)")
    return lines


def _failing_line(f: FailingIntegration) -> str:
    run = f"last run {f.last_run_status}" if f.last_run_status else "no finished run"
    when = f" at {f.last_run_at:%Y-%m-%d %H:%M:%S}Z" if f.last_run_at else ""
    message = f": {f.message}" if f.message else ""
    return (
        f"  {f.integration_id}  {f.provider}  organization {f.organization_id}  "
        f"status {f.status}, {run}{when}{message}"
    )


@click.command("status")
@click.option(
    "--timeout",
    "ping_timeout",
    type=click.FloatRange(0.1, 60),
    default=2.0,
    show_default=True,
    help="Seconds to wait for workers to answer the ping.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead.")
def status(ping_timeout: float, as_json: bool) -> None:
    """Workers alive, queue depths, backlogs and failing integrations (exit 1 when no worker
    answers or the database or broker cannot be read)."""
    found = gather(ping_timeout)
    if as_json:
        click.echo(json.dumps(_jsonable(found), default=str, indent=2))
    else:
        click.echo("\n".join(render(found, ping_timeout)))
    if not found.healthy:
        click.get_current_context().exit(1)


def _jsonable(status: Status) -> dict[str, Any]:
    return {**asdict(status), "healthy": status.healthy}


COMMANDS = [status]
