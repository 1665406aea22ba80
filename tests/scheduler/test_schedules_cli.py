"""`plugs schedules` and `plugs integrations add --schedule/--cron`, as an operator types them."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def org(plugs, tmp_path):  # type: ignore[no-untyped-def]
    env = {"PLUGS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    assert plugs("db", "upgrade", env=env).returncode == 0
    return env, plugs("org", "create", "Acme", env=env).stdout.strip()


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_a_schedule_is_set_listed_paused_and_cleared(plugs, org) -> None:  # type: ignore[no-untyped-def]
    env, org_id = org
    added = plugs(
        "integrations", "add", "hubspot", "--org", org_id, "--token", "pat-x", "--no-verify",
        "--cron", "0 9 * * 1-5", "--timezone", "Europe/Paris", env=env,
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    integration = str(uuid.UUID(added.stdout.strip()))
    listed = plugs("schedules", "list", "--org", org_id, env=env).stdout
    assert f"{integration}  hubspot    cron '0 9 * * 1-5' Europe/Paris" in listed
    assert "last never" in listed

    changed = plugs("schedules", "set", integration, "--every", "15m", env=env)
    assert changed.returncode == 0 and changed.stdout.startswith("every 15m; next run ")
    per_stream = plugs(
        "schedules", "set", integration, "--every", "5m", "--stream", "contacts", env=env
    )
    assert per_stream.returncode == 0, per_stream.stderr
    assert plugs("schedules", "pause", integration, env=env).returncode == 0
    listed = plugs("schedules", "list", env=env).stdout.splitlines()
    assert len(listed) == 2 and all(line.endswith("(paused)") for line in listed)
    assert plugs("schedules", "clear", integration, env=env).stdout.strip() == "removed 2 schedules"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--every", "15 minutes"], "write one of: every 30s, every 15m, every 2h, every 1d"),
        (["--cron", "61 * * * *"], "not a cron expression"),
        (["--cron", "0 * * * *", "--timezone", "Mars/Olympus"], "unknown time zone"),
        (["--every", "5m", "--cron", "0 * * * *"], "give either an interval"),
        (["--every", "5m", "--stream", "nope"], "hubspot has no stream nope"),
    ],
)
def test_bad_schedules_are_refused_in_one_line(plugs, org, args, message) -> None:  # type: ignore[no-untyped-def]
    env, org_id = org
    added = plugs(
        "integrations", "add", "hubspot", "--org", org_id, "--token", "x", "--no-verify", env=env
    )
    line = _one_line_error(plugs("schedules", "set", added.stdout.strip(), *args, env=env))
    assert message in line


def test_integrations_add_with_a_bad_schedule_adds_nothing(plugs, org) -> None:  # type: ignore[no-untyped-def]
    env, org_id = org
    line = _one_line_error(
        plugs(
            "integrations",
            "add",
            "hubspot",
            "--org",
            org_id,
            "--token",
            "x",
            "--no-verify",
            "--schedule",
            "every 1w",
            env=env,
        )  # fmt: skip
    )
    assert "not an interval" in line
    assert plugs("integrations", "list", env=env).stdout.strip() == ""
