"""Finding the real services the tests use, and taking a Redis db number of our own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from core.queues import QUEUES

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379"
#: Services found missing in this run, reported at its end.
SKIPPED: set[str] = set()
_LOCK_KEY = "plugs-tests:lock"


def _libpq_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_error(url: str) -> str | None:
    """Why PostgreSQL at ``url`` cannot be used, or None."""
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0]
    return None


def redis_error(url: str) -> str | None:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        return str(exc)
    return None


def claim_redis_db(base_url: str) -> tuple[str, Callable[[], None]]:
    """An empty Redis db number (1-15) no other test run holds, and a release function.

    The claim is a key in the db itself, set with NX, so two runs never share a db.
    """
    parts = urlsplit(base_url)
    for number in range(15, 0, -1):
        url = urlunsplit((parts.scheme, parts.netloc, f"/{number}", "", ""))
        client = redis.Redis.from_url(url)
        if client.dbsize() == 0 and client.set(_LOCK_KEY, "1", nx=True, ex=3 * 3600):

            def release(client: redis.Redis = client) -> None:
                client.flushdb()
                client.close()

            return url, release
        client.close()
    raise RuntimeError("no empty Redis database (1-15) is free for the tests")


def reload_settings() -> None:
    """Forget cached settings, database and Celery configuration after PLUGS_* changed."""
    import importlib
    import sys

    from core.settings import get_settings
    from models.session import get_database

    if get_database.cache_info().currsize:
        get_database().dispose()
    get_settings.cache_clear()
    get_database.cache_clear()
    if "celeryconfig" in sys.modules:
        importlib.reload(sys.modules["celeryconfig"])
    if "workers.app" in sys.modules:
        app = sys.modules["workers.app"].app
        app.config_from_object("celeryconfig", force=True)
        app.pool.force_close_all() if app.pool else None
        app.__dict__.pop("pool", None)
        app.amqp._producer_pool = None  # it holds the connection pool just closed
        from kombu import pools

        pools.reset()  # kombu keeps producer pools per broker URL, the closed one too
        app.__dict__.pop("backend", None)


class WorkerProcess:
    """A `plugs worker` subprocess whose output goes to a log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, env: dict[str, str]) -> None:
        self.process, self.log, self.env = process, log, env

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its children), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, however it dies,
    so an interrupted run leaves no worker consuming the next run's queues."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def start_worker(
    env: dict[str, str], folder: Path, *, concurrency: int = 2, extra: dict[str, str] | None = None
) -> WorkerProcess:
    """Start `plugs worker` on every queue with ``env`` (plus the parent's non-PLUGS vars)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(env, PLUGS_DATA_DIR=str(folder / "var"), **(extra or {}))
    log = folder / f"worker-{len(list(folder.glob('worker-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "workers.cli",
                "worker",
                "--concurrency",
                str(concurrency),
                "--loglevel",
                "INFO",
                "--queues",
                ",".join(QUEUES),
                "--without-mingle",
                "--without-gossip",
                "--hostname",
                f"test-{os.getpid()}-{log.stem}@%h",
            ],
            env=environment,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    return WorkerProcess(process, log, env)


def start_beat(env: dict[str, str], folder: Path, *, tick_seconds: float = 1.0) -> WorkerProcess:
    """Start `plugs beat` with ``env``, its schedule file under ``folder``, the scheduler
    ticking every ``tick_seconds``."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(
        env, PLUGS_DATA_DIR=str(folder / "var"), PLUGS_SCHEDULER_TICK_SECONDS=str(tick_seconds)
    )
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"beat-{len(list(folder.glob('beat-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "beat", "--loglevel", "INFO"],
            env=environment,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
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
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(env, PLUGS_DATA_DIR=str(folder / "var"))
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"http-{len(list(folder.glob('http-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "webhooks", "--port", str(port)],
            env=environment,
            cwd=ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,
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
