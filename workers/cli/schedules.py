"""`plugs schedules`: when integrations sync, as data the next beat tick reads."""

from __future__ import annotations

import uuid
from datetime import datetime

import click

from models.session import get_database
from scheduler import schedules
from scheduler.timing import EVERY_FORMS, Timing
from workers.cli.params import UUID


@click.group("schedules")
def schedules_group() -> None:
    """Per-integration sync schedules (take effect at the next beat tick)."""


@schedules_group.command("set")
@click.argument("integration_id", type=UUID)
@click.option("--every", help=f"An interval: {EVERY_FORMS}.")
@click.option("--cron", "cron", help="A cron expression, e.g. '0 * * * *'.")
@click.option("--timezone", help="IANA time zone of --cron (default UTC), e.g. Europe/Paris.")
@click.option("--stream", "streams", multiple=True, help="Only this stream (repeatable).")
def set_(
    integration_id: uuid.UUID,
    every: str | None,
    cron: str | None,
    timezone: str | None,
    streams: tuple[str, ...],
) -> None:
    """Sync INTEGRATION_ID on a schedule; prints the schedule and its first due time."""
    timing = Timing.parse(every=every, cron=cron, timezone=timezone)
    schedule = schedules.set_schedule(get_database(), integration_id, timing, streams=streams)
    click.echo(f"{schedules.describe_schedule(schedule)}; next run {_when(schedule.next_run_at)}")


@schedules_group.command("clear")
@click.argument("integration_id", type=UUID)
@click.option("--stream", "streams", multiple=True, help="Only the schedule of these streams.")
def clear(integration_id: uuid.UUID, streams: tuple[str, ...]) -> None:
    """Remove INTEGRATION_ID's schedules (its syncs then run only when asked)."""
    removed = schedules.clear_schedules(
        get_database(), integration_id, streams=list(streams) if streams else None
    )
    click.echo(f"removed {removed} schedule{'' if removed == 1 else 's'}")


@schedules_group.command("pause")
@click.argument("integration_id", type=UUID)
def pause(integration_id: uuid.UUID) -> None:
    """Pause INTEGRATION_ID (as `plugs integrations pause`): its schedules stop and its
    webhook deliveries wait in the inbox."""
    schedules.set_active(get_database(), integration_id, False)
    click.echo(f"paused {integration_id}")


@schedules_group.command("resume")
@click.argument("integration_id", type=UUID)
def resume(integration_id: uuid.UUID) -> None:
    """Resume INTEGRATION_ID: its schedules go on at their next due time and the webhook
    deliveries that waited are processed."""
    waiting = schedules.set_active(get_database(), integration_id, True)
    click.echo(f"resumed {integration_id}: {waiting} waiting webhook deliveries enqueued")


@schedules_group.command("list")
@click.option("--org", "org_id", type=UUID, help="Only this organization's.")
def list_(org_id: uuid.UUID | None) -> None:
    """Integration, provider, schedule, next run, last run, and the last slot's state
    (the status of the run it started, or skipped)."""
    for row in schedules.list_schedules(get_database(), org_id):
        paused = " (paused)" if not row.active else ""
        click.echo(
            f"{row.integration_id}  {row.provider:<10} {row.schedule:<32} "
            f"next {_when(row.next_run_at):<25} last {_when(row.last_run_at):<25} "
            f"{row.last_slot_status or '-'}{paused}"
        )


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "never"


COMMANDS = [schedules_group]
