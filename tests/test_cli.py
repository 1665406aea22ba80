"""The `plugs` command: what an operator types and sees, run as a real subprocess."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def migrated(plugs, tmp_path):  # type: ignore[no-untyped-def]
    env = {"PLUGS_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.sqlite3'}"}
    result = plugs("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    from models import migrate

    assert f"database at revision {migrate.head_revision()}" in result.stdout
    return env


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_org_create_prints_the_new_id_and_org_list_shows_it(plugs, migrated) -> None:
    created = plugs(
        "org", "create", "Acme Events", "--domain", "acme.test", "--plan", "pro", env=migrated
    )
    assert created.returncode == 0, created.stderr
    org_id = uuid.UUID(created.stdout.strip())
    listed = plugs("org", "list", env=migrated)
    assert f"{org_id}  pro         Acme Events" in listed.stdout


def test_an_invalid_plan_is_one_line_and_a_non_zero_exit(plugs, migrated) -> None:
    line = _one_line_error(plugs("org", "create", "Acme", "--plan", "gold", env=migrated))
    assert "gold" in line and "free" in line


def test_user_create_refuses_a_duplicate_email_in_one_line(plugs, migrated) -> None:
    org_id = plugs("org", "create", "Acme", env=migrated).stdout.strip()
    first = plugs(
        "user", "create", "--org", org_id, "--email", "Ann@Acme.test", "--admin", env=migrated
    )
    assert first.returncode == 0, first.stderr
    uuid.UUID(first.stdout.strip())
    line = _one_line_error(
        plugs("user", "create", "--org", org_id, "--email", "ann@acme.test", env=migrated)
    )
    assert "ann@acme.test is already a user" in line


def test_user_create_in_an_unknown_organization_is_one_line(plugs, migrated) -> None:
    line = _one_line_error(
        plugs("user", "create", "--org", str(uuid.uuid4()), "--email", "a@b.test", env=migrated)
    )
    assert "no organization with id" in line


def test_an_id_that_is_not_a_uuid_is_refused(plugs, migrated) -> None:
    result = plugs("user", "create", "--org", "acme", "--email", "a@b.test", env=migrated)
    assert "is not an id" in _one_line_error(result) and result.returncode == 2


def test_an_invalid_email_is_one_line(plugs, migrated) -> None:
    org_id = plugs("org", "create", "Acme", env=migrated).stdout.strip()
    line = _one_line_error(
        plugs("user", "create", "--org", org_id, "--email", "nobody", env=migrated)
    )
    assert "not an email address" in line


def test_commands_before_the_database_is_migrated_say_so(plugs, tmp_path) -> None:
    env = {"PLUGS_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
    line = _one_line_error(plugs("org", "list", env=env))
    assert "no such table" in line


@pytest.mark.parametrize(
    "command",
    [
        [],
        ["db"],
        ["db", "upgrade"],
        ["db", "create-app-role"],
        ["org", "create"],
        ["org", "list"],
        ["user", "create"],
        ["demo"],
    ],
)
def test_every_command_has_help(plugs, command: list[str]) -> None:
    result = plugs(*command, "--help")
    assert result.returncode == 0 and "Usage:" in result.stdout


def test_worker_and_beat_pass_their_arguments_to_celery(plugs) -> None:
    worker = plugs("worker", "--help")
    assert worker.returncode == 0 and "--concurrency" in worker.stdout
    beat = plugs("beat", "--help")
    assert beat.returncode == 0 and "--schedule" in beat.stdout


def test_bad_settings_are_one_line(plugs, tmp_path) -> None:
    env = {"PLUGS_TASK_TIME_LIMIT": "3000", "PLUGS_VISIBILITY_TIMEOUT": "3600"}
    line = _one_line_error(plugs("org", "list", env=env))
    assert "invalid settings" in line
