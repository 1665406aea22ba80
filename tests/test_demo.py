"""The README's first command: `plugs demo` on the embedded default (no servers) and on
PostgreSQL + Redis, and `plugs up --demo`; what it reports is what the database holds."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from models import (
    Contact,
    Event,
    EventAttendee,
    Integration,
    IntegrationLog,
    Notification,
    Organization,
    User,
    WebhookDelivery,
)
from models.schedules import SyncSchedule
from models.session import Database
from tests import services
from tests.services import free_port

PROVIDERS = {"hubspot", "mailchimp", "zoom", "teams"}
DEMO_ORG = "The Plugs Demo"


def _counts(db: Database) -> dict[str, object]:
    """What the demo organization holds, read from the database."""
    with db.system("test: find the demo organization") as session:
        [org_id] = session.scalars(select(Organization.id).where(Organization.name == DEMO_ORG))
    with db.tenant(org_id) as session:

        def count(model: type) -> int:
            return session.scalar(select(func.count()).select_from(model)) or 0

        runs = session.execute(
            select(Integration.provider, IntegrationLog.operation, IntegrationLog.status).join(
                Integration, Integration.id == IntegrationLog.integration_id
            )
        ).all()
        return {
            "users": count(User),
            "admins": session.scalar(select(func.count()).where(User.is_admin.is_(True))),
            "events": count(Event),
            "attendees": count(EventAttendee),
            "contacts": count(Contact),
            "integrations": sorted(session.scalars(select(Integration.provider))),
            "schedules": count(SyncSchedule),
            "synced": {p for p, op, status in runs if op == "sync" and status != "running"},
            "webhook_runs": {
                p for p, op, status in runs if op == "webhook" and status == "success"
            },
            "deliveries": set(
                session.execute(select(WebhookDelivery.provider, WebhookDelivery.status)).all()
            ),
            "notifications": sorted(session.scalars(select(Notification.title))),
            "paused": not any(session.scalars(select(Integration.is_active))),
        }


def _check_report(stdout: str) -> None:
    report = [line for line in stdout.splitlines() if not line.startswith("{")]
    shown = "\n".join(report)  # the whole report when an expectation fails
    assert "hubspot sync partial: 504 records synced, 1 failed (invalid email address" in stdout, (
        shown
    )
    assert "mailchimp sync success: 300 records synced, 0 failed" in stdout, shown
    assert re.search(r"zoom sync success: \d+ records synced, 0 failed", stdout), shown
    assert "teams sync success: 2" in stdout, shown  # the organizer's 200 events and our meeting
    for provider in PROVIDERS:
        found = re.search(
            rf"{provider} sync .*webhooks: [1-9] sent now, [1-9]\d* processed", stdout
        )
        assert found, shown
    assert "the admin's feed (for a day): http://127.0.0.1:8000/feed/?token=" in stdout, shown
    assert "stopped worker, http" in stdout, shown


def _check_data(counts: dict[str, object]) -> None:
    assert counts["users"] == 3 and counts["admins"] == 1
    assert counts["events"] == 3 + 200  # ours, and the Teams organizer's calendar
    assert counts["attendees"] == 3 * 3
    assert counts["contacts"] == 499 + 1 + 300 + 1  # HubSpot (+1 by webhook), Mailchimp (+1)
    assert counts["integrations"] == sorted(PROVIDERS)
    assert counts["schedules"] == 4
    assert counts["synced"] == PROVIDERS and counts["webhook_runs"] == PROVIDERS
    assert {status for _, status in counts["deliveries"]} == {"processed"}  # type: ignore[attr-defined]
    notifications = counts["notifications"]
    assert notifications.count("Welcome to The Plugs") == 1  # type: ignore[attr-defined]
    assert notifications.count("First syncs finished") == 1  # type: ignore[attr-defined]
    assert counts["paused"]  # their simulators stopped with the command


def _same_data(first: dict[str, object], second: dict[str, object]) -> None:
    keys = ("users", "events", "attendees", "contacts", "integrations", "schedules")
    assert {k: second[k] for k in keys} == {k: first[k] for k in keys}
    ours = ("Welcome to The Plugs", "First syncs finished")
    for title in ours:  # the demo's own; run notifications arrive as the runs end
        assert second["notifications"].count(title) == 1  # type: ignore[attr-defined]


def test_demo_on_the_embedded_default_fills_the_database_it_reports(plugs, tmp_path: Path) -> None:
    result = plugs("demo", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "embedded default (no servers)" in result.stdout
    assert re.search(r"ran maintenance\.ping against sqlite \(0 organizations\)", result.stdout)
    _check_report(result.stdout)
    db = Database(f"sqlite:///{tmp_path / 'var' / 'plugs.sqlite3'}")
    try:
        first = _counts(db)
        _check_data(first)

        again = plugs("demo", timeout=240)
        assert again.returncode == 0, again.stdout + again.stderr
        assert "(1 organizations)" in again.stdout  # the demo organization is reused
        _check_report(again.stdout)
        _same_data(first, _counts(db))
    finally:
        db.dispose()


def test_demo_on_postgresql_and_redis_runs_as_the_app_role(
    plugs, platform_env: dict[str, str], app_db: Database, redis_url: str
) -> None:
    # a Redis db of its own: the suite's shared worker and other tests' leftover tasks
    # must not take the demo's worker's time (as they would on a platform's shared broker)
    own, release = services.claim_redis_db(redis_url.rsplit("/", 1)[0])
    env = {**platform_env, "PLUGS_BROKER_URL": own, "PLUGS_RESULT_BACKEND": own}
    env["PLUGS_REDIS_URL"] = own
    try:
        result = plugs("demo", env=env, timeout=240)
    finally:
        release()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configured services" in result.stdout
    assert "ran maintenance.ping against postgresql" in result.stdout
    _check_report(result.stdout)
    first = _counts(app_db)
    _check_data(first)

    again = plugs("demo", env=platform_env, timeout=240)
    assert again.returncode == 0, again.stdout + again.stderr
    _same_data(first, _counts(app_db))


@pytest.fixture
def up_demo(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """`plugs up --demo --no-flower` on the embedded default, on a free port."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
    env["PLUGS_DATA_DIR"] = str(tmp_path / "var")
    process = subprocess.Popen(
        [sys.executable, "-m", "workers.cli", "up", "--demo", "--no-flower", "--port", str(port)],
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:  # the test failed midway: stop it and its children
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_up_with_demo_syncs_live_and_stops_every_child_on_ctrl_c(
    up_demo: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    process, port = up_demo
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        assert line, "plugs up exited early:\n" + "".join(lines)
        lines.append(line)
        if "the admin's feed" in line:
            break
    output = "".join(lines)
    assert "hubspot sync partial: 504 records synced" in output, output
    assert httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200
    feed = re.search(r"(http://\S+/feed/\?token=\S+)", output)
    assert feed is not None and str(port) in feed.group(1)
    listed = httpx.get(feed.group(1))
    assert listed.status_code == 200 and "Welcome to The Plugs" in listed.text
    pids = [int(p) for p in re.findall(r"pid (\d+)", output)]
    assert len(pids) == 3  # worker, beat, http

    process.send_signal(signal.SIGINT)
    rest, _ = process.communicate(timeout=90)
    assert process.returncode == 0, output + rest
    assert "stopped worker, beat, http" in rest
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
