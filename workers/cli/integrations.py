"""`plugs integrations` (`plugs sync` and `plugs logs` are in :mod:`workers.cli.runs`)."""

from __future__ import annotations

import sys
import uuid
from datetime import datetime
from typing import Any

import click

from connectors import integrations
from connectors.registry import installed
from core.errors import PlugsError
from models.session import get_database
from scheduler import schedules
from scheduler.schedules import set_schedule
from scheduler.timing import Timing
from workers.cli.params import KEY_VALUE, UUID
from workers.cli.runs import run_line as _run_line


@click.group("integrations")
def integrations_group() -> None:
    """Connections of organizations to vendors."""


_TOKEN = click.option("--token", help="An API token ('-' reads it from standard input).")
_CREDENTIALS = click.option(
    "--credentials", "credentials_json", help="Credential fields as a JSON object."
)
_SETTING = click.option(
    "--setting",
    "settings",
    type=KEY_VALUE,
    multiple=True,
    help="key=value, repeatable (e.g. base_url=https://...).",
)


def _credentials(token: str | None, credentials_json: str | None) -> dict[str, Any]:
    """The credential fields of --credentials and --token (read from stdin for '-')."""
    if token == "-":
        token = sys.stdin.readline().strip()
    return integrations.credentials_from(token, credentials_json, what="--credentials")


@integrations_group.command("add")
@click.argument("provider")
@click.option("--org", "org_id", type=UUID, required=True, help="The organization's id.")
@_TOKEN
@_CREDENTIALS
@_SETTING
@click.option("--name", help="A name of yours for it (shown by list and show).")
@click.option("--schedule", "every", help="Sync on an interval, e.g. 'every 15m'.")
@click.option("--cron", help="Sync on a cron expression, e.g. '0 * * * *'.")
@click.option("--timezone", help="IANA time zone of --cron (default UTC).")
@click.option(
    "--no-verify", is_flag=True, help="Keep it without the check call to the vendor (test)."
)
def add(
    provider: str,
    org_id: uuid.UUID,
    token: str | None,
    credentials_json: str | None,
    settings: tuple[tuple[str, str], ...],
    name: str | None,
    every: str | None,
    cron: str | None,
    timezone: str | None,
    no_verify: bool,
) -> None:
    """Connect an organization to PROVIDER and print the integration's id.

    The credentials are checked first with one authenticated call to the vendor (what
    `plugs integrations test` does); if it fails nothing is kept, unless --no-verify."""
    timing = None
    if every or cron or timezone:  # checked before anything is written
        timing = Timing.parse(every=every, cron=cron, timezone=timezone)
    credentials = _credentials(token, credentials_json)
    db = get_database()
    try:
        created = integrations.add_checked_integration(
            db, org_id, provider, credentials, dict(settings), name=name, verify=not no_verify
        )
    except integrations.CredentialsRefused as exc:
        raise PlugsError(f"{exc} (--no-verify adds it unchecked)") from None
    if timing is not None:
        set_schedule(db, created.id, timing)
    click.echo(created.id)


@integrations_group.command("list")
@click.option("--org", "org_id", type=UUID, help="Only this organization's.")
def list_(org_id: uuid.UUID | None) -> None:
    """List integrations: id, provider, status, last sync, organization, name."""
    for i in integrations.list_integrations(get_database(), org_id):
        last = i.last_sync.isoformat(timespec="seconds") if i.last_sync else "never"
        paused = "" if i.is_active else " (paused)"
        name = (i.metadata_ or {}).get("name")
        click.echo(
            f"{i.id}  {i.provider:<10} {i.status:<12} {last:<25} {i.organization_id}{paused}"
            + (f"  {name}" if name else "")
        )


@integrations_group.command("providers")
def providers() -> None:
    """List the installed connectors."""
    for name in installed():
        click.echo(name)


@integrations_group.command("show")
@click.argument("integration_id", type=UUID)
@click.option("--runs", default=5, show_default=True, type=click.IntRange(0, 100))
def show(integration_id: uuid.UUID, runs: int) -> None:
    """Show an integration: provider, name, status, settings, schedules and last runs
    (credentials are named, never shown)."""
    db = get_database()
    view = integrations.describe_integration(db, integration_id, runs=runs)
    integration = view.integration
    last = integration.last_sync.isoformat(timespec="seconds") if integration.last_sync else "never"
    state = "active" if integration.is_active else "paused (schedules and webhooks wait)"
    key = f" (encrypted with key {view.key_id})" if view.key_id else ""
    lines = [
        ("id", str(integration.id)),
        ("provider", f"{integration.provider} ({integration.integration_type})"),
        ("name", view.name or "-"),
        ("organization", str(integration.organization_id)),
        ("status", f"{integration.status}, {state}"),
        ("last sync", last),
        ("credentials", ", ".join(view.credential_fields) + key),
        ("settings", ", ".join(f"{k}={v}" for k, v in view.settings.items()) or "-"),
    ]
    if view.last_error:
        lines.append(("last error", view.last_error))
    for label, value in lines:
        click.echo(f"{label:<13} {value}")
    found = schedules.list_schedules(db, integration.organization_id, integration_id=integration.id)
    click.echo(f"{'schedules':<13} {'-' if not found else ''}".rstrip())
    for row in found:
        click.echo(
            f"  {row.schedule}; next {_when(row.next_run_at)}, last {_when(row.last_run_at)} "
            f"{row.last_slot_status or ''}".rstrip()
        )
    if runs:
        click.echo(f"{'runs':<13} {'-' if not view.runs else ''}".rstrip())
        for run in view.runs:
            click.echo(f"  {_run_line(run)}")


@integrations_group.command("update")
@click.argument("integration_id", type=UUID)
@_TOKEN
@_CREDENTIALS
@_SETTING
@click.option("--unset", multiple=True, help="Remove this setting (repeatable).")
@click.option("--name", help="A new name.")
def update(
    integration_id: uuid.UUID,
    token: str | None,
    credentials_json: str | None,
    settings: tuple[tuple[str, str], ...],
    unset: tuple[str, ...],
    name: str | None,
) -> None:
    """Change an integration's credentials (merged over the stored ones, encrypted),
    settings or name; check the result with `plugs integrations test`."""
    changed = integrations.update_integration(
        get_database(),
        integration_id,
        credentials=_credentials(token, credentials_json),
        settings=dict(settings),
        unset=unset,
        name=name,
    )
    click.echo(f"updated {integration_id}: {', '.join(changed)}")


@integrations_group.command("pause")
@click.argument("integration_id", type=UUID)
def pause(integration_id: uuid.UUID) -> None:
    """Pause scheduled and webhook-driven work: schedules stop, webhooks are still
    received and stored but wait in the inbox until `resume`."""
    schedules.set_active(get_database(), integration_id, False)
    click.echo(f"paused {integration_id}: schedules stop, webhook deliveries wait")


@integrations_group.command("resume")
@click.argument("integration_id", type=UUID)
def resume(integration_id: uuid.UUID) -> None:
    """Resume: schedules go on at their next due time, waiting webhooks are processed."""
    waiting = schedules.set_active(get_database(), integration_id, True)
    click.echo(f"resumed {integration_id}: {waiting} waiting webhook deliveries enqueued")


@integrations_group.command("remove")
@click.argument("integration_id", type=UUID)
def remove(integration_id: uuid.UUID) -> None:
    """Remove an integration (soft delete): its schedules are cleared, its webhook
    subscriptions at the vendor deleted, and its webhooks answered 404 from then on."""
    removal = integrations.remove_integration(get_database(), integration_id)
    for problem in removal.problems:
        click.echo(f"warning: {problem}", err=True)
    click.echo(
        f"removed {integration_id}: {removal.schedules} schedules cleared, "
        f"{removal.subscriptions} vendor subscriptions deleted"
    )


@integrations_group.command("test")
@click.argument("integration_id", type=UUID)
def test(integration_id: uuid.UUID) -> None:
    """Make one cheap authenticated call to the vendor and say ok or the vendor's error
    (exit 1); ok marks the integration connected, refused credentials mark it error."""
    check = integrations.check_integration(get_database(), integration_id)
    if not check.ok:
        raise PlugsError(f"failed: {check.message}")
    click.echo(f"ok: {check.message} ({check.seconds:.2f} s)")


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"


COMMANDS = [integrations_group]
