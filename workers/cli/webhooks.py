"""`plugs webhooks`: run the HTTP app (webhook receiver, feed, health, metrics) and replay
stored deliveries."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import click

from workers.cli.params import UUID


@click.group("webhooks", invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64))
@click.pass_context
def webhooks(ctx: click.Context, host: str, port: int, workers: int) -> None:
    """Serve the webhook receiver (POST /webhooks/{provider}/{integration_id}), the in-app
    feed (/feed), /healthz, /readyz and /metrics with uvicorn."""
    if ctx.invoked_subcommand is not None:
        return
    import uvicorn

    from workers import logs
    from workers.app import refuse_without_usable_keys

    logs.configure()
    refuse_without_usable_keys("the HTTP app")  # one line before uvicorn, not one per worker
    uvicorn.run(
        "workers.http.app:serve",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=None,
        proxy_headers=True,
        access_log=False,
        # Longer than the idle timeout of clients and load balancers in front (60 s on
        # most), so the server never closes a kept-alive connection a client is reusing.
        timeout_keep_alive=75,
    )


@webhooks.command("replay")
@click.option("--integration", "integration_id", type=UUID, required=True)
@click.option(
    "--since",
    type=click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M"]),
    help="Only deliveries received since then (UTC).",
)
@click.option("--failed", "failed_only", is_flag=True, help="Only deliveries that failed.")
def replay(integration_id: uuid.UUID, since: datetime | None, failed_only: bool) -> None:
    """Process stored deliveries of an integration again (effects are idempotent)."""
    from connectors.integrations import organization_of
    from models.session import get_database
    from runs import inbox

    db = get_database()
    org_id = organization_of(db, integration_id)
    since_utc = since.replace(tzinfo=UTC) if since is not None else None
    count = inbox.replay(db, org_id, integration_id, since=since_utc, failed_only=failed_only)
    click.echo(f"{count} deliveries enqueued for processing")


COMMANDS = [webhooks]
