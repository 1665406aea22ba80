"""The scratch services of one benchmark run, all removed at the end: a PostgreSQL
database migrated to head with an application role and a system role, and an empty Redis
db.  The same servers and the same helpers as the tests (``connectors.testing.services``):
``PLUGS_TEST_DATABASE_URL`` and ``PLUGS_TEST_REDIS_URL``, defaults on 127.0.0.1."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from connectors.testing import services

ROOT = Path(__file__).resolve().parent.parent

PG_URL = os.environ.get("PLUGS_TEST_DATABASE_URL", services.DEFAULT_PG_URL)
REDIS_URL = os.environ.get("PLUGS_TEST_REDIS_URL", services.DEFAULT_REDIS_URL)


@contextmanager
def scratch_database() -> Iterator[dict[str, str]]:
    """``owner_url`` (the server's admin, owner of the schema), ``app_url`` (the application
    role: row-level security applies), ``system_url`` (the system role) of a fresh
    database; the database and both roles are dropped afterwards."""
    error = services.postgres_error(PG_URL)
    if error:
        raise SystemExit(f"PostgreSQL at PLUGS_TEST_DATABASE_URL is not usable: {error}")
    with services.scratch_database(PG_URL, f"bench_{secrets.token_hex(3)}") as database:
        yield database


@contextmanager
def scratch_redis() -> Iterator[str]:
    """The URL of an empty Redis db number no test run or benchmark holds, flushed after."""
    error = services.redis_error(REDIS_URL)
    if error:
        raise SystemExit(f"Redis at PLUGS_TEST_REDIS_URL is not usable: {error}")
    try:
        url, release = services.claim_redis_db(REDIS_URL)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    try:
        yield url
    finally:
        release()


def server_env(database: dict[str, str], redis_url: str, data_dir: Path, **extra: str) -> dict:
    """The environment of our processes on the scratch services: this process's own without
    its ``PLUGS_*`` settings, then the databases, Redis as broker, results and limits, a new
    credential key, ``data_dir`` and ``extra``."""
    from connectors.credentials import new_key_entry

    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    env.update(
        PLUGS_DATABASE_URL=database["app_url"],
        PLUGS_SYSTEM_DATABASE_URL=database["system_url"],
        PLUGS_BROKER_URL=redis_url,
        PLUGS_RESULT_BACKEND=redis_url,
        PLUGS_REDIS_URL=redis_url,
        PLUGS_SECRET_KEYS=new_key_entry(),
        PLUGS_DATA_DIR=str(data_dir),
        PLUGS_LOG_LEVEL="WARNING",
        **extra,
    )
    return env


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def http_server(
    command: list[str], env: dict[str, str], port: int, log: Path, ready_path: str = "/"
) -> Iterator[tuple[str, int]]:
    """Start ``command`` (an HTTP server on ``port``, output to ``log``), wait up to 60 s
    until ``ready_path`` answers, and yield its base URL and process id; terminated after."""
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + ready_path, timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield base, process.pid
    finally:
        process.terminate()
        process.wait(timeout=30)
