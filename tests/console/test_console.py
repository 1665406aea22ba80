"""The web console in a real browser (Debian's Chromium, driven by Playwright), against
the real HTTP app, a real worker, PostgreSQL with row-level security and the HubSpot
simulator: sign in with an API key, add HubSpot, sync, watch the counts move, compare
them with integration_logs, read a failed record's reason, replay it; another
organization's integration is not found; a read-only key sees no button and is refused.

Screenshots of every page go to the test's temporary folder, or to
``PLUGS_CONSOLE_SCREENSHOTS`` (``bench/console_screenshots.py DIR`` sets it).
"""

from __future__ import annotations

import os
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.integrations import add_integration
from models.accounts import create_organization
from models.api_keys import create_api_key
from models.integrations import IntegrationLog
from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import serve
from tests import services

# the first run on a CI machine may install Chromium from Debian's packages first
pytestmark = [pytest.mark.usefixtures("sync_worker"), pytest.mark.timeout(900)]
TOKEN = "pat-na1-console"


class SlowHubSpot(HubSpotSimulator):
    """HubSpot answering its CRM calls after ``delay`` seconds: a run long enough to watch."""

    def __init__(self, delay: float) -> None:
        super().__init__(private_app_token=TOKEN, enforce_limits=False)
        self.delay = delay

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith("/crm/v3/objects/contacts") and self.delay:
            time.sleep(self.delay)
        return super().handle(request)


@pytest.fixture
def console(platform_env: dict[str, str], tmp_path: Path) -> Iterator[services.WorkerProcess]:
    env = {**platform_env, "PLUGS_CONSOLE_SECRET": secrets.token_urlsafe(32)}
    handle = services.start_http(env, tmp_path / "http")
    yield handle
    handle.stop()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PLUGS_CONSOLE_SCREENSHOTS") or tmp_path / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _text(page: Any, selector: str) -> str:
    """The element's text; read again if the page reloaded itself meanwhile (a run's page
    does when the run ends)."""
    from playwright.sync_api import Error

    for _ in range(20):
        try:
            return str(page.inner_text(selector)).strip()
        except Error:
            time.sleep(0.1)
    return str(page.inner_text(selector)).strip()


def _number(page: Any, selector: str) -> int:
    return int(_text(page, selector).replace(",", ""))


def _sign_in(page: Any, base: str, key: str, shot: Path | None = None) -> None:
    page.goto(f"{base}/console/")
    if shot is not None:
        page.screenshot(path=str(shot))
    page.fill("#api_key", key)
    page.click("#sign-in-key")
    page.wait_for_selector("#integrations")


def test_the_console_in_a_browser(
    browser: Any, console: services.WorkerProcess, app_db: Database, shots: Path
) -> None:
    base = console.env["base_url"]
    org = create_organization(app_db, "Console customer")
    _, key = create_api_key(app_db, org.id, "console")
    _, read_only_key = create_api_key(app_db, org.id, "auditor", read_only=True)
    other = create_organization(app_db, "Someone else")
    theirs = add_integration(
        app_db, other.id, "hubspot", {"token": "pat-na1-theirs"}, {"base_url": base}
    )
    sim = SlowHubSpot(delay=0.0)
    ids = sim.add_contacts(1200)
    sim.update_contact(ids[3], email="broken@@example.test")

    page = browser.new_page(viewport={"width": 1200, "height": 900})
    with serve(sim) as server:
        _sign_in(page, base, key, shots / "sign-in.png")
        page.screenshot(path=str(shots / "integrations-empty.png"), full_page=True)

        # add HubSpot against the simulator: checked with one call, as the CLI does
        page.select_option("#provider", "hubspot")
        page.fill("#name", "Acme CRM")
        page.fill("#token", TOKEN)
        page.fill("#settings", f"base_url={server.base_url}")
        page.click("#add")
        page.wait_for_selector("#integration")
        assert "added hubspot" in page.inner_text("#notice")
        integration_id = uuid.UUID(page.url.rstrip("/").rsplit("/", 1)[1])
        page.screenshot(path=str(shots / "integration.png"), full_page=True)

        # sync: the run's page shows the counts moving over SSE
        sim.delay = 0.3
        with page.expect_navigation():
            page.click("#sync")
        run_id = uuid.UUID(page.url.rstrip("/").rsplit("/", 1)[1])
        seen = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen.append(_number(page, "#total-done"))
            if _text(page, "#run-status") != "running":
                break
            if seen[-1] > 0 and not (shots / "run-live.png").exists():
                page.screenshot(path=str(shots / "run-live.png"), full_page=True)
            time.sleep(0.2)
        # the page reloads itself when the run ends, with the run's failed records
        page.wait_for_selector("#live:not([sse-connect])")
        assert page.inner_text("#run-status") == "partial"
        moving = sorted(set(seen))
        assert len(moving) >= 3 and any(0 < n < 1199 for n in moving), seen  # live, moving
        with app_db.tenant(org.id) as session:
            run = session.get(IntegrationLog, run_id)
            assert run is not None
            final = (run.records_processed, run.records_failed)
        assert final == (1199, 1)
        assert (_number(page, "#total-done"), _number(page, "#total-failed")) == final

        # the failed record's reason, then its replay once fixed at the vendor
        page.click(f"#failures summary:has-text('{ids[3]}')")
        reason = page.inner_text("#failures .reason")
        assert "email" in reason.lower(), reason
        page.screenshot(path=str(shots / "run-failed-records.png"), full_page=True)
        sim.delay = 0.0
        sim.update_contact(ids[3], email="fixed@example.test")
        with page.expect_navigation():
            page.click("#replay")
        assert str(run_id) not in page.url
        page.wait_for_selector("#live:not([sse-connect])", timeout=60_000)
        assert page.inner_text("#run-status") == "success"
        assert (_number(page, "#total-done"), _number(page, "#total-failed")) == (1, 0)
        page.screenshot(path=str(shots / "run-replay.png"), full_page=True)

        page.goto(f"{base}/console/integrations")
        row = page.inner_text(f"tr[data-integration='{integration_id}']")
        assert "success" in row and "Acme CRM" in row
        page.screenshot(path=str(shots / "integrations.png"), full_page=True)
        page.goto(f"{base}/console/integrations/{integration_id}")
        assert page.locator("#chart rect.synced").count() >= 1
        page.screenshot(path=str(shots / "integration-24h.png"), full_page=True)
        page.goto(f"{base}/console/integrations/{integration_id}/webhooks")
        page.screenshot(path=str(shots / "webhooks.png"), full_page=True)
        page.goto(f"{base}/console/notifications")
        page.screenshot(path=str(shots / "notifications.png"), full_page=True)

        # another organization's integration is not reachable by URL
        csrf = page.get_attribute("input[name=csrf_token]", "value")
        answer = page.goto(f"{base}/console/integrations/{theirs.id}")
        assert answer is not None and answer.status == 404
        assert page.inner_text("h1") == "not found"
        refused = page.request.post(
            f"{base}/console/integrations/{theirs.id}/pause", form={"csrf_token": csrf or ""}
        )
        assert refused.status == 404

        # a read-only key sees no changing button, and the server refuses the change
        reader = browser.new_page()
        _sign_in(reader, base, read_only_key)
        reader.goto(f"{base}/console/integrations/{integration_id}")
        assert reader.locator("#sync, #pause, #remove, #test").count() == 0
        assert reader.locator("#add-integration").count() == 0
        token = reader.get_attribute("input[name=csrf_token]", "value")
        forbidden = reader.request.post(
            f"{base}/console/integrations/{integration_id}/sync", form={"csrf_token": token or ""}
        )
        assert forbidden.status == 403
        reader.close()
    page.close()
    names = sorted(p.name for p in shots.glob("*.png"))
    assert len(names) == 10 and all(re.match(r"[a-z0-9-]+\.png$", n) for n in names), names
