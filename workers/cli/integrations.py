"""`plugs integrations`, `plugs sync`, `plugs logs`."""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any

import click

from connectors import integrations
from connectors.registry import installed
from core.errors import PlugsError
from models.integrations import IntegrationLog
from models.session import get_database
from runs import sync
from scheduler.schedules import set_schedule
from scheduler.timing import Timing
from workers.cli.params import KEY_VALUE, UUID

FINISHED = ("success", "failed", "partial")


@click.group("integrations")
def integrations_group() -> None:
    """Connections of organizations to vendors."""


@integrations_group.command("add")
@click.argument("provider")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@click.option("--token", help="An API token ('-' reads it from standard input).")
@click.option("--credentials", "credentials_json", help="Credential fields as a JSON object.")
@click.option(
    "--setting",
    "settings",
    type=KEY_VALUE,
    multiple=True,
    help="key=value, repeatable (e.g. base_url=https://...).",
)
@click.option("--schedule", "every", help="Sync on an interval, e.g. 'every 15m'.")
@click.option("--cron", help="Sync on a cron expression, e.g. '0 * * * *'.")
@click.option("--timezone", help="IANA time zone of --cron (default UTC).")
def add(
    provider: str,
    org_id: uuid.UUID,
    token: str | None,
    credentials_json: str | None,
    settings: tuple[tuple[str, str], ...],
    every: str | None,
    cron: str | None,
    timezone: str | None,
) -> None:
    """Connect an organization to PROVIDER and print the integration's id."""
    timing = None
    if every or cron or timezone:  # checked before anything is written
        timing = Timing.parse(every=every, cron=cron, timezone=timezone)
    credentials: dict[str, Any] = {}
    if credentials_json:
        try:
            credentials = json.loads(credentials_json)
        except json.JSONDecodeError as exc:
            raise PlugsError(f"--credentials is not JSON: {exc.msg}") from None
        if not isinstance(credentials, dict):
            raise PlugsError("--credentials must be a JSON object")
    if token is not None:
        credentials["token"] = sys.stdin.readline().strip() if token == "-" else token
    created = integrations.add_integration(
        get_database(), org_id, provider, credentials, dict(settings)
    )
    if timing is not None:
        set_schedule(get_database(), created.id, timing)
    click.echo(created.id)


@integrations_group.command("list")
@click.option("--org", "org_id", type=UUID, help="Only this organization's.")
def list_(org_id: uuid.UUID | None) -> None:
    """List integrations: id, provider, status, last sync, organization."""
    for i in integrations.list_integrations(get_database(), org_id):
        last = i.last_sync.isoformat(timespec="seconds") if i.last_sync else "never"
        paused = "" if i.is_active else " (paused)"
        click.echo(
            f"{i.id}  {i.provider:<10} {i.status:<12} {last:<25} {i.organization_id}{paused}"
        )


@integrations_group.command("providers")
def providers() -> None:
    """List the installed connectors."""
    for name in installed():
        click.echo(name)


class SyncGroup(click.Group):
    """`plugs sync INTEGRATION_ID ...` runs a sync; `plugs sync replay RUN_ID` replays one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sync", cls=SyncGroup)
def sync_group() -> None:
    """Run syncs: `plugs sync INTEGRATION_ID [--stream S] [--full] [--wait]`."""


@sync_group.command("run")
@click.argument("integration_id", type=UUID)
@click.option("--stream", "streams", multiple=True, help="Only this stream (repeatable).")
@click.option("--full", is_flag=True, help="Ignore the saved cursors: a full refresh.")
@click.option("--wait", is_flag=True, help="Block until the run ends; exit 1 if it failed.")
@click.option("--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait.")
def run(
    integration_id: uuid.UUID, streams: tuple[str, ...], full: bool, wait: bool, timeout: float
) -> None:
    """Start a sync of INTEGRATION_ID and print the run's id."""
    db = get_database()
    org_id = integrations.organization_of(db, integration_id)
    run_id = sync.start_run(
        db, org_id, integration_id, streams=list(streams) or None, full_refresh=full
    )
    click.echo(run_id)
    if wait:
        _wait(org_id, run_id, timeout)


@sync_group.command("replay")
@click.argument("run_id", type=UUID)
@click.option("--wait", is_flag=True, help="Block until the replay ends.")
@click.option("--timeout", default=3600.0, show_default=True)
def replay(run_id: uuid.UUID, wait: bool, timeout: float) -> None:
    """Re-process only the records that failed in RUN_ID; prints the new run's id."""
    db = get_database()
    org_id = integrations.organization_of_run(db, run_id)
    new_run = sync.replay_run(db, org_id, run_id)
    click.echo(new_run)
    if wait:
        _wait(org_id, new_run, timeout)


def _wait(org_id: uuid.UUID, run_id: uuid.UUID, timeout: float) -> None:
    db = get_database()
    deadline = time.monotonic() + timeout
    while True:
        with db.tenant(org_id) as session:
            run = session.get(IntegrationLog, run_id)
            assert run is not None
            if run.status in FINISHED:
                break
        if time.monotonic() > deadline:
            raise PlugsError(f"run {run_id} still running after {timeout:.0f}s (is a worker up?)")
        time.sleep(0.5)
    click.echo(f"{run.status}: {run.records_processed} processed, {run.records_failed} failed")
    if run.status == "failed":
        raise PlugsError(run.message or "the run failed")


@click.command("logs")
@click.argument("integration_id", type=UUID)
@click.option("--last", default=10, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run, with failures.")
def logs(integration_id: uuid.UUID, last: int, as_json: bool) -> None:
    """Show an integration's runs, newest first."""
    for run in integrations.recent_runs(get_database(), integration_id, last):
        if as_json:
            click.echo(json.dumps(_run_json(run), default=str))
            continue
        started = run.started_at.isoformat(timespec="seconds") if run.started_at else "-"
        click.echo(
            f"{run.id}  {started}  {run.operation:<7} {run.status:<8} "
            f"{run.records_processed:>7} ok {run.records_failed:>5} failed  {run.message or ''}"
        )


def _run_json(run: IntegrationLog) -> dict[str, Any]:
    return {
        "id": run.id,
        "integration_id": run.integration_id,
        "operation": run.operation,
        "status": run.status,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "records_processed": run.records_processed,
        "records_failed": run.records_failed,
        "message": run.message,
        "error_details": run.error_details,
        "request_data": run.request_data,
    }


COMMANDS = [integrations_group, sync_group, logs]
