"""The README's first command: the main job on the embedded default, with no servers."""

from __future__ import annotations

import re


def test_demo_runs_a_task_through_a_real_worker_with_no_servers(plugs) -> None:
    result = plugs("demo", timeout=180)
    assert result.returncode == 0, result.stderr
    assert "embedded default (no servers)" in result.stdout
    assert re.search(r"ran maintenance\.ping against sqlite \(1 organizations\)", result.stdout)
    assert "hubspot sync partial" in result.stdout
    assert "504 records synced, 1 failed (invalid email address" in result.stdout
    again = plugs("demo", timeout=180)
    assert again.returncode == 0, again.stderr
    assert "(1 organizations)" in again.stdout  # running it twice reuses the demo organization
