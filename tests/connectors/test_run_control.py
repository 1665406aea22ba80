"""Operators steer runs through the real `plugs` command and a real worker: progress while
a run goes (`plugs runs watch`, `plugs logs`), Ctrl-C, `plugs runs cancel`, no worker on
the queue, and one clear cause when a vendor is unreachable or refuses the token."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from models import IntegrationLog
from models.accounts import create_organization
from models.contacts import Contact
from models.session import Database
from models.sync_state import SyncPageOutcome
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import serve
from tests import services

pytestmark = pytest.mark.usefixtures("sync_worker")
TOKEN = "pat-na1-control"


class SlowHubSpot(HubSpotSimulator):
    """HubSpot answering its CRM calls after ``delay`` seconds: a sync long enough to
    watch and cancel."""

    def __init__(self, delay: float, **kwargs: Any) -> None:
        super().__init__(private_app_token=TOKEN, enforce_limits=False, **kwargs)
        self.delay = delay

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/crm/"):
            time.sleep(self.delay)
        return super().handle(request)


def _one_line_error(result: Any) -> str:
    """The one error line, after any plain progress lines of a --wait."""
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines and all(line.startswith("run ") for line in lines[:-1]), result.stderr
    assert lines[-1].startswith("Error: "), result.stderr
    return lines[-1]


def _add(
    plugs: Callable[..., Any], env: dict[str, str], org_id: uuid.UUID, url: str, *extra: str
) -> str:
    added = plugs(
        "integrations", "add", "hubspot", "--org", str(org_id), "--token", TOKEN,
        "--setting", f"base_url={url}", "--no-verify", *extra, env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    return str(added.stdout.strip())


def _run(db: Database, org_id: uuid.UUID, run_id: str) -> IntegrationLog:
    with db.tenant(org_id) as session:
        run = session.get(IntegrationLog, uuid.UUID(run_id))
        assert run is not None
        session.expunge(run)
        return run


def _spawn(env: dict[str, str], tmp_path: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(env)
    with (tmp_path / f"{name}.out").open("wb") as out, (tmp_path / f"{name}.err").open("wb") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "workers.cli", *args],
            env=environment,
            cwd=services.ROOT,
            stdout=out,
            stderr=err,
        )


def _on_a_terminal(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `plugs ARGS` with a pseudo-terminal as its output; its exit code and output."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(env, TERM="xterm", COLUMNS="160")
    controller, terminal = os.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", *args],
        env=environment,
        cwd=services.ROOT,
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    output = b""
    try:
        while True:
            try:
                chunk = os.read(controller, 65536)
            except OSError:  # the other end closed
                break
            if not chunk:
                break
            output += chunk
    finally:
        os.close(controller)
    return process.wait(timeout=60), output.decode(errors="replace")


def _until(check: Callable[[], Any], seconds: float, what: str) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def test_watch_logs_interrupt_and_cancel_a_running_sync(
    plugs: Any, platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    sim = SlowHubSpot(delay=0.25)
    ids = sim.add_contacts(20000)  # 50 s of pages at the least: still running when cancelled
    sim.update_contact(ids[3], email="broken@@example.test")
    org_id = create_organization(app_db, f"Watchers {uuid.uuid4().hex[:8]}").id
    with serve(sim) as server:
        integration_id = _add(plugs, platform_env, org_id, server.base_url)
        started = plugs("sync", integration_id, "--stream", "contacts", env=platform_env)
        assert started.returncode == 0, started.stderr
        run_id = started.stdout.strip()
        watcher = _spawn(platform_env, tmp_path, "watch", "runs", "watch", run_id)
        try:
            # Not a terminal: one plain line every few seconds, counts from the database.
            line = _until(
                lambda: [
                    text
                    for text in (tmp_path / "watch.err").read_text().splitlines()
                    if text.startswith(f"run {run_id} running: ")
                ],
                60,
                "a progress line",
            )[0]
            assert " done, " in line and "contacts running" in line and "/s, " in line

            logs = plugs("logs", integration_id, env=platform_env)
            assert logs.returncode == 0, logs.stderr
            [row] = logs.stdout.splitlines()
            assert row.startswith(run_id) and " running " in row
            assert int(row.split(" ok ")[0].split()[-1]) > 0  # counts as they are

            watcher.send_signal(signal.SIGINT)
            assert watcher.wait(timeout=30) == 130
        finally:
            if watcher.poll() is None:
                watcher.kill()
                watcher.wait()
        said = (tmp_path / "watch.err").read_text()
        assert "Traceback" not in said
        assert f"run {run_id} goes on" in said and f"`plugs runs cancel {run_id}`" in said
        assert _run(app_db, org_id, run_id).status == "running"  # Ctrl-C stopped the watch

        cancelled = plugs("runs", "cancel", run_id, env=platform_env)
        assert cancelled.returncode == 0, cancelled.stderr
        assert f"{run_id} cancelled: " in cancelled.stdout
        time.sleep(2 * sim.delay + 1)  # a page task still running would store its page now
        run = _run(app_db, org_id, run_id)
        with app_db.tenant(org_id) as session:
            pages = session.scalar(
                select(func.count())
                .select_from(SyncPageOutcome)
                .where(SyncPageOutcome.run_id == run.id)
            )
            contacts = session.scalar(select(func.count()).select_from(Contact))
        time.sleep(1)
        with app_db.tenant(org_id) as session:
            assert (
                session.scalar(
                    select(func.count())
                    .select_from(SyncPageOutcome)
                    .where(SyncPageOutcome.run_id == run.id)
                )
                == pages
            )  # no page after the cancel
    assert run.status == "cancelled" and run.completed_at is not None
    # The counts are those of the whole pages stored before the cancel: nothing half-written.
    assert 0 < run.records_processed < 6000 and run.records_failed == 1
    assert run.records_processed + run.records_failed == 100 * (pages or 0)
    assert contacts == run.records_processed
    assert cancelled.stdout.strip() == f"{run_id} {run.message}"

    again = plugs("runs", "cancel", run_id, env=platform_env)
    assert "has already ended: cancelled" in _one_line_error(again)
    watched = plugs("runs", "watch", run_id, env=platform_env)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.strip() == f"cancelled: {run.records_processed} processed, 1 failed"
    code, drawn = _on_a_terminal(platform_env, "runs", "watch", run_id)
    assert code == 0 and "Traceback" not in drawn, drawn
    rows = [line for line in drawn.splitlines() if line.startswith("│ contacts ")]
    done = re.escape(f"{run.records_processed:,}")
    assert rows and re.search(rf"│ +{done} │", rows[-1]), drawn  # the live table
    text = plugs("logs", integration_id, env=platform_env).stdout.splitlines()
    assert text[0].startswith(run_id) and " cancelled " in text[0]
    assert text[1].strip().startswith(f"contacts {ids[3]}: ")  # the failed record's reason


def test_sync_wait_says_when_no_worker_consumes_the_queue(
    plugs: Any, platform_env: dict[str, str], app_db: Database, redis_url: str
) -> None:
    org_id = create_organization(app_db, f"Lonely {uuid.uuid4().hex[:8]}").id
    integration_id = _add(plugs, platform_env, org_id, "http://127.0.0.1:9")
    lonely, release = services.claim_redis_db(redis_url.rsplit("/", 1)[0])
    try:
        env = {**platform_env, "PLUGS_BROKER_URL": lonely, "PLUGS_RESULT_BACKEND": lonely}
        began = time.monotonic()
        result = plugs("sync", integration_id, "--wait", env=env)
        took = time.monotonic() - began
    finally:
        release()
    line = _one_line_error(result)
    assert "no worker consumes the 'syncs' queue" in line and "stays queued" in line
    run_id = result.stdout.strip()
    assert f"plugs runs cancel {run_id}" in line
    assert took < 10 + 5  # the check itself within 10 s; the rest is the process starting
    assert _run(app_db, org_id, run_id).status == "running"
    cancelled = plugs("runs", "cancel", run_id, env=platform_env)
    assert cancelled.returncode == 0, cancelled.stderr
    assert _run(app_db, org_id, run_id).status == "cancelled"


def test_an_unreachable_vendor_fails_the_run_fast_with_one_cause(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    org_id = create_organization(app_db, f"Unreachable {uuid.uuid4().hex[:8]}").id
    integration_id = _add(plugs, platform_env, org_id, "http://127.0.0.1:9")
    began = time.monotonic()
    result = plugs("sync", integration_id, "--wait", env=platform_env)
    took = time.monotonic() - began
    line = _one_line_error(result)
    run = _run(app_db, org_id, result.stdout.splitlines()[0])
    assert run.status == "failed" and run.message is not None
    assert line == f"Error: {run.message}"
    assert run.message.count("ConnectError") == 1, run.message
    assert "giving up" not in run.message
    streams = set((run.error_details or {})["failed_streams"])
    assert len(streams) == 6 and all(name in run.message for name in streams)
    assert took < 45, took  # PLUGS_UNREACHABLE_AFTER is 30 s by default


def test_a_refused_token_names_the_fix_once(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    org_id = create_organization(app_db, f"Refused {uuid.uuid4().hex[:8]}").id
    with serve(HubSpotSimulator(private_app_token="pat-na1-another")) as server:
        integration_id = _add(plugs, platform_env, org_id, server.base_url)
        result = plugs("sync", integration_id, "--wait", env=platform_env)
    line = _one_line_error(result)
    assert line.count("401") == 1, line
    assert line.count(f"`plugs integrations update {integration_id} --token ...`") == 1
    assert TOKEN not in result.stdout + result.stderr
    assert len(line) < 600, line


def test_bad_run_ids_are_one_line(plugs: Any, platform_env: dict[str, str]) -> None:
    for args in (
        ("runs", "watch", str(uuid.uuid4())),
        ("runs", "cancel", str(uuid.uuid4())),
        ("runs", "cancel", "not-a-uuid"),
    ):
        line = _one_line_error(plugs(*args, env=platform_env))
        assert "no run with id" in line or "not-a-uuid" in line, line


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_flower_shows_a_running_syncs_integration_stream_and_counts(
    plugs: Any, platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    password, port = secrets.token_urlsafe(12), _free_port()
    env = {**platform_env, "PLUGS_FLOWER_BASIC_AUTH": f"ops:{password}"}
    flower = _spawn(env, tmp_path, "flower", "flower", "--port", str(port))
    base, auth = f"http://127.0.0.1:{port}", ("ops", password)
    sim = SlowHubSpot(delay=0.25)
    sim.add_contacts(4000)
    org_id = create_organization(app_db, f"Flower {uuid.uuid4().hex[:8]}").id
    try:

        def up() -> bool:
            assert flower.poll() is None, (tmp_path / "flower.err").read_text()
            try:
                return httpx.get(f"{base}/api/workers", auth=auth, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        _until(up, 60, "Flower")
        time.sleep(6)  # Flower asks the workers to send task events every 5 s
        with serve(sim) as server:
            integration_id = _add(
                plugs, platform_env, org_id, server.base_url, "--name", "Acme HubSpot"
            )
            started = plugs("sync", integration_id, "--stream", "contacts", env=platform_env)
            assert started.returncode == 0, started.stderr
            run_id = started.stdout.strip()

            def progressing() -> dict[str, Any] | None:
                tasks = httpx.get(
                    f"{base}/api/tasks", params={"taskname": "sync.page"}, auth=auth, timeout=5
                ).json()
                for task in tasks.values():
                    if 'hubspot "Acme HubSpot" contacts' in str(task.get("kwargs")) and (
                        "records done" in str(task.get("result"))
                    ):
                        return dict(task)
                return None

            task = _until(progressing, 60, "a sync.page task with progress in Flower")
            info = httpx.get(f"{base}/api/task/info/{task['uuid']}", auth=auth, timeout=5)
            page = httpx.get(f"{base}/task/{task['uuid']}", auth=auth, timeout=5)
            assert _run(app_db, org_id, run_id).status == "running"  # seen while it runs
            plugs("runs", "cancel", run_id, env=platform_env)
    finally:
        os.kill(flower.pid, signal.SIGTERM)
        try:
            flower.wait(timeout=30)
        except subprocess.TimeoutExpired:
            flower.kill()
            flower.wait()
    assert info.status_code == 200 and page.status_code == 200
    shown = info.json()
    assert shown["kwargs"] == 'hubspot "Acme HubSpot" contacts'
    done = shown["result"]
    assert done.startswith('hubspot "Acme HubSpot" contacts: ') and " records done, " in done
    assert " failed" in done and TOKEN not in str(shown)
    assert "hubspot &quot;Acme HubSpot&quot; contacts" in page.text
    assert "records done" in page.text and TOKEN not in page.text
