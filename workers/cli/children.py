"""The platform's processes as children of one command, started and stopped together
(used by `plugs up` and `plugs demo`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import click

from core.queues import QUEUES
from core.settings import Settings

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
            dead = [
                (c, c.process)
                for c in found
                if c.process is not None and c.process.poll() is not None
            ]
            if dead:
                for child, process in dead:
                    click.echo(
                        f"{child.name} exited with {process.returncode}; stopping the rest "
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
    running = [c.process for c in found if c.process is not None and c.process.poll() is None]
    for process in running:
        os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    click.echo(f"stopped {', '.join(c.name for c in found)}")
