"""Row-level security on PostgreSQL: the policies, the application role, and the check
that the role really cannot bypass them.

Every table with an ``organization_id`` (and ``organizations`` itself, on ``id``) gets RLS
enabled and FORCE'd, with one policy: a row is visible and writable when its organization
is the transaction-local ``app.current_organization`` or when the transaction opened a
system session (``app.system_access = on``).  An unset context matches nothing.

The application connects as a role that owns nothing and has neither SUPERUSER nor
BYPASSRLS (``plugs db create-app-role``); migrations run as the schema owner.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from sqlalchemy import Connection, MetaData, text

from core.errors import PlugsError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

FUNCTIONS = [
    """CREATE OR REPLACE FUNCTION plugs_current_organization() RETURNS uuid
       LANGUAGE sql STABLE PARALLEL SAFE
       AS $$ SELECT NULLIF(current_setting('app.current_organization', true), '')::uuid $$""",
    """CREATE OR REPLACE FUNCTION plugs_system_access() RETURNS boolean
       LANGUAGE sql STABLE PARALLEL SAFE
       AS $$ SELECT coalesce(current_setting('app.system_access', true), '') = 'on' $$""",
]
DROP_FUNCTIONS = [
    "DROP FUNCTION IF EXISTS plugs_current_organization()",
    "DROP FUNCTION IF EXISTS plugs_system_access()",
]


class UnsafeRoleError(PlugsError):
    """The application's database role could bypass row-level security."""


def tenant_tables(metadata: MetaData) -> list[tuple[str, str]]:
    """(table, organization column) of every table row-level security must cover."""
    tables = [("organizations", "id")]
    tables += [
        (name, "organization_id")
        for name, table in sorted(metadata.tables.items())
        if "organization_id" in table.columns
    ]
    return tables


def policy_statements(table: str, column: str) -> list[str]:
    """SQL that puts ``table`` under the tenant policy."""
    check = f"({column} = plugs_current_organization() OR plugs_system_access())"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING {check} WITH CHECK {check}",
    ]


def drop_policy_statements(table: str) -> list[str]:
    return [
        f"DROP POLICY IF EXISTS tenant_isolation ON {table}",
        f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY",
    ]


def create_app_role(connection: Connection, role: str, password: str | None) -> None:
    """Create (or fix) the application role and grant it data access, nothing more.

    Run as the schema owner after ``plugs db upgrade``.  Idempotent.
    """
    if not _IDENTIFIER.match(role):
        raise PlugsError(f"not a valid role name: {role!r} (lower-case letters, digits, _)")
    exists = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    verb = "ALTER" if exists else "CREATE"
    attributes = "LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT"
    connection.execute(text(f"{verb} ROLE {role} WITH {attributes}"))
    if password is not None:
        quoted = connection.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar()
        connection.exec_driver_sql(f"ALTER ROLE {role} PASSWORD {quoted}")
    for statement in (
        f"GRANT USAGE ON SCHEMA public TO {role}",
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}",
        f"REVOKE INSERT, UPDATE, DELETE ON alembic_version FROM {role}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT USAGE, SELECT ON SEQUENCES TO {role}",
    ):
        connection.execute(text(statement))


def verify_app_role(connection: Connection, tables: Iterable[str]) -> None:
    """Refuse to run as a role that could see across organizations.

    Raises :class:`UnsafeRoleError` if the current role is a superuser, has BYPASSRLS,
    owns a tenant table, or if a tenant table lacks enabled and forced row-level security.
    """
    role = connection.execute(
        text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()
    if role.rolsuper or role.rolbypassrls:
        raise UnsafeRoleError(
            f"the database role {role.rolname!r} bypasses row-level security (superuser or "
            "BYPASSRLS); connect the application as the role made by `plugs db create-app-role`"
        )
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, "
            "c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:names)"
        ),
        {"names": list(tables)},
    ).all()
    for row in rows:
        if row.owner == role.rolname:
            raise UnsafeRoleError(
                f"the database role {role.rolname!r} owns {row.relname}; the application role "
                "must own nothing (run migrations as another role)"
            )
        if not (row.relrowsecurity and row.relforcerowsecurity):
            raise UnsafeRoleError(f"row-level security is not enabled and forced on {row.relname}")
