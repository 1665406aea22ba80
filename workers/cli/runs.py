"""`plugs sync`, `plugs runs watch|cancel` and `plugs logs`: start runs, watch them as they
go (a live table per stream on a terminal, a plain line every few seconds otherwise),
cancel them, and read what they did."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import click
from rich.console import Console
from rich.live import Live
from rich.table import Table

from connectors import integrations
from core.errors import PlugsError
from models.integrations import IntegrationLog
from models.session import get_database
from runs import history, sync
from runs.lifecycle import cancel_run
from runs.progress import RunProgress, run_progress
from workers.cli.params import UUID

#: A plain progress line this often (s) when the output is not a terminal.
PLAIN_EVERY = 5.0
#: How long `--wait` looks for a worker that consumes the run's queue before giving up (s).
WORKER_CHECK = 8.0
#: How long `--wait` watches for a worker to take the run before asking the workers (s):
#: a run a worker has taken needs no question (the broadcast waits 1.5 s for replies).
CLAIM_WAIT = 1.0
#: `--wait` looks at the run again after a tenth of its time so far, at least every
#: POLL_EVERY and at most every POLL_FIRST seconds: a short run is seen ended within about
#: a tenth of its own time, a long one every half second.
POLL_FIRST, POLL_EVERY = 0.02, 0.5
#: Failed records listed under a run by text-mode `plugs logs` (--json lists them all).
LISTED_FAILURES = 10


class SyncGroup(click.Group):
    """`plugs sync INTEGRATION_ID ...` runs a sync; `plugs sync replay RUN_ID` replays one."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("-h", "--help"):
            args = ["run", *args]
        return super().parse_args(ctx, args)


@click.group("sync", cls=SyncGroup)
def sync_group() -> None:
    """Run syncs: `plugs sync INTEGRATION_ID [--stream S] [--full] [--wait]`."""


_TIMEOUT = click.option(
    "--timeout", default=3600.0, show_default=True, help="Seconds to wait with --wait."
)


@sync_group.command("run")
@click.argument("integration_id", type=UUID)
@click.option("--stream", "streams", multiple=True, help="Only this stream (repeatable).")
@click.option("--full", is_flag=True, help="Ignore the saved cursors: a full refresh.")
@click.option(
    "--wait", is_flag=True, help="Show the run's progress until it ends; exit 1 if it failed."
)
@_TIMEOUT
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
        _watch(org_id, run_id, timeout, check_worker=True)


@sync_group.command("replay")
@click.argument("run_id", type=UUID)
@click.option("--wait", is_flag=True, help="Show the replay's progress until it ends.")
@_TIMEOUT
def replay(run_id: uuid.UUID, wait: bool, timeout: float) -> None:
    """Re-process only the records that failed in RUN_ID; prints the new run's id."""
    db = get_database()
    org_id = integrations.organization_of_run(db, run_id)
    new_run = sync.replay_run(db, org_id, run_id)
    click.echo(new_run)
    if wait:
        _watch(org_id, new_run, timeout, check_worker=True)


@click.group("runs")
def runs_group() -> None:
    """Watch and cancel sync runs."""


@runs_group.command("watch")
@click.argument("run_id", type=UUID)
@_TIMEOUT
def watch(run_id: uuid.UUID, timeout: float) -> None:
    """Show RUN_ID's progress per stream until it ends (records done and failed, rate,
    elapsed); exit 1 if it failed."""
    org_id = integrations.organization_of_run(get_database(), run_id)
    _watch(org_id, run_id, timeout, check_worker=False)


@runs_group.command("cancel")
@click.argument("run_id", type=UUID)
def cancel(run_id: uuid.UUID) -> None:
    """Stop RUN_ID at the next page boundary: a page being written finishes, no other
    starts; the run ends `cancelled` with the counts so far."""
    db = get_database()
    org_id = integrations.organization_of_run(db, run_id)
    run = cancel_run(db, org_id, run_id)
    click.echo(f"{run_id} {run.message or run.status}")


def _watch(org_id: uuid.UUID, run_id: uuid.UUID, timeout: float, *, check_worker: bool) -> None:
    db = get_database()
    console = Console(stderr=True)
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    try:
        progress = run_progress(db, org_id, run_id)
        while check_worker and not _taken(progress) and time.monotonic() - started < CLAIM_WAIT:
            time.sleep(_pause(started))
            progress = run_progress(db, org_id, run_id)
        if check_worker and not _taken(progress) and not _consumed(started):
            progress = run_progress(db, org_id, run_id)
            if not progress.finished and not any(s.pages for s in progress.streams):
                raise PlugsError(
                    f"no worker consumes the '{_queue()}' queue; run {run_id} stays queued "
                    f"until one does (`plugs worker -Q {_queue()}`), or "
                    f"`plugs runs cancel {run_id}`"
                )
        if console.is_terminal:
            with Live(_table(progress, started), console=console, auto_refresh=False) as live:
                while not progress.finished and time.monotonic() < deadline:
                    time.sleep(_pause(started))
                    progress = run_progress(db, org_id, run_id)
                    live.update(_table(progress, started), refresh=True)
        else:
            shown = time.monotonic()
            while not progress.finished and time.monotonic() < deadline:
                time.sleep(_pause(started))
                progress = run_progress(db, org_id, run_id)
                if time.monotonic() - shown >= PLAIN_EVERY and not progress.finished:
                    shown = time.monotonic()
                    click.echo(_plain(progress, started), err=True)
    except KeyboardInterrupt:
        click.echo(
            f"stopped watching; run {run_id} goes on "
            f"(`plugs runs watch {run_id}` to watch it, `plugs runs cancel {run_id}` to stop it)",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    if not progress.finished:
        raise PlugsError(f"run {run_id} still running after {timeout:.0f}s")
    click.echo(f"{progress.status}: {progress.succeeded} processed, {progress.failed} failed")
    if progress.status == "failed":
        raise PlugsError(progress.message or "the run failed")


def _pause(started: float) -> float:
    """Seconds until the next look at a run watched since ``started``."""
    return min(POLL_EVERY, max(POLL_FIRST, (time.monotonic() - started) / 10))


def _taken(progress: RunProgress) -> bool:
    """Whether a worker has taken the run: it ended, or a stream of it has started."""
    return progress.finished or any(
        s.status in ("running", "done", "failed") or s.pages for s in progress.streams
    )


def _queue() -> str:
    from workers.app import app

    return str(app.amqp.router.route({}, sync.PAGE_TASK)["queue"].name)


def _consumed(started: float) -> bool:
    """Whether a worker answers that it consumes the sync queue, asked until WORKER_CHECK
    seconds after ``started``."""
    from workers.app import app

    queue = _queue()
    while True:
        replies = app.control.inspect(timeout=1.5).active_queues() or {}
        if any(q.get("name") == queue for queues in replies.values() for q in queues or ()):
            return True
        if time.monotonic() - started > WORKER_CHECK:
            return False


def _elapsed(progress: RunProgress, started: float) -> float:
    """Seconds since the run started (until it ended), else since the watch began."""
    if progress.started_at is None:
        return time.monotonic() - started
    end = progress.completed_at or datetime.now(UTC)
    return max(0.0, (end - progress.started_at).total_seconds())


def _rate(done: int, seconds: float) -> str:
    return f"{done / seconds:,.0f}/s" if seconds >= 1 else "-"


def _table(progress: RunProgress, started: float) -> Table:
    elapsed = _elapsed(progress, started)
    table = Table(
        title=f"run {progress.run_id}: {progress.status}, {elapsed:,.0f} s",
        title_justify="left",
    )
    for column in ("stream", "status", "pages", "done", "failed", "rate"):
        table.add_column(column, justify="left" if column in ("stream", "status") else "right")
    table.add_column("last error", overflow="fold")
    for s in progress.streams:
        table.add_row(
            s.stream,
            s.status,
            str(s.pages),
            f"{s.succeeded:,}",
            f"{s.failed:,}",
            _rate(s.succeeded + s.failed, elapsed),
            s.last_error or "",
        )
    table.add_row(
        "all",
        progress.status,
        str(sum(s.pages for s in progress.streams)),
        f"{progress.succeeded:,}",
        f"{progress.failed:,}",
        _rate(progress.succeeded + progress.failed, elapsed),
        "",
    )
    return table


def _plain(progress: RunProgress, started: float) -> str:
    elapsed = _elapsed(progress, started)
    streams = ", ".join(
        f"{s.stream} {s.status} {s.succeeded} done {s.failed} failed" for s in progress.streams
    )
    return (
        f"run {progress.run_id} {progress.status}: {progress.succeeded} done, "
        f"{progress.failed} failed, {_rate(progress.succeeded + progress.failed, elapsed)}, "
        f"{elapsed:.0f} s ({streams})"
    )


@click.command("logs")
@click.argument("integration_id", type=UUID)
@click.option("--last", default=10, show_default=True, help="How many runs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per run, with failures.")
def logs(integration_id: uuid.UUID, last: int, as_json: bool) -> None:
    """Show an integration's runs, newest first, with the failed records' reasons; a
    running run shows its counts so far."""
    db = get_database()
    org_id = integrations.organization_of(db, integration_id)
    runs: list[IntegrationLog] = []
    cursor: str | None = None
    while len(runs) < last:  # a page at a time: --last may exceed a page
        page = history.list_runs(
            db, org_id, integration_id=integration_id, limit=last - len(runs), cursor=cursor
        )
        runs += page.items
        cursor = page.next_cursor
        if cursor is None:
            break
    for r in runs:
        if as_json:
            click.echo(json.dumps(_run_json(r), default=str))
            continue
        click.echo(run_line(r))
        for line in _failure_lines(r):
            click.echo(f"    {line}")


def run_line(run: IntegrationLog) -> str:
    """One line per run: id, start, operation, status, counts, message."""
    started = run.started_at.isoformat(timespec="seconds") if run.started_at else "-"
    return (
        f"{run.id}  {started}  {run.operation:<7} {run.status:<9} "
        f"{run.records_processed:>7} ok {run.records_failed:>5} failed  {run.message or ''}"
    )


def _failure_lines(run: IntegrationLog) -> list[str]:
    failures = history.failed_records(run)
    lines = [
        f"{f.get('stream', '?')} {f.get('record_id', '?')}: {f.get('reason', '')}"
        for f in failures[:LISTED_FAILURES]
    ]
    more = max(len(failures), run.records_failed) - len(lines)
    if lines and more > 0:
        lines.append(f"... and {more} more (`plugs logs --json` lists them)")
    return lines


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


COMMANDS = [sync_group, runs_group, logs]

__all__ = ["COMMANDS", "run_line"]
