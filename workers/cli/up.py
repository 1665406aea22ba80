"""`plugs up`: the whole platform on one machine, as child processes stopped together.

It migrates the database, then starts the worker (every queue), beat, the HTTP app
(webhooks, feed, health, metrics) and Flower, on whatever the settings say: the embedded
default with no servers, or PostgreSQL with Redis or RabbitMQ.  Ctrl-C (or SIGTERM) stops
them all, and if one of them dies the others are stopped too and the exit code says so:
a half-running platform is worse than a stopped one.

``plugs up --demo`` also fills a demo organization (see ``plugs demo``) and keeps running.
"""

from __future__ import annotations

import sys

import click

from core.settings import get_settings
from workers.cli.children import children, run
from workers.cli.demo import close_kept, fill_in_background
from workers.cli.flower import basic_auth_credentials


@click.command("up")
@click.option("--port", "http_port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--flower-port", default=5555, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.option(
    "--unauthenticated-local",
    is_flag=True,
    help="Run Flower without basic auth, bound to 127.0.0.1 only (your own machine).",
)
@click.option(
    "--demo",
    "with_demo",
    is_flag=True,
    help="Also create the demo data (plugs demo); Flower is local-only without basic auth.",
)
def up(
    http_port: int,
    flower_port: int,
    no_flower: bool,
    unauthenticated_local: bool,
    with_demo: bool,
) -> None:
    """Run the worker, beat, the HTTP app and Flower together until Ctrl-C.

    Flower needs PLUGS_FLOWER_BASIC_AUTH, as `plugs flower` does; without it `plugs up`
    refuses to start unless --unauthenticated-local (or --demo) runs it on 127.0.0.1 only,
    or --no-flower leaves it out."""
    from models import migrate
    from models.session import make_engine

    open_flower = not no_flower and basic_auth_credentials() is None
    if open_flower and not (unauthenticated_local or with_demo):
        raise click.ClickException(
            "Flower needs basic auth: set PLUGS_FLOWER_BASIC_AUTH=user:password (or use "
            "--unauthenticated-local on your own machine, or --no-flower)"
        )

    if with_demo:  # the children need the demo's settings (loopback simulators, feed secret)
        from demo import prepare_environment

        prepare_environment()
    settings = get_settings()
    where = "embedded default (no servers)" if settings.is_embedded else "configured services"
    click.echo(f"The Plugs on the {where}")
    owner = make_engine(settings.owner_sqlalchemy_url())
    try:
        migrate.upgrade(owner)
    finally:
        owner.dispose()
    found = children(settings, http_port, None if no_flower else flower_port)
    log_dir = settings.data_dir.resolve() / "logs"
    click.echo(f"  HTTP app: http://127.0.0.1:{http_port} (/healthz, /readyz, /metrics, /feed)")
    click.echo(f"  Console:  http://127.0.0.1:{http_port}/console/ (an organization's API key)")
    if not no_flower:
        local = " (no password: this machine only)" if open_flower else ""
        click.echo(f"  Flower:   http://127.0.0.1:{flower_port}{local}")
    if with_demo:
        # the processes start first, so the demo's syncs and webhooks are processed live
        import threading

        threading.Thread(target=fill_in_background, args=(http_port,), daemon=True).start()
    code = run(found, log_dir)
    if with_demo:
        close_kept()
    sys.exit(code)


COMMANDS = [up]
