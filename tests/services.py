"""The platform's processes and services in tests: the shipped helpers of
:mod:`connectors.testing` (a Redis db of our own, `plugs worker`), beat and the HTTP app,
and settings reloaded in this process."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from connectors.testing import services as shipped
from connectors.testing.processes import WorkerProcess as WorkerProcess
from connectors.testing.processes import die_with_parent, environment
from connectors.testing.processes import start_worker as start_worker
from connectors.testing.services import claim_redis_db as claim_redis_db

ROOT = Path(__file__).resolve().parent.parent


def reload_settings() -> None:
    """Forget cached settings, database and Celery configuration after PLUGS_* changed."""
    shipped.reload_settings()
    reset_celery_app()


def reset_celery_app() -> None:
    """Our Celery app configured anew from :mod:`celeryconfig` (reloaded already), its
    connections to the old broker closed."""
    if "workers.app" in sys.modules:
        app = sys.modules["workers.app"].app
        app.config_from_object("celeryconfig", force=True)
        app.pool.force_close_all() if app.pool else None
        app._pool = None  # Celery's ``pool`` property makes a new one when this is None
        app.amqp._producer_pool = None  # it holds the connection pool just closed
        from kombu import pools

        pools.reset()  # kombu keeps producer pools per broker URL, the closed one too
        app.__dict__.pop("backend", None)


def start_beat(env: dict[str, str], folder: Path, *, tick_seconds: float = 1.0) -> WorkerProcess:
    """Start `plugs beat` with ``env``, its schedule file under ``folder``, the scheduler
    ticking every ``tick_seconds``."""
    settings = environment(
        env, PLUGS_DATA_DIR=str(folder / "var"), PLUGS_SCHEDULER_TICK_SECONDS=str(tick_seconds)
    )
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"beat-{len(list(folder.glob('beat-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "beat", "--loglevel", "INFO"],
            env=settings,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return WorkerProcess(process, log, env)


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_http(env: dict[str, str], folder: Path, *, port: int | None = None) -> WorkerProcess:
    """Start the HTTP app (`plugs webhooks`) with ``env`` on a free port; returns once it
    answers.  Its base URL is ``handle.env["base_url"]``."""
    import httpx

    port = port or free_port()
    settings = environment(env, PLUGS_DATA_DIR=str(folder / "var"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"http-{len(list(folder.glob('http-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "webhooks", "--port", str(port)],
            env=settings,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    handle = WorkerProcess(process, log, {**env, "base_url": f"http://127.0.0.1:{port}"})
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the HTTP app exited: {handle.output()[-2000:]}")
        try:
            httpx.get(f"http://127.0.0.1:{port}/webhooks/none/none", timeout=1)
            return handle
        except httpx.TransportError:
            time.sleep(0.1)
    handle.kill()
    raise RuntimeError(f"the HTTP app did not answer within 60 s: {handle.output()[-2000:]}")
