"""`plugs up`: the whole platform on one machine, as child processes stopped together.

It migrates the database, then starts the worker (every queue), beat, the HTTP app
(webhooks, feed, health, metrics) and Flower, on whatever the settings say: the embedded
default with no servers, or PostgreSQL with Redis or RabbitMQ.  Ctrl-C (or SIGTERM) stops
them all, and if one of them dies the others are stopped too and the exit code says so:
a half-running platform is worse than a stopped one.

``plugs up --demo`` also fills a demo organization (see ``plugs demo``) and keeps running.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from workers.queues import QUEUES
from workers.settings import Settings, get_settings

#: Seconds each child gets to finish its work on Ctrl-C before it is killed.
STOP_GRACE = 30.0


@dataclass
class Child:
    name: str
    command: list[str]
    process: subprocess.Popen[bytes] | None = None


def children(settings: Settings, http_port: int, flower_port: int | None) -> list[Child]:
    """The processes of the platform for these settings."""
    plugs = [sys.executable, "-m", "workers.cli"]
    # SQLite has one writer at a time: on the embedded default one worker process.
    pool = ["--pool", "solo"] if settings.is_embedded else []
    found = [
        Child("worker", [*plugs, "worker", *pool, "--queues", ",".join(QUEUES), "-l", "INFO"]),
        Child("beat", [*plugs, "beat", "-l", "INFO"]),
        Child("http", [*plugs, "webhooks", "--host", "127.0.0.1", "--port", str(http_port)]),
    ]
    if flower_port is not None:
        local = [] if settings.flower_basic_auth else ["--unauthenticated-local"]
        found.append(Child("flower", [*plugs, "flower", "--port", str(flower_port), *local]))
    return found


def run(found: list[Child], log_dir: Path) -> int:
    """Start ``found``, wait until Ctrl-C or one of them exits; stop the rest; exit code."""
    stopping = False

    def _stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        start(found, log_dir)
        code = 0
        while not stopping:
            dead = [c for c in found if c.process is not None and c.process.poll() is not None]
            if dead:
                for child in dead:
                    click.echo(
                        f"{child.name} exited with {child.process.returncode}; stopping the rest "  # type: ignore[union-attr]
                        f"(see {log_dir / (child.name + '.log')})",
                        err=True,
                    )
                code = 1
                break
            time.sleep(0.5)
        stop_all(found)
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def start(found: list[Child], log_dir: Path) -> None:
    """Start ``found`` in sessions of their own (so a Ctrl-C reaches only us), each logging
    to ``log_dir/<name>.log``; :func:`stop_all` stops them."""
    log_dir.mkdir(parents=True, exist_ok=True)
    for child in found:
        with (log_dir / f"{child.name}.log").open("ab") as log:
            child.process = subprocess.Popen(
                child.command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        click.echo(f"  {child.name:7s} pid {child.process.pid}, log {log.name}")


def stop_all(found: list[Child]) -> None:
    """SIGTERM every child (a worker finishes its current task: warm shutdown), then wait;
    what is still running after the grace period is killed."""
    running = [c for c in found if c.process is not None and c.process.poll() is None]
    for child in running:
        os.killpg(child.process.pid, signal.SIGTERM)  # type: ignore[union-attr]
    deadline = time.monotonic() + STOP_GRACE
    for child in running:
        assert child.process is not None
        try:
            child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
    click.echo(f"stopped {', '.join(c.name for c in found)}")


@click.command("up")
@click.option("--port", "http_port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--flower-port", default=5555, show_default=True, type=click.IntRange(1, 65535))
@click.option("--no-flower", is_flag=True, help="Do not start Flower.")
@click.option("--demo", "with_demo", is_flag=True, help="Also create the demo data (plugs demo).")
def up(http_port: int, flower_port: int, no_flower: bool, with_demo: bool) -> None:
    """Run the worker, beat, the HTTP app and Flower together until Ctrl-C."""
    from models import migrate
    from models.session import make_engine

    if with_demo:  # the children need the demo's settings (loopback simulators, feed secret)
        from workers.demo import prepare_environment

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
    if not no_flower:
        click.echo(f"  Flower:   http://127.0.0.1:{flower_port}")
    if with_demo:
        # the processes start first, so the demo's syncs and webhooks are processed live
        import threading

        from workers.cli.demo import fill_in_background

        threading.Thread(target=fill_in_background, args=(http_port,), daemon=True).start()
    code = run(found, log_dir)
    if with_demo:
        from workers.cli.demo import close_kept

        close_kept()
    sys.exit(code)


COMMANDS = [up]
