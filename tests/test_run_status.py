"""One rule ends every run, sync and webhook alike (runs.lifecycle.run_status)."""

from __future__ import annotations

import pytest

from runs.lifecycle import run_status


@pytest.mark.parametrize(
    ("succeeded", "failed", "broken", "status"),
    [
        (0, 0, False, "success"),
        (5, 0, False, "success"),
        (5, 1, False, "partial"),
        (5, 0, True, "partial"),
        (0, 3, False, "failed"),
        (0, 0, True, "failed"),
        (0, 3, True, "failed"),
    ],
)
def test_a_run_is_ended_by_one_rule(succeeded: int, failed: int, broken: bool, status: str) -> None:
    assert run_status(succeeded, failed, broken) == status
