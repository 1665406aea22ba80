"""The platform's own processes, run by a test as an operator would: `plugs worker` in the
background, and one-off `plugs` commands.  They are started as ``python -m workers.cli``
subprocesses: the connector SDK does not import the layers above it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from core.queues import QUEUES

#: How the platform's command line is started with this interpreter.
PLUGS = (sys.executable, "-m", "workers.cli")


class WorkerProcess:
    """A `plugs` subprocess (worker, beat, HTTP app) whose output goes to a log file."""

    def __init__(self, process: subprocess.Popen[bytes], log: Path, env: dict[str, str]) -> None:
        self.process, self.log, self.env = process, log, env

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and its children), as a crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.kill()


def die_with_parent() -> None:
    """In the child before exec: get SIGTERM when the test process dies, however it dies,
    so an interrupted run leaves no worker consuming the next run's queues."""
    import ctypes

    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def environment(env: Mapping[str, str], **extra: str) -> dict[str, str]:
    """This process's environment without its ``PLUGS_*`` settings, then ``env``, then
    ``extra``: a child sees exactly the settings it is given."""
    found = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    return {**found, **env, **extra}


def start_worker(
    env: Mapping[str, str],
    folder: Path,
    *,
    concurrency: int = 2,
    extra: Mapping[str, str] | None = None,
) -> WorkerProcess:
    """Start `plugs worker` on every queue with ``env`` (plus the parent's non-PLUGS vars),
    its data and log under ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    settings = environment(env, PLUGS_DATA_DIR=str(folder / "var"), **(extra or {}))
    log = folder / f"worker-{len(list(folder.glob('worker-*.log')))}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [
                *PLUGS,
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
            env=settings,
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )
    return WorkerProcess(process, log, dict(env))


def run_plugs(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run one `plugs` command with this process's environment (``env`` over it); its
    output captured as text."""
    return subprocess.run(
        [*PLUGS, *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )
