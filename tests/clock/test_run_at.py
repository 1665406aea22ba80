"""tests/clock/run_at.py: pytest, the processes it starts and a private PostgreSQL all run
on the fake clock asked for, and the cluster is gone afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.clock import run_at

SCRIPT = Path(run_at.__file__)
PROBE = """
import os, subprocess, sys
from datetime import UTC, datetime, timedelta

import psycopg

START = datetime(2027, 12, 31, 23, 59, 30, tzinfo=UTC)


def test_python_postgresql_and_child_processes_share_the_fake_clock():
    url = os.environ["PLUGS_TEST_DATABASE_URL"].replace("postgresql+psycopg:", "postgresql:")
    with psycopg.connect(url) as connection:
        server = connection.execute("SELECT clock_timestamp()").fetchone()[0]
    here = datetime.now(UTC)
    code = "import time; print(time.time())"
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert timedelta(0) <= here - START < timedelta(minutes=1)
    assert abs(server - here) < timedelta(seconds=2)
    assert abs(float(child.stdout) - here.timestamp()) < 2
"""


def _plain_env() -> dict[str, str]:
    """This environment without a fake clock (the suite itself may be running on one)."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FAKETIME", "PYTEST_", "PLUGS_")) and k != "LD_PRELOAD"
    }


def _clusters() -> set[str]:
    return {p.name for p in Path(tempfile.gettempdir()).glob("plugs-clock-*")}


USABLE = """
from tests.clock import run_at
try:
    libfaketime = run_at.find_libfaketime()
    run_at.check_python(libfaketime, run_at.clock_env(libfaketime, 0), 0)
    run_at.find_postgres_bin()
except run_at.Refused as exc:
    print(exc)
"""


@pytest.fixture
def tools() -> None:
    """Skip where the machine has no usable libfaketime or PostgreSQL server binaries
    (asked off the fake clock: this suite may itself be running on one)."""
    found = subprocess.run(
        [sys.executable, "-c", USABLE],
        env=_plain_env(),
        cwd=run_at.ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    if found.stdout.strip():
        pytest.skip(found.stdout.strip())


def test_the_run_is_on_the_fake_clock_and_leaves_no_cluster(tools: None, tmp_path: Path) -> None:
    (tmp_path / "test_probe.py").write_text(PROBE)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    before = _clusters()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "23:59:30", "--date", "2027-12-31", "--"]
        + ["-p", "no:xdist", "-p", "no:cacheprovider", "-q", "-c", str(tmp_path / "pytest.ini")]
        + [str(tmp_path / "test_probe.py")],
        env=_plain_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "the clock starts at 2027-12-31 23:59:30 UTC" in result.stderr
    assert _clusters() <= before


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["7:30"], "not a time of day: '7:30'"),
        (["24:00"], "not a date and time: 24:00"),
        (["23:30", "--date", "2026-02-30"], "not a date and time: 2026-02-30 23:30"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str) -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args], env=_plain_env(), capture_output=True, text=True
    )
    lines = result.stderr.splitlines()
    assert result.returncode == 2 and result.stdout == "" and len(lines) == 1
    assert lines[0].startswith(f"run_at: error: {message}")
