"""Cross-organization reads and writes are impossible: through the ORM on both databases,
and through raw SQL as the application role on PostgreSQL (row-level security)."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError, IntegrityError

from core.errors import TenancyError
from models import Contact, Event, EventAttendee, Organization, User, rls
from models.base import Base
from models.session import Database
from tests.factories import make_world


def test_a_tenant_session_sees_only_its_organizations_rows(any_db: Database) -> None:
    a, b = make_world(any_db, "A"), make_world(any_db, "B")
    with any_db.tenant(a.org_id) as session:
        contacts = session.scalars(select(Contact)).all()
        assert {c.organization_id for c in contacts} == {a.org_id}
        assert session.get(Contact, b.ids["contacts"]) is None
        assert session.get(Organization, b.org_id) is None
        event = session.get(Event, a.ids["events"])
        assert {x.organization_id for x in event.attendees} == {a.org_id}


def test_a_session_without_an_organization_cannot_read_tenant_data(any_db: Database) -> None:
    make_world(any_db)
    session = any_db._sessions()
    with pytest.raises(TenancyError, match="no organization context"):
        session.scalars(select(Contact)).all()
    session.close()


def test_writing_a_row_of_another_organization_is_refused(any_db: Database) -> None:
    a, b = make_world(any_db, "A"), make_world(any_db, "B")
    with pytest.raises(TenancyError, match="another organization"):
        with any_db.tenant(a.org_id) as session:
            session.add(Contact(organization_id=b.org_id, first_name="Mallory"))


def test_new_rows_take_the_sessions_organization(any_db: Database) -> None:
    a = make_world(any_db)
    with any_db.tenant(a.org_id) as session:
        contact = Contact(first_name="Nina")
        session.add(contact)
    assert contact.organization_id == a.org_id


def test_a_row_cannot_reference_another_organizations_row(any_db: Database) -> None:
    a, b = make_world(any_db, "A"), make_world(any_db, "B")
    with pytest.raises(IntegrityError):
        with any_db.tenant(a.org_id) as session:
            session.add(EventAttendee(event_id=b.ids["events"], user_id=a.ids["users"]))


def test_system_sessions_see_every_organization(any_db: Database) -> None:
    a, b = make_world(any_db, "A"), make_world(any_db, "B")
    with any_db.system("test: cross-organization report") as session:
        orgs = set(session.scalars(select(Contact.organization_id)))
    assert {a.org_id, b.org_id} <= orgs


def test_a_system_session_must_say_why(any_db: Database) -> None:
    with pytest.raises(TenancyError):
        with any_db.system("  "):
            pass


# --- raw SQL as the application role (PostgreSQL row-level security) ----------------------


def _as(db: Database, org: uuid.UUID | None):  # type: ignore[no-untyped-def]
    """A raw connection of the app role, bound to ``org`` the way a tenant session is."""
    connection = db.engine.connect()
    connection.begin()
    if org is not None:
        connection.execute(
            text("SELECT set_config(:key, :token, true)"),
            {"key": rls.TOKEN_SETTING, "token": db.tenant_token(org)},
        )
    return connection


def test_raw_sql_without_a_context_reads_nothing(pg_db: Database) -> None:
    make_world(pg_db)
    with _as(pg_db, None) as connection:
        for table, _ in rls.tenant_tables(Base.metadata):
            assert connection.execute(text(f"SELECT count(*) FROM {table}")).scalar() == 0


def test_raw_sql_reads_only_the_current_organization(pg_db: Database) -> None:
    a, b = make_world(pg_db, "A"), make_world(pg_db, "B")
    with _as(pg_db, a.org_id) as connection:
        for table, column in rls.tenant_tables(Base.metadata):
            orgs = set(connection.execute(text(f"SELECT DISTINCT {column} FROM {table}")).scalars())
            assert orgs <= {a.org_id}, table
            if table in a.ids:
                assert orgs == {a.org_id}, table
        hidden = connection.execute(
            text("UPDATE contacts SET first_name = 'pwned' WHERE id = :id"),
            {"id": b.ids["contacts"]},
        )
        assert hidden.rowcount == 0
        deleted = connection.execute(
            text("DELETE FROM users WHERE organization_id = :b"), {"b": b.org_id}
        )
        assert deleted.rowcount == 0


def test_raw_sql_cannot_insert_into_another_organization(pg_db: Database) -> None:
    a, b = make_world(pg_db, "A"), make_world(pg_db, "B")
    with _as(pg_db, a.org_id) as connection:
        with pytest.raises(DBAPIError, match="row-level security"):
            connection.execute(
                text(
                    "INSERT INTO contacts (id, organization_id, contact_type) "
                    "VALUES (:id, :org, 'contact')"
                ),
                {"id": uuid.uuid4(), "org": b.org_id},
            )


def test_raw_sql_cannot_move_a_row_to_another_organization(pg_db: Database) -> None:
    a, b = make_world(pg_db, "A"), make_world(pg_db, "B")
    with _as(pg_db, a.org_id) as connection:
        with pytest.raises(DBAPIError, match="row-level security"):
            connection.execute(
                text("UPDATE users SET organization_id = :b WHERE id = :id"),
                {"b": b.org_id, "id": a.ids["users"]},
            )


def test_the_app_and_system_roles_pass_the_startup_check(
    pg_db: Database, pg_database: dict[str, str]
) -> None:
    assert pg_db.verify_roles() == [pg_database["role"], pg_database["system_role"]]


def test_the_startup_check_refuses_a_role_that_bypasses_rls(pg_owner_db: Database) -> None:
    tables = [t for t, _ in rls.tenant_tables(Base.metadata)]
    with pg_owner_db.engine.connect() as connection:
        with pytest.raises(rls.UnsafeRoleError, match="bypasses row-level security"):
            rls.verify_app_role(connection, tables)


def test_the_startup_check_refuses_a_system_role_that_cannot_work_across_organizations(
    pg_database: dict[str, str],
) -> None:
    db = Database(pg_database["app_url"], system_url=pg_database["app_url"])
    try:
        with pytest.raises(rls.UnsafeRoleError, match="lacks BYPASSRLS"):
            db.verify_roles()
    finally:
        db.dispose()


def test_the_startup_check_refuses_a_superuser_as_the_system_role(
    pg_database: dict[str, str],
) -> None:
    db = Database(pg_database["app_url"], system_url=pg_database["owner_url"])
    try:
        with pytest.raises(rls.UnsafeRoleError, match="is a superuser"):
            db.verify_roles()
    finally:
        db.dispose()


def test_without_a_system_role_postgresql_refuses_tenant_and_system_work(
    pg_database: dict[str, str],
) -> None:
    db = Database(pg_database["app_url"])
    try:
        for unit in (db.system("test: scan"), db.tenant(uuid.uuid4())):
            with pytest.raises(TenancyError, match="PLUGS_SYSTEM_DATABASE_URL"):
                with unit as session:
                    session.scalars(select(Contact)).all()
        with pytest.raises(TenancyError, match="PLUGS_SYSTEM_DATABASE_URL"):
            db.verify_roles()
    finally:
        db.dispose()


def test_every_tenant_table_has_forced_row_level_security(pg_owner_db: Database) -> None:
    with pg_owner_db.engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT c.relname FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid "
                "WHERE a.attname = 'organization_id' AND c.relkind = 'r' "
                "AND c.relnamespace = 'public'::regnamespace "
                "AND NOT (c.relrowsecurity AND c.relforcerowsecurity)"
            )
        ).scalars()
        assert list(rows) == []


def test_users_of_different_organizations_may_share_an_email(any_db: Database) -> None:
    a, b = make_world(any_db, "A"), make_world(any_db, "B")
    for world in (a, b):
        with any_db.tenant(world.org_id) as session:
            session.add(User(email="Same@Example.test"))
    with pytest.raises(IntegrityError):
        with any_db.tenant(a.org_id) as session:
            session.add(User(email="same@example.test"))
