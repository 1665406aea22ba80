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


# --- settings: errors name the variable, JSON ones get a hint, misspellings are reported ---


def test_a_bad_setting_names_its_variable(plugs) -> None:
    line = _one_line_error(plugs("org", "list", env={"PLUGS_DATABASE_POOL_SIZE": "ten"}))
    assert line.startswith("Error: invalid settings: PLUGS_DATABASE_POOL_SIZE: ")
    assert "database_pool_size" not in line


def test_a_json_setting_given_as_plain_text_gets_a_hint(plugs) -> None:
    line = _one_line_error(plugs("org", "list", env={"PLUGS_SMTP_SERVERS": "smtp.example.com"}))
    assert "PLUGS_SMTP_SERVERS is not JSON" in line
    assert """PLUGS_SMTP_SERVERS='[{"host": "..."}]'""" in line
    nested = _one_line_error(plugs("org", "list", env={"PLUGS_SMTP_SERVERS": '[{"port": 25}]'}))
    assert "PLUGS_SMTP_SERVERS[0].host: Field required" in nested


def test_a_misspelled_variable_is_reported_with_the_closest_setting(plugs, migrated) -> None:
    result = plugs("org", "list", env={**migrated, "PLUGS_DATABSE_POOL_SIZE": "5"})
    assert result.returncode == 0, result.stderr
    assert "PLUGS_DATABSE_POOL_SIZE is not a setting" in result.stderr
    assert "did you mean PLUGS_DATABASE_POOL_SIZE?" in result.stderr
    quiet = plugs("org", "list", env={**migrated, "PLUGS_APP_DB_PASSWORD": "x"})
    assert quiet.returncode == 0 and quiet.stderr == ""  # far from any setting: a password


# --- organizations, users and feed tokens ---------------------------------------------------


def test_org_create_refuses_a_name_another_organization_has(plugs, migrated) -> None:
    first = plugs("org", "create", "Acme Events", env=migrated)
    assert first.returncode == 0, first.stderr
    line = _one_line_error(plugs("org", "create", " acme events ", env=migrated))
    assert f"organization {first.stdout.strip()} is already named 'Acme Events'" in line
    assert len(plugs("org", "list", env=migrated).stdout.splitlines()) == 1


def test_feed_token_is_only_for_a_user_of_the_organization(plugs, migrated) -> None:
    env = {**migrated, "PLUGS_FEED_SECRET": "a-feed-secret-of-the-tests"}
    org_id = plugs("org", "create", "Acme", env=env).stdout.strip()
    other_org = plugs("org", "create", "Other", env=env).stdout.strip()
    user_id = plugs("user", "create", "--org", org_id, "--email", "a@acme.test", env=env)
    user_id = user_id.stdout.strip()
    token = plugs("feed-token", "--org", org_id, "--user", user_id, env=env)
    assert token.returncode == 0 and token.stdout.count(".") == 1, token.stderr
    unknown = plugs("feed-token", "--org", org_id, "--user", str(uuid.uuid4()), env=env)
    assert "no user" in _one_line_error(unknown) and unknown.stdout == ""
    elsewhere = plugs("feed-token", "--org", other_org, "--user", user_id, env=env)
    assert f"no user {user_id} in organization {other_org}" in _one_line_error(elsewhere)


# --- creating the database (README section 3) ------------------------------------------------


def test_db_create_makes_the_database_upgrade_needs(plugs, pg_server_url: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"plugs_cli_{uuid.uuid4().hex[:8]}"
    url = make_url(pg_server_url).set(database=name).render_as_string(hide_password=False)
    env = {"PLUGS_MIGRATION_DATABASE_URL": url, "PLUGS_DATABASE_URL": url}
    try:
        missing = _one_line_error(plugs("db", "upgrade", env=env))
        assert f'database "{name}" does not exist (create it with `plugs db create`)' in missing
        created = plugs("db", "create", env=env)
        assert created.stdout.strip() == f"database {name} created", created.stderr
        again = plugs("db", "create", env=env)
        assert again.stdout.strip() == f"database {name} exists already"
        upgraded = plugs("db", "upgrade", env=env)
        assert upgraded.returncode == 0 and "database at revision" in upgraded.stdout
    finally:
        admin = create_engine(pg_server_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# --- plugs up: no open Flower ------------------------------------------------------------------


def test_up_refuses_to_run_flower_without_basic_auth(plugs, tmp_path) -> None:
    env = {"PLUGS_DATABASE_URL": f"sqlite:///{tmp_path / 'up.sqlite3'}"}
    line = _one_line_error(plugs("up", env=env, timeout=60))
    assert "Flower needs basic auth: set PLUGS_FLOWER_BASIC_AUTH" in line
    assert "--unauthenticated-local" in line and "--no-flower" in line
    assert not (tmp_path / "up.sqlite3").exists()  # refused before anything started
    malformed = plugs("up", env={**env, "PLUGS_FLOWER_BASIC_AUTH": "no-colon"}, timeout=60)
    assert "user:password" in _one_line_error(malformed)
