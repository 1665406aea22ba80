"""The browser of the console tests: Debian's Chromium, driven by Playwright.

Playwright is told to use the system's Chromium (``/usr/bin/chromium``, or
``PLUGS_TEST_CHROMIUM``), so nothing is downloaded.  When it is missing and the run is CI's
(``CI=true``, as root), it is installed from Debian's packages once (under a lock: the two
xdist workers may ask together); still missing, the test fails under CI and is skipped
elsewhere, saying how to install it.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

CANDIDATES = ("chromium", "chromium-browser")
LOCK = Path("/tmp/plugs-chromium-install.lock")


def find_chromium() -> str | None:
    configured = os.environ.get("PLUGS_TEST_CHROMIUM")
    if configured:
        return configured if Path(configured).exists() else None
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


def install_chromium() -> None:
    """``apt-get install chromium`` (Debian), once per machine, as root only."""
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        return
    with LOCK.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if find_chromium() is not None:
            return
        quiet = {"capture_output": True, "check": False, "timeout": 600}
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, **quiet)  # type: ignore[call-overload]
        subprocess.run(  # type: ignore[call-overload]
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium"],
            env=env,
            **quiet,
        )


@pytest.fixture(scope="session")
def chromium_path() -> str:
    in_ci = os.environ.get("CI", "").lower() == "true"
    found = find_chromium()
    if found is None and in_ci:
        install_chromium()
        found = find_chromium()
    if found is None:
        message = "Chromium is missing: `apt-get install -y chromium` (Debian's package)"
        if in_ci:
            pytest.fail(message)
        pytest.skip(message)
    return found


# Module-scoped: Playwright's sync API keeps an event loop running in this thread while
# the browser is open, and later tests of the same xdist worker call asyncio.run().
@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_path,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
            # on the suite's fake clock (tests/clock/run_at.py) the browser keeps the real
            # one: it only shows what the server rendered
            env={
                k: v
                for k, v in os.environ.items()
                if k != "LD_PRELOAD" and not k.startswith("FAKETIME")
            },
        )
        yield launched
        launched.close()
