"""Logs are JSON lines with the work's context, and no secret reaches them: not from the
settings, URLs, tokens, keys or tracebacks, in this process or in a real worker."""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery import Celery
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from connectors.credentials import new_key_entry
from core import redaction
from models.session import Database
from tests import services
from tests.connectors.harness import hubspot
from tests.connectors.test_secrets import echoed_forms
from tests.operations.conftest import json_lines, settings_env
from workers import logs


def _canary(kind: str) -> str:
    return f"canary-{kind}-{secrets.token_hex(8)}"


def _mixed_canary(kind: str) -> str:
    """A canary that changes under case changes and URL encoding."""
    return f"Canary-{kind}+{secrets.token_hex(6)}/X{secrets.token_hex(6)}"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    """The root logger configured by workers.logs into a buffer, restored afterwards."""
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    yield stream
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_records_are_json_lines_with_context_and_without_any_secret(
    captured: io.StringIO,
) -> None:
    password, token, db_password = _canary("flower"), _canary("token"), _canary("db")
    key_entry = new_key_entry()
    fernet_key = Fernet.generate_key().decode()
    with settings_env(
        PLUGS_FLOWER_BASIC_AUTH=f"ops:{password}",
        PLUGS_SECRET_KEYS=key_entry,
        PLUGS_DATABASE_URL=f"postgresql+psycopg://plugs_app:{db_password}@db.internal/plugs",
    ):
        logs.configure("DEBUG", stream=captured, log_format="json")
        log = logging.getLogger("tests.operations")
        run_id, org_id = uuid.uuid4(), uuid.uuid4()
        with logs.bound(run_id=run_id, organization_id=org_id):
            log.info("the flower password is %s", password)
            log.info("connecting to postgresql://plugs_app:%s@db.internal/plugs", db_password)
            log.warning("vendor said: Authorization: Bearer %s", token)
            log.info("refresh with %s", {"access_token": token, "client_secret": password})
            log.info("GET https://api.example.com/v1?api_key=%s&page=2", token)
            log.info("keys %s and %s", key_entry, fernet_key)
            log.info("extra fields too", extra={"credentials": {"refresh_token": token}})
            try:
                raise RuntimeError(
                    f"access_token={token} refused by postgresql://u:{db_password}@h"
                )
            except RuntimeError:
                log.exception("the call failed")
            redaction.add_secrets(token)
            log.error("a bare decrypted credential: %s", token)
        log.info("outside the block")
    text = captured.getvalue()
    records = json_lines(text)
    assert len(records) == 10
    for secret in (password, token, db_password, fernet_key, key_entry.split(":")[1]):
        assert secret not in text
    assert all(r["run_id"] == str(run_id) for r in records[:9])
    assert all(r["organization_id"] == str(org_id) for r in records[:9])
    assert "run_id" not in records[9]
    assert (
        records[1]["message"] == "connecting to postgresql://plugs_app:[redacted]@db.internal/plugs"
    )
    assert records[6]["credentials"] == {"refresh_token": "[redacted]"}
    assert "RuntimeError" in records[7]["exc_info"] and "[redacted]" in records[7]["exc_info"]
    assert {r["level"] for r in records} == {"INFO", "WARNING", "ERROR"}


def test_text_logs_for_a_terminal_are_redacted_and_carry_the_context(
    captured: io.StringIO,
) -> None:
    token = _canary("token")
    logs.configure("INFO", stream=captured, log_format="text")
    with logs.bound(task_id="abc", task_name="sync.page"):
        logging.getLogger("tests.operations").info("Bearer %s", token)
    line = captured.getvalue().strip()
    assert token not in line
    assert line.endswith("Bearer [redacted] [task_id=abc task_name=sync.page]")


def test_a_secret_in_any_case_or_encoding_never_reaches_a_record(captured: io.StringIO) -> None:
    password, token = _mixed_canary("flower"), _mixed_canary("task")
    saved = redaction.reset_task_secrets()
    try:
        with settings_env(PLUGS_FLOWER_BASIC_AUTH=f"ops:{password}"):
            logs.configure("INFO", stream=captured, log_format="json")
            log = logging.getLogger("tests.operations")
            redaction.add_secrets(token)
            sent = 0
            for secret in (password, token):
                for name, form in echoed_forms(secret).items():
                    log.info("the vendor said (%s): %s.", name, form)
                    log.info("in a field", extra={"vendor_body": {"message": f"echo {form}"}})
                    sent += 2
    finally:
        redaction.restore_task_secrets(saved)
    text = captured.getvalue()
    records = json_lines(text)
    assert len(records) == sent
    assert all(": [redacted]" in r["message"] for r in records[::2])
    assert all(r["vendor_body"]["message"].startswith("echo [redacted]") for r in records[1::2])
    leaked = [
        (secret, name)
        for secret in (password, token)
        for name, form in echoed_forms(secret).items()
        if form in text
    ]
    assert leaked == []


def test_an_unknown_log_level_is_refused_in_one_line() -> None:
    with pytest.raises(ValueError, match="unknown log level 'LOUD'"):
        logs.configure("LOUD", stream=io.StringIO())


# --- a real worker --------------------------------------------------------------------------


def _start_worker(env: dict[str, str], folder: Path, queue: str) -> services.WorkerProcess:
    """`plugs worker` consuming only ``queue`` (so the shared worker never takes our message)."""
    environment = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    environment.update(env, PLUGS_DATA_DIR=str(folder / "var"))
    log = folder / "worker.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "workers.cli", "worker", "--concurrency", "1"]
            + ["--loglevel", "INFO", "--queues", queue, "--without-mingle", "--without-gossip"]
            + ["--hostname", f"ops-logs-{os.getpid()}@%h"],
            env=environment,
            cwd=services.ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return services.WorkerProcess(process, log, env)


def _wait_for(worker: services.WorkerProcess, text: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while text not in worker.output():
        assert worker.process.poll() is None, worker.output()[-3000:]
        assert time.monotonic() < deadline, worker.output()[-3000:]
        time.sleep(0.2)


def test_a_real_worker_writes_json_lines_that_never_show_a_canary(
    platform_env: dict[str, str], tmp_path: Path
) -> None:
    flower_password, db_password = _mixed_canary("flower"), _canary("db")
    token = _canary("bearer")
    # PostgreSQL trusts loopback here, so the canary password still connects.
    database = make_url(platform_env["PLUGS_DATABASE_URL"]).set(password=db_password)
    env = {
        **platform_env,
        "PLUGS_LOG_FORMAT": "json",
        "PLUGS_FLOWER_BASIC_AUTH": f"ops:{flower_password}",
        "PLUGS_DATABASE_URL": database.render_as_string(hide_password=False),
    }
    queue = f"ops-logs-{secrets.token_hex(4)}"
    worker = _start_worker(env, tmp_path, queue)
    client = Celery("ops-test-client", broker=platform_env["PLUGS_BROKER_URL"])
    try:
        _wait_for(worker, "ready.")
        # Celery logs the whole body of a message for a task it does not know.
        args = [flower_password, f"redis://:{db_password}@cache:6379/0", f"Bearer {token}"]
        args += list(echoed_forms(flower_password).values())
        args.append(base64.b64encode(f"ops:{flower_password}".encode()).decode())  # Flower's
        client.send_task("ops.no_such_task", args=args, queue=queue)
        _wait_for(worker, "unregistered task")
    finally:
        client.close()
        worker.stop()
    output = worker.output()
    records = json_lines(output)
    unregistered = [r for r in records if "unregistered task" in r["message"]]
    assert unregistered and "[redacted]" in unregistered[0]["message"]
    for canary in (flower_password, db_password, token):
        assert canary not in output
    leaked = [name for name, form in echoed_forms(flower_password).items() if form in output]
    assert leaked == []


def test_a_sync_task_logs_its_task_and_organization_in_every_record(
    app_db: Database, sync_worker: services.WorkerProcess
) -> None:
    with hubspot(app_db) as vendor:
        vendor.sim.add_contacts(5)
        assert vendor.sync(full_refresh=True).status == "success"
        org_id = str(vendor.org_id)
    deadline = time.monotonic() + 30
    while True:
        records = json_lines(sync_worker.output())
        ours = [r for r in records if r.get("organization_id") == org_id]
        done = [r for r in ours if "succeeded" in r["message"]]
        if done or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done, sync_worker.output()[-3000:]
    assert all(r["task_name"] in ("sync.page", "sync.load") and r["task_id"] for r in ours)
    assert done[0]["task_id"] in done[0]["message"]
