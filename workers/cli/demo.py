"""`plugs demo`: the main job on whatever the settings say (by default, with no servers).

It migrates the database, starts a worker and the HTTP app (the same children as
``plugs up``), fills a demo organization connected to the four vendors' simulators
(:mod:`demo`), waits until the first syncs and the webhook deliveries are
processed, prints what happened and where to look, and stops its children.
``plugs up --demo`` does the same filling and keeps everything running.
"""

from __future__ import annotations

import socket
import time

import click
import httpx

from core.errors import PlugsError
from core.settings import get_settings
from demo import DemoReport, console_key, fill_demo, prepare_environment, wait_for_webhooks
from models import migrate
from models.session import get_database, make_engine
from workers.cli.children import Child, children, start, stop_all

__all__ = ["COMMANDS", "close_kept", "demo", "fill_demo", "fill_in_background"]
#: Reports of ``plugs up --demo``: kept so that their simulators live as long as we do.
_KEPT: list[DemoReport] = []


@click.command()
@click.option("--timeout", default=120.0, show_default=True, help="Seconds to wait for each step.")
@click.option(
    "--port", "http_port", default=0, type=click.IntRange(0, 65535), help="HTTP app port (0: free)."
)
def demo(timeout: float, http_port: int) -> None:
    """Run the platform with demo data from four vendor simulators, report, and stop."""
    prepare_environment()
    settings = get_settings()
    where = "embedded default (no servers)" if settings.is_embedded else "configured services"
    click.echo(f"The Plugs demo on the {where}")
    owner = make_engine(settings.owner_sqlalchemy_url())
    try:
        migrate.upgrade(owner)
    finally:
        owner.dispose()
    click.echo(f"  database migrated to {migrate.head_revision()}")
    port = http_port or _free_port()
    found = [c for c in children(settings, port, None) if c.name in ("worker", "http")]
    start(found, settings.data_dir.resolve() / "logs")
    try:
        _wait_ready(found, port, timeout)
        _ping(timeout)
        report = fill_demo(http_port=port, timeout=timeout)
        try:
            processed = wait_for_webhooks(get_database(), report, timeout)
            _print_report(report, processed)
        finally:
            report.close(pause=True)
    finally:
        stop_all(found)
    _print_next_steps(report)


def fill_in_background(http_port: int) -> None:
    """``plugs up --demo``: once the HTTP app answers, fill the demo and print its report;
    the simulators stay up with this process.  A failure is printed, not raised (this runs
    in a thread beside the supervisor)."""
    try:
        _wait_ready([], http_port, 60.0)
        report = fill_demo(http_port=http_port)
        _KEPT.append(report)
        _print_report(report, wait_for_webhooks(get_database(), report, 120.0))
        _print_next_steps(report, http_port=http_port)
    except Exception as exc:  # noqa: BLE001 - one line for the operator, the platform stays up
        click.echo(f"the demo data could not be created: {exc}", err=True)


def close_kept() -> None:
    """Stop the simulators of ``plugs up --demo`` before the interpreter exits (left to
    the garbage collector at exit, a server's shutdown would wait for its dead thread)."""
    while _KEPT:
        _KEPT.pop().close()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_ready(found: list[Child], port: int, timeout: float) -> None:
    """Until the HTTP app's /readyz answers 200 (database and broker reachable)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in found:
            if child.process is not None and child.process.poll() is not None:
                raise PlugsError(
                    f"the {child.name} process exited with {child.process.returncode}; "
                    f"see {get_settings().data_dir.resolve() / 'logs' / (child.name + '.log')}"
                )
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise PlugsError(f"the HTTP app on port {port} was not ready within {timeout:.0f}s")


def _ping(timeout: float) -> None:
    from workers.tasks.maintenance import ping

    started = time.monotonic()
    try:
        result = ping.delay().get(timeout=timeout)
    except Exception as exc:  # noqa: BLE001 - reported as one line
        raise PlugsError(f"the worker did not run the task: {exc}") from None
    click.echo(
        f"  worker {result['worker']} ran maintenance.ping against {result['database']} "
        f"({result['organizations']} organizations) in {time.monotonic() - started:.2f}s"
    )


def _print_report(report: DemoReport, processed: dict[str, int]) -> None:
    people = report.people
    click.echo(
        f"  organization {people.organization.name}: {report.org_id} with "
        f"{len(people.user_ids)} users and {len(people.event_ids)} events"
    )
    for vendor in report.vendors:
        run = vendor.run
        assert run is not None
        failures = (run.error_details or {}).get("failures") or []
        reason = failures[0]["reason"] if failures else run.message
        why = f" ({reason})" if run.records_failed or run.status == "failed" else ""
        refused = "; ".join(vendor.webhooks_refused)
        click.echo(
            f"  {vendor.provider} sync {run.status}: {run.records_processed} records synced, "
            f"{run.records_failed} failed{why}; webhooks: {vendor.webhooks_accepted} sent now, "
            f"{processed[vendor.provider]} processed in all"
            + (f", refused: {refused}" if refused else "")
        )
        click.echo(
            f"      integration {vendor.integration_id}: `plugs logs {vendor.integration_id}`"
        )
    click.echo(f"  notifications: {report.notifications} new, {report.email_note}")


def _print_next_steps(report: DemoReport, http_port: int | None = None) -> None:
    """Where to look; ``http_port`` when the platform keeps running (``plugs up --demo``)."""
    from notifications import feed_tokens

    token = feed_tokens.issue(report.org_id, report.people.admin_id, ttl=86_400)
    kept_running = http_port is not None
    click.echo(f"Data is under {get_settings().data_dir.resolve()}. Where to look:")
    click.echo("  `plugs logs INTEGRATION_ID` for runs, `plugs schedules list` for schedules")
    if http_port is None:
        http_port = 8000
        click.echo(
            "  `plugs up --demo` keeps it all running, with Flower at http://127.0.0.1:5555 "
            "(until then the demo's integrations are paused: their simulators stopped with us)"
        )
    else:
        click.echo("  Flower at http://127.0.0.1:5555 (unless --no-flower); Ctrl-C stops it all")
    click.echo(f"  the admin's feed (for a day): http://127.0.0.1:{http_port}/feed/?token={token}")
    key = console_key(get_database(), report.org_id)
    click.echo(
        f"  the console{'' if kept_running else ' (with `plugs up --demo`)'}: "
        f"http://127.0.0.1:{http_port}/console/, sign in with the API key {key}"
    )


COMMANDS = [demo]
