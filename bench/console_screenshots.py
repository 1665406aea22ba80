"""Screenshots of every page of the web console, regenerated with one command:

    .venv/bin/python bench/console_screenshots.py DIR

It runs the console's browser test (tests/console/test_console.py: Debian's Chromium,
the real HTTP app and worker, PostgreSQL and Redis on 127.0.0.1 as for the tests, the
HubSpot simulator) with ``PLUGS_CONSOLE_SCREENSHOTS=DIR``, so the pictures are those of
the pages the test checks: sign-in, integrations, one integration with its last 24 hours,
a run live and finished with its failed records, its replay, webhook and notification
deliveries.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: bench/console_screenshots.py DIR", file=sys.stderr)
        return 2
    folder = Path(argv[0]).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    code = subprocess.call(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "console" / "test_console.py"),
        ],
        cwd=ROOT,
        env={**os.environ, "PLUGS_CONSOLE_SCREENSHOTS": str(folder)},
    )
    shots = sorted(folder.glob("*.png"))
    for shot in shots:
        print(shot)
    return code or (0 if shots else 1)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
