"""`plugs status` and `plugs flower` as an operator runs them."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from tests import services
from tests.connectors.harness import hubspot


def test_status_lists_workers_queues_backlogs_and_failing_integrations(
    app_db: Database, sync_worker: services.WorkerProcess, plugs, platform_env: dict[str, str]
) -> None:
    sim = HubSpotSimulator(private_app_token="pat-na1-the-real-one")
    with hubspot(app_db, sim=sim, token="pat-na1-revoked") as vendor:
        assert vendor.sync(streams=["contacts"]).status == "failed"
        result = plugs("status", "--timeout", "5", env=platform_env)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Workers answering a ping within 5s: " in out and f"test-{os.getpid()}-" in out
    assert "syncs" in out and "Outbox not published:" in out and "Webhook inbox" in out
    failing = [line for line in out.splitlines() if str(vendor.integration_id) in line]
    assert failing and "hubspot" in failing[0] and "last run failed" in failing[0]


def test_status_exits_1_when_no_worker_answers(
    platform_env: dict[str, str], redis_url: str, plugs
) -> None:
    lonely, release = services.claim_redis_db(redis_url.rsplit("/", 1)[0])
    try:
        env = {**platform_env, "PLUGS_BROKER_URL": lonely, "PLUGS_RESULT_BACKEND": lonely}
        result = plugs("status", "--timeout", "0.5", env=env)
    finally:
        release()
    assert result.returncode == 1
    assert "Workers answering a ping within 0.5s: 0" in result.stdout
    assert "no worker answered the ping" in result.stdout


def test_flower_refuses_to_start_without_basic_auth(plugs) -> None:
    result = plugs("flower", timeout=60)
    assert result.returncode == 1
    assert "PLUGS_FLOWER_BASIC_AUTH" in result.stderr
    public = plugs("flower", "--unauthenticated-local", "--address", "0.0.0.0", timeout=60)
    assert public.returncode != 0
    assert "127.0.0.1 only" in public.stderr
    malformed = plugs("flower", env={"PLUGS_FLOWER_BASIC_AUTH": "just-a-password"}, timeout=60)
    assert malformed.returncode == 1 and "user:password" in malformed.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flower_starts_behind_basic_auth_and_serves_its_metrics(
    platform_env: dict[str, str], tmp_path: Path
) -> None:
    password, port = secrets.token_urlsafe(12), _free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(
        platform_env,
        PLUGS_DATA_DIR=str(tmp_path / "var"),
        PLUGS_FLOWER_BASIC_AUTH=f"ops:{password}",
    )
    log = tmp_path / "flower.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "flower", "--port", str(port)],
            env=environment,
            cwd=services.ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log.read_text()
            try:
                anonymous = httpx.get(f"{base}/", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.3)
        assert anonymous.status_code == 401
        assert httpx.get(f"{base}/", auth=("ops", "wrong"), timeout=5).status_code == 401
        assert httpx.get(f"{base}/", auth=("ops", password), timeout=5).status_code == 200
        scraped = httpx.get(f"{base}/metrics", timeout=5)
        assert scraped.status_code == 200 and "flower_" in scraped.text
        command_line = Path(f"/proc/{process.pid}/cmdline").read_bytes()
        assert password.encode() not in command_line
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert password not in log.read_text()


@pytest.mark.parametrize("argument", ["--basic-auth=ops:pw", "--basic_auth=ops:pw"])
def test_flower_refuses_options_that_would_bypass_its_checks(plugs, argument: str) -> None:
    result = plugs("flower", argument, env={"PLUGS_FLOWER_BASIC_AUTH": "ops:pw"}, timeout=60)
    assert result.returncode == 2
    assert "is set by `plugs flower`" in result.stderr
