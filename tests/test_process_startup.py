"""How the platform's processes start: the worker, beat and the HTTP app refuse to start on
PostgreSQL without usable credential keys (one line, non-zero exit); workers get distinct
node names by default and say in one line, at the default level, that they are ready."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.services import die_with_parent, environment, free_port


@pytest.mark.parametrize(
    ("command", "process"),
    [
        (["worker", "--pool", "solo", "--queues", "default"], "worker"),
        (["beat"], "beat"),
        (["webhooks", "--port", str(free_port())], "the HTTP app"),
    ],
)
@pytest.mark.parametrize(
    ("keys", "reason"),
    [
        (None, "PLUGS_SECRET_KEYS is not set and the database is PostgreSQL"),
        ("k1:not*base64", "PLUGS_SECRET_KEYS entry 1: the key is not urlsafe base64"),
    ],
)
def test_no_process_starts_on_postgresql_without_usable_keys(
    plugs: Any,
    platform_env: dict[str, str],
    command: list[str],
    process: str,
    keys: str | None,
    reason: str,
) -> None:
    env = {k: v for k, v in platform_env.items() if k != "PLUGS_SECRET_KEYS"}
    if keys is not None:
        env["PLUGS_SECRET_KEYS"] = keys
    result = plugs(*command, env=env, timeout=120)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    refusals = [line for line in output.splitlines() if "refuses to start" in line]
    assert len(refusals) == 1, output
    assert refusals[0].startswith(f"{process} refuses to start: {reason}"), output
    assert "Traceback" not in output and "not*base64" not in output


def _start_worker(folder: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    with (folder / f"worker-{args[-1]}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "--pool", "solo", *args],
            env=environment(env),
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=die_with_parent,
        )


def test_workers_get_distinct_names_and_say_they_are_ready(plugs: Any, tmp_path: Path) -> None:
    env = {"PLUGS_DATA_DIR": str(tmp_path / "var"), "PLUGS_LOG_FORMAT": "text"}
    assert plugs("db", "upgrade", env=env).returncode == 0
    workers = [
        _start_worker(tmp_path, env, "--queues", "syncs"),
        _start_worker(tmp_path, env, "-Q", "webhooks,notifications"),
    ]
    host = socket.gethostname()
    names = [f"plugs-syncs@{host}", f"plugs-webhooks-notifications@{host}"]
    try:
        logs = [tmp_path / "worker-syncs.log", tmp_path / "worker-webhooks,notifications.log"]
        deadline = time.monotonic() + 90
        while not all("ready" in log.read_text() for log in logs):
            assert time.monotonic() < deadline, [log.read_text()[-2000:] for log in logs]
            assert all(w.poll() is None for w in workers), [log.read_text() for log in logs]
            time.sleep(0.5)
        for log, name, queues in zip(
            logs, names, ["syncs", "notifications, webhooks"], strict=True
        ):
            ready = [line for line in log.read_text().splitlines() if "ready" in line]
            assert len(ready) == 1 and ready[0].endswith(f"worker {name} ready, consuming {queues}")
        status = plugs("status", "--timeout", "5", env=env)
        listed = [line.strip() for line in status.stdout.splitlines()]
        assert all(name in listed for name in names), status.stdout
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.wait(timeout=60)


def test_a_named_worker_keeps_its_name(plugs: Any, tmp_path: Path) -> None:
    env = {"PLUGS_DATA_DIR": str(tmp_path / "var"), "PLUGS_LOG_FORMAT": "text"}
    assert plugs("db", "upgrade", env=env).returncode == 0
    worker = _start_worker(tmp_path, env, "-n", "mine@%h", "-Q", "default")
    log = tmp_path / "worker-default.log"
    try:
        deadline = time.monotonic() + 90
        while "ready" not in log.read_text():
            assert time.monotonic() < deadline and worker.poll() is None, log.read_text()
            time.sleep(0.5)
        assert f"worker mine@{socket.gethostname()} ready, consuming default" in log.read_text()
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)
