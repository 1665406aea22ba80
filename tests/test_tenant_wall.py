"""The tenant wall holds against plain SQL as the application role (PostgreSQL).

Someone who can run any SQL as the application role -- an injection, or the role's own
password -- but holds neither the system role's password nor the process's memory tries
every door we know of: the old system setting, ``SET``, ``set_config``, a forged or
replayed tenant token, ``SET ROLE``, ``RESET ROLE`` and every function they may call.
After each, they see 0 rows of organization B and change 0 of B's rows.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from models import migrate, rls
from models.base import Base
from models.session import Database, make_engine
from tests import services
from tests.factories import World, make_world

#: the tables the issue saw leak, then every tenant table
LEAKED = ["contacts", "users", "integrations"]
TENANT_TABLES = rls.tenant_tables(Base.metadata)


@pytest.fixture(scope="module")
def worlds(pg_db: Database) -> tuple[World, World]:
    return make_world(pg_db, "A"), make_world(pg_db, "B")


def _rows_of(connection: Connection, org: uuid.UUID) -> dict[str, int]:
    """Rows of ``org`` this connection sees, per tenant table (tables with none left out)."""
    seen = {}
    for table, column in TENANT_TABLES:
        count = connection.execute(
            text(f"SELECT count(*) FROM {table} WHERE {column} = :org"), {"org": org}
        ).scalar_one()
        if count:
            seen[table] = count
    return seen


def _changes_to(connection: Connection, org: uuid.UUID) -> int:
    """Rows of ``org`` an UPDATE and a DELETE reach (inside a savepoint, undone)."""
    savepoint = connection.begin_nested()
    try:
        updated = connection.execute(
            text("UPDATE contacts SET first_name = 'pwned' WHERE organization_id = :org"),
            {"org": org},
        ).rowcount
        updated += connection.execute(
            text("UPDATE integrations SET is_active = NOT is_active WHERE organization_id = :org"),
            {"org": org},
        ).rowcount
        updated += connection.execute(
            text("UPDATE users SET email = 'pwned@example.test' WHERE organization_id = :org"),
            {"org": org},
        ).rowcount
        deleted = connection.execute(
            text("DELETE FROM analytics_events WHERE organization_id = :org"), {"org": org}
        ).rowcount
    finally:
        savepoint.rollback()
    return updated + deleted


def _try(connection: Connection, statement: str, **params: object) -> str:
    """Run ``statement``; a refusal is kept inside a savepoint, so the attack goes on."""
    savepoint = connection.begin_nested()
    try:
        connection.execute(text(statement), params)
    except DBAPIError as exc:
        savepoint.rollback()
        return f"refused: {str(exc.orig).splitlines()[0]}"
    savepoint.commit()
    return "ran"


@pytest.fixture
def attacker(pg_db: Database, request: pytest.FixtureRequest) -> Iterator[Connection]:
    """A raw connection of the app role: inside A's transaction (an injection), or bare."""
    connection = pg_db.engine.connect()
    connection.begin()
    if getattr(request, "param", "in A's transaction") == "in A's transaction":
        a, _ = request.getfixturevalue("worlds")
        connection.execute(
            text("SELECT set_config(:key, :token, true)"),
            {"key": rls.TOKEN_SETTING, "token": pg_db.tenant_token(a.org_id)},
        )
    yield connection
    connection.rollback()
    connection.close()


def _token(pg_db: Database, org: uuid.UUID, **changes: object) -> str:
    key = pg_db._tenant_key or pg_db._read_tenant_key(None)
    return dataclasses.replace(key, **changes).token(org)


def _tricks(
    pg_db: Database, a: World, b: World, pg_database: dict[str, str]
) -> dict[str, list[str]]:
    """Each trick: the statements an attacker runs, in order."""
    owner = make_url(pg_database["owner_url"]).username
    a_token = pg_db.tenant_token(a.org_id)
    _, issued, a_mac = a_token.split(".")
    return {
        "set_config system_access, session-wide": [
            "SELECT set_config('app.system_access', 'on', false)"
        ],
        "set_config system_access, transaction": [
            "SELECT set_config('app.system_access', 'on', true)"
        ],
        "SET system_access": ["SET app.system_access = on", "SET LOCAL app.system_access = on"],
        "the old organization setting": [
            f"SET app.current_organization = '{b.org_id}'",
            f"SELECT set_config('app.current_organization', '{b.org_id}', true)",
        ],
        "B's id in A's token": [
            f"SELECT set_config('{rls.TOKEN_SETTING}', '{b.org_id}.{issued}.{a_mac}', true)"
        ],
        "B's token under a key of one's own": [
            f"SELECT set_config('{rls.TOKEN_SETTING}', "
            f"'{_token(pg_db, b.org_id, key=bytes(64))}', true)"
        ],
        "B's real token from an hour ago (replayed)": [
            f"SET {rls.TOKEN_SETTING} = '{_token(pg_db, b.org_id, clock_offset=-3600.0)}'"
        ],
        "a token with trailing bytes": [
            f"SELECT set_config('{rls.TOKEN_SETTING}', '{a_token}.{b.org_id}', true)"
        ],
        "SET ROLE to the system role": [f"SET ROLE {pg_database['system_role']}"],
        "SET ROLE to the schema owner": [f"SET ROLE {owner}"],
        "SET SESSION AUTHORIZATION": [f"SET SESSION AUTHORIZATION {pg_database['system_role']}"],
        "RESET ROLE": ["RESET ROLE", "SET ROLE NONE"],
        "row_security off": ["SET row_security = off"],
        "read the key": [f"SELECT * FROM {rls.KEY_TABLE}"],
        "replace the verifier": [
            "CREATE OR REPLACE FUNCTION plugs_current_organization() RETURNS uuid "
            f"LANGUAGE sql AS $$ SELECT '{b.org_id}'::uuid $$"
        ],
        "a function of one's own": [
            "CREATE FUNCTION public.sha256(text) RETURNS bytea LANGUAGE sql "
            "AS $$ SELECT '\\x00'::bytea $$"
        ],
    }


TRICKS = [
    "set_config system_access, session-wide",
    "set_config system_access, transaction",
    "SET system_access",
    "the old organization setting",
    "B's id in A's token",
    "B's token under a key of one's own",
    "B's real token from an hour ago (replayed)",
    "a token with trailing bytes",
    "SET ROLE to the system role",
    "SET ROLE to the schema owner",
    "SET SESSION AUTHORIZATION",
    "RESET ROLE",
    "row_security off",
    "read the key",
    "replace the verifier",
    "a function of one's own",
]


@pytest.mark.parametrize("attacker", ["in A's transaction", "bare"], indirect=True)
@pytest.mark.parametrize("trick", TRICKS)
def test_no_trick_shows_or_changes_another_organizations_rows(
    pg_db: Database,
    pg_database: dict[str, str],
    worlds: tuple[World, World],
    attacker: Connection,
    trick: str,
) -> None:
    a, b = worlds
    outcomes = [_try(attacker, sql) for sql in _tricks(pg_db, a, b, pg_database)[trick]]
    assert attacker.execute(text("SELECT current_user")).scalar() == pg_database["role"]
    try:
        seen = _rows_of(attacker, b.org_id)
    except DBAPIError as exc:  # row_security = off: the query is refused, nothing returned
        assert "row-level security" in str(exc.orig), outcomes
        return
    assert seen == {}, outcomes
    assert _changes_to(attacker, b.org_id) == 0, outcomes


@pytest.mark.parametrize("attacker", ["in A's transaction", "bare"], indirect=True)
def test_calling_every_function_the_app_role_may_call_opens_nothing(
    pg_db: Database, worlds: tuple[World, World], attacker: Connection
) -> None:
    a, b = worlds
    functions = attacker.execute(
        text(
            "SELECT p.oid::regprocedure::text AS signature, p.pronargs, p.prosecdef "
            "FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
            "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') "
            "AND n.nspname NOT LIKE 'pg_toast%' AND p.prokind = 'f' "
            "AND has_function_privilege(p.oid, 'EXECUTE') "
            "AND p.prorettype <> 'trigger'::regtype"
        )
    ).all()
    # the verifier is the only function it may call that runs as someone else
    assert {f.signature for f in functions if f.prosecdef} == {"plugs_current_organization()"}
    for function in functions:
        nulls = ", ".join(["NULL"] * function.pronargs)
        name = function.signature.split("(")[0]
        _try(attacker, f"SELECT {name}({nulls})")
        assert _rows_of(attacker, b.org_id) == {}, function.signature
        assert _changes_to(attacker, b.org_id) == 0, function.signature
    bound = attacker.execute(text("SELECT plugs_current_organization()")).scalar()
    assert bound in (a.org_id, None)


def test_the_app_role_is_not_a_member_of_the_system_role(
    attacker: Connection, pg_database: dict[str, str]
) -> None:
    member = attacker.execute(
        text("SELECT pg_has_role(current_user, :role, 'MEMBER')"),
        {"role": pg_database["system_role"]},
    ).scalar()
    assert member is False


def test_the_startup_check_refuses_an_app_role_that_may_become_the_system_role(
    pg_database: dict[str, str], worlds: tuple[World, World], new_roles: list[str]
) -> None:
    """The door the check closes: a member of the system role sees B after ``SET ROLE``."""
    _, b = worlds
    member = f"wall_member_{uuid.uuid4().hex[:8]}"
    new_roles.append(member)
    owner = make_engine(pg_database["owner_url"], isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        rls.create_app_role(connection, member, "member-pw")
        connection.execute(text(f"GRANT {pg_database['system_role']} TO {member}"))
    owner.dispose()
    url = make_url(pg_database["owner_url"]).set(username=member, password="member-pw")
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            with pytest.raises(rls.UnsafeRoleError, match="may SET ROLE"):
                rls.verify_app_role(connection, [table for table, _ in TENANT_TABLES])
            connection.execute(text(f"SET ROLE {pg_database['system_role']}"))
            assert set(LEAKED) <= set(_rows_of(connection, b.org_id))
            connection.rollback()
    finally:
        engine.dispose()


# --- the controls: without them every test above could pass on a broken binding --------


def test_a_token_our_code_signed_shows_that_organization_and_no_other(
    pg_db: Database, worlds: tuple[World, World]
) -> None:
    a, b = worlds
    for mine, other in ((a, b), (b, a)):
        with pg_db.engine.connect() as connection, connection.begin():
            connection.execute(
                text("SELECT set_config(:key, :token, true)"),
                {"key": rls.TOKEN_SETTING, "token": pg_db.tenant_token(mine.org_id)},
            )
            assert set(LEAKED) <= set(_rows_of(connection, mine.org_id))
            assert _rows_of(connection, other.org_id) == {}
            assert _changes_to(connection, mine.org_id) > 0
            assert _changes_to(connection, other.org_id) == 0


def test_the_system_role_sees_and_changes_every_organization(
    pg_database: dict[str, str], worlds: tuple[World, World]
) -> None:
    system = Database(pg_database["system_url"])
    try:
        with system.engine.connect() as connection, connection.begin():
            for world in worlds:
                assert set(LEAKED) <= set(_rows_of(connection, world.org_id))
                assert _changes_to(connection, world.org_id) > 0
    finally:
        system.dispose()


def test_the_database_verifies_the_same_hmac_python_makes(pg_db: Database) -> None:
    org = uuid.uuid4()
    key = pg_db._tenant_key or pg_db._read_tenant_key(None)
    with pg_db.engine.connect() as connection, connection.begin():
        for token, expected in (
            (key.token(org), org),
            (dataclasses.replace(key, clock_offset=key.clock_offset + 60).token(org), org),
            (dataclasses.replace(key, clock_offset=key.clock_offset - 3600).token(org), None),
            (dataclasses.replace(key, key=key.key[::-1]).token(org), None),
            ("", None),
            ("not a token", None),
        ):
            connection.execute(
                text("SELECT set_config(:key, :token, true)"),
                {"key": rls.TOKEN_SETTING, "token": token},
            )
            bound = connection.execute(text("SELECT plugs_current_organization()")).scalar()
            assert bound == expected, token


# --- what an operator does ----------------------------------------------------------------


def _one_line_error(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture
def new_roles(pg_database: dict[str, str]) -> Iterator[list[str]]:
    """Names for roles a test creates; dropped afterwards (roles are cluster-wide)."""
    names: list[str] = []
    yield names
    owner = make_engine(pg_database["owner_url"], isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        for name in names:
            if connection.execute(
                text("SELECT 1 FROM pg_roles WHERE rolname = :n"), {"n": name}
            ).first():
                connection.execute(text(f'DROP OWNED BY "{name}"'))
                connection.execute(text(f'DROP ROLE "{name}"'))
    owner.dispose()


def test_an_operator_makes_both_roles_and_check_role_passes(
    plugs, pg_database: dict[str, str], new_roles: list[str]
) -> None:
    app, system = f"wall_app_{uuid.uuid4().hex[:8]}", f"wall_sys_{uuid.uuid4().hex[:8]}"
    new_roles += [app, system]
    owner = {
        "PLUGS_MIGRATION_DATABASE_URL": pg_database["owner_url"],
        "PW": "app-pw",
        "SPW": "sys-pw",
    }
    made = plugs("db", "create-app-role", app, "--password-env", "PW", env=owner)
    assert made.returncode == 0, made.stderr
    made = plugs("db", "create-system-role", system, "--password-env", "SPW", env=owner)
    assert made.returncode == 0, made.stderr
    url = make_url(pg_database["owner_url"])
    env = {
        "PLUGS_DATABASE_URL": url.set(username=app, password="app-pw").render_as_string(False),
        "PLUGS_SYSTEM_DATABASE_URL": url.set(username=system, password="sys-pw").render_as_string(
            False
        ),
    }
    checked = plugs("db", "check-role", env=env)
    assert checked.returncode == 0, checked.stderr
    assert f"role {app} is subject to row-level security" in checked.stdout
    assert f"role {system} does the work across organizations" in checked.stdout
    assert "sys-pw" not in checked.stdout + checked.stderr


def test_without_the_system_url_postgresql_commands_refuse_in_one_line(
    plugs, pg_database: dict[str, str]
) -> None:
    env = {"PLUGS_DATABASE_URL": pg_database["app_url"]}
    for command in (("db", "check-role"), ("org", "list")):
        line = _one_line_error(plugs(*command, env=env))
        assert "PLUGS_SYSTEM_DATABASE_URL" in line and "create-system-role" in line


def test_the_system_role_cannot_be_made_without_the_right_to_grant_bypassrls(
    plugs, pg_database: dict[str, str], new_roles: list[str]
) -> None:
    """A migration role that is no superuser gets one clear line, not a traceback."""
    weak = f"wall_weak_{uuid.uuid4().hex[:8]}"
    new_roles += [weak, f"{weak}_sys"]
    owner = make_engine(pg_database["owner_url"], isolation_level="AUTOCOMMIT")
    with owner.connect() as connection:
        connection.execute(text(f"CREATE ROLE {weak} LOGIN CREATEROLE PASSWORD 'weak-pw'"))
    owner.dispose()
    url = make_url(pg_database["owner_url"]).set(username=weak, password="weak-pw")
    env = {"PLUGS_MIGRATION_DATABASE_URL": url.render_as_string(False)}
    line = _one_line_error(plugs("db", "create-system-role", f"{weak}_sys", env=env))
    assert f"cannot create role {weak}_sys" in line


def test_an_existing_deployment_upgrades_to_the_binding_and_back(
    pg_server_url: str, new_roles: list[str]
) -> None:
    """0005 with an application role made back then, then ``upgrade``: the old trick stops
    working and the old role cannot read the new key; a downgrade brings 0005 back."""
    name, app = f"plugs_wall_{uuid.uuid4().hex[:8]}", f"wall_old_{uuid.uuid4().hex[:8]}"
    new_roles.append(app)
    admin = make_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    owner = make_engine(make_url(pg_server_url).set(database=name))
    old = make_engine(make_url(pg_server_url).set(database=name, username=app, password="pw"))

    def seen_with_the_system_setting() -> int:
        with old.connect() as connection:
            connection.execute(text("SELECT set_config('app.system_access', 'on', false)"))
            return connection.execute(text("SELECT count(*) FROM organizations")).scalar_one()

    try:
        migrate.upgrade(owner, "0005")
        with owner.begin() as connection:
            rls.create_app_role(connection, app, "pw")
            connection.execute(
                text("INSERT INTO organizations (id, name) VALUES (gen_random_uuid(), 'B')")
            )
        assert seen_with_the_system_setting() == 1  # the hole, as it was
        migrate.upgrade(owner)
        assert seen_with_the_system_setting() == 0
        with old.connect() as connection:
            rls.verify_app_role(connection, [table for table, _ in TENANT_TABLES])
            with pytest.raises(DBAPIError, match="permission denied"):
                connection.execute(text(f"SELECT key FROM {rls.KEY_TABLE}"))
        migrate.downgrade(owner, "0005")
        assert seen_with_the_system_setting() == 1
    finally:
        old.dispose()
        owner.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_a_worker_without_the_system_role_refuses_to_start_in_one_line(
    tmp_path: Path, platform_env: dict[str, str]
) -> None:
    env = {k: v for k, v in platform_env.items() if k != "PLUGS_SYSTEM_DATABASE_URL"}
    process = services.start_worker(env, tmp_path)
    try:
        returncode = process.process.wait(timeout=60)
    finally:
        process.stop()
    assert returncode != 0
    refusals = [line for line in process.output().splitlines() if "refuses to start" in line]
    assert len(refusals) == 1 and "PLUGS_SYSTEM_DATABASE_URL" in refusals[0], process.output()
