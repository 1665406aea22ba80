"""Row-level security on PostgreSQL: the policies, the two database roles, and the checks
that neither can do more than it should.

Every table with an ``organization_id`` (and ``organizations`` itself, on ``id``) has RLS
enabled and FORCE'd, with one policy: a row is visible and writable when its organization
is the one the current transaction is *bound* to.  A transaction is bound by a token in
the transaction-local setting ``app.tenant``: ``<organization id>.<issued>.<HMAC>``, where
the HMAC-SHA256 of ``<organization id>.<issued>`` is keyed by a random key that lives in
the ``plugs_private`` schema.  ``plugs_current_organization()`` (SECURITY DEFINER, owned by
the schema owner) checks the HMAC and that ``issued`` is within
:data:`TOKEN_WINDOW_SECONDS` of the transaction's start, and returns the organization, or
NULL for anything else.  The application role cannot read the key, so it can set the
setting to anything it likes and still only ever name an organization our code signed
for it -- plain SQL (``set_config``, ``SET``) cannot move a transaction to another
organization, and a token stops working :data:`TOKEN_WINDOW_SECONDS` after it was made.

Two roles use the data, neither owns anything:

* the application role (``plugs db create-app-role``): neither SUPERUSER nor BYPASSRLS,
  so every row it touches passes the policy;
* the system role (``plugs db create-system-role``): BYPASSRLS, for the work that spans
  organizations (scheduler tick, sweepers, purges, metrics, the receiver's lookup); it
  also reads the key, which is how a process learns it.  The application role is not a
  member of it and no function it may call runs as it.

Migrations run as the schema owner.  Revisions 0001-0005 built the first design (a policy
that also admitted ``app.system_access = on``, a setting any role may set); their scripts
call :data:`FUNCTIONS`, :func:`policy_statements` and friends, which therefore stay as
they were.  Revision 0006 moved to the design above: new tenant tables use
:func:`tenant_policy_statements`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import Connection, MetaData, Row, text

from core.errors import PlugsError

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

#: The transaction-local setting that carries the tenant token.
TOKEN_SETTING = "app.tenant"
#: A token is accepted this many seconds either side of its transaction's start.
TOKEN_WINDOW_SECONDS = 120
#: The schema only the owner and the system role may use; it holds the key.
PRIVATE_SCHEMA = "plugs_private"
KEY_TABLE = f"{PRIVATE_SCHEMA}.tenant_key"
_HMAC_BLOCK = 64  # bytes: SHA-256's block size, and the length of our keys


class UnsafeRoleError(PlugsError):
    """A database role could do more than its part (bypass or reach across tenants)."""


# --- the tenant binding ----------------------------------------------------------------


def new_key_row() -> dict[str, bytes]:
    """A fresh random key and its HMAC pads (RFC 2104), for :data:`KEY_TABLE`.

    PostgreSQL has ``sha256()`` but no XOR on bytea, so the pads are stored next to the key.
    """
    key = secrets.token_bytes(_HMAC_BLOCK)
    return {
        "key": key,
        "inner_pad": bytes(b ^ 0x36 for b in key),
        "outer_pad": bytes(b ^ 0x5C for b in key),
    }


@dataclass(frozen=True)
class TenantKey:
    """The key that signs tenant tokens, and the database clock as seen from here."""

    key: bytes = field(repr=False)
    #: database epoch seconds minus ``time.monotonic()`` when the key was read
    clock_offset: float
    #: ``time.monotonic()`` when the key was read
    loaded_at: float

    def token(self, organization_id: uuid.UUID) -> str:
        """The value of :data:`TOKEN_SETTING` that binds a transaction starting now."""
        message = f"{organization_id}.{int(time.monotonic() + self.clock_offset):010d}"
        mac = hmac.new(self.key, message.encode(), hashlib.sha256).hexdigest()
        return f"{message}.{mac}"


def load_tenant_key(connection: Connection) -> TenantKey:
    """Read the key as the system role (the application role cannot)."""
    before = time.monotonic()
    row = connection.execute(
        text(f"SELECT key, extract(epoch FROM clock_timestamp()) AS now FROM {KEY_TABLE}")
    ).one_or_none()
    after = time.monotonic()
    if row is None:
        raise PlugsError(f"{KEY_TABLE} is empty: run `plugs db upgrade`")
    return TenantKey(bytes(row.key), float(row.now) - (before + after) / 2, after)


#: ``<organization id (36)>.<issued, epoch seconds (10 digits)>.<HMAC (64 hex)>``
_SIGNED_LENGTH = 36 + 1 + 10
TOKEN_LENGTH = _SIGNED_LENGTH + 1 + 64

#: The verifier.  SECURITY DEFINER so that it may read the key; a fixed search_path so
#: that no object of the caller's can stand in for ours; plpgsql so that its plan is
#: cached.  The HMAC is checked before anything in the token is parsed, so that nothing an
#: attacker writes there is ever cast; the length and one separator are the only other
#: checks (no regular expression: it costs more than the rest).
VERIFIER = f"""CREATE OR REPLACE FUNCTION plugs_current_organization() RETURNS uuid
LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    token text := current_setting('{TOKEN_SETTING}', true);
    pads record;
BEGIN
    IF length(token) IS DISTINCT FROM {TOKEN_LENGTH}
            OR substr(token, {_SIGNED_LENGTH + 1}, 1) <> '.' THEN
        RETURN NULL;
    END IF;
    SELECT inner_pad, outer_pad INTO pads FROM {KEY_TABLE};
    IF NOT FOUND OR encode(sha256(pads.outer_pad || sha256(pads.inner_pad
            || convert_to(left(token, {_SIGNED_LENGTH}), 'UTF8'))), 'hex')
            <> right(token, 64) THEN
        RETURN NULL;
    END IF;
    IF abs(extract(epoch FROM now()) - substr(token, 36 + 2, 10)::bigint)
            > {TOKEN_WINDOW_SECONDS} THEN
        RETURN NULL;
    END IF;
    RETURN left(token, 36)::uuid;
END
$$"""

#: The schema, table and verifier of the binding (revision 0006), then the key is inserted.
BINDING = [
    f"CREATE SCHEMA {PRIVATE_SCHEMA}",
    f"REVOKE ALL ON SCHEMA {PRIVATE_SCHEMA} FROM PUBLIC",
    f"""CREATE TABLE {KEY_TABLE} (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        key bytea NOT NULL CHECK (length(key) = {_HMAC_BLOCK}),
        inner_pad bytea NOT NULL,
        outer_pad bytea NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now()
    )""",
    f"REVOKE ALL ON {KEY_TABLE} FROM PUBLIC",
    VERIFIER,
]
INSERT_KEY = (
    f"INSERT INTO {KEY_TABLE} (key, inner_pad, outer_pad) VALUES (:key, :inner_pad, :outer_pad)"
)
DROP_BINDING = [f"DROP SCHEMA IF EXISTS {PRIVATE_SCHEMA} CASCADE"]


def tenant_policy_statements(table: str, column: str) -> list[str]:
    """SQL that puts ``table`` under the tenant policy (from revision 0006 on).

    The verifier runs once per statement (an InitPlan), not once per row, and the
    comparison stays an index condition.
    """
    check = f"({column} = (SELECT plugs_current_organization()))"
    return [
        f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY",
        f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY",
        f"CREATE POLICY tenant_isolation ON {table} USING {check} WITH CHECK {check}",
    ]


# --- the first design, as revisions 0001-0005 made it (their scripts call these) ----------

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


def policy_statements(table: str, column: str) -> list[str]:
    """The first design's policy (revisions 0001-0005 only; see :func:`tenant_policy_statements`)."""
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


# --- the tables and the roles -----------------------------------------------------------


def tenant_tables(metadata: MetaData) -> list[tuple[str, str]]:
    """(table, organization column) of every table row-level security must cover."""
    tables = [("organizations", "id")]
    tables += [
        (name, "organization_id")
        for name, table in sorted(metadata.tables.items())
        if "organization_id" in table.columns
    ]
    return tables


def create_app_role(connection: Connection, role: str, password: str | None) -> None:
    """Create (or fix) the application role and grant it data access, nothing more.

    Run as the schema owner after ``plugs db upgrade``.  Idempotent.
    """
    _create_role(connection, role, password, "NOBYPASSRLS")
    _grant_data_access(connection, role)


def create_system_role(connection: Connection, role: str, password: str | None) -> None:
    """Create (or fix) the system role: data access across organizations, and the key.

    BYPASSRLS rather than a policy naming the role: roles are cluster-wide and the
    schema is per database, so no role name is written into the migrations, the tenant
    policy stays one indexable equality, and system scans skip per-row checks.  Creating
    a BYPASSRLS role needs a superuser (or, from PostgreSQL 16, a role that has
    BYPASSRLS and CREATEROLE).  Run as the schema owner after ``plugs db upgrade``.
    """
    _create_role(connection, role, password, "BYPASSRLS")
    _grant_data_access(connection, role)
    connection.execute(text(f"GRANT USAGE ON SCHEMA {PRIVATE_SCHEMA} TO {role}"))
    connection.execute(text(f"GRANT SELECT ON {KEY_TABLE} TO {role}"))


def _create_role(connection: Connection, role: str, password: str | None, rls: str) -> None:
    if not _IDENTIFIER.match(role):
        raise PlugsError(f"not a valid role name: {role!r} (lower-case letters, digits, _)")
    exists = connection.execute(
        text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
    ).first()
    verb = "ALTER" if exists else "CREATE"
    attributes = f"LOGIN NOSUPERUSER {rls} NOCREATEDB NOCREATEROLE NOINHERIT"
    connection.execute(text(f"{verb} ROLE {role} WITH {attributes}"))
    if password is not None:
        quoted = connection.exec_driver_sql("SELECT quote_literal(%s)", (password,)).scalar()
        connection.exec_driver_sql(f"ALTER ROLE {role} PASSWORD {quoted}")


def _grant_data_access(connection: Connection, role: str) -> None:
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

    Raises :class:`UnsafeRoleError` if the current role is a superuser, has BYPASSRLS, may
    become a role that has either, may read the tenant key, owns a tenant table, or if a
    tenant table lacks enabled and forced row-level security.
    """
    role = _current_role(connection)
    if role.rolsuper or role.rolbypassrls:
        raise UnsafeRoleError(
            f"the database role {role.rolname!r} bypasses row-level security (superuser or "
            "BYPASSRLS); connect the application as the role made by `plugs db create-app-role`"
        )
    above = connection.execute(
        text(
            "SELECT rolname FROM pg_roles WHERE rolname <> current_user "
            "AND (rolsuper OR rolbypassrls) AND pg_has_role(current_user, oid, 'MEMBER') "
            "ORDER BY rolname LIMIT 1"
        )
    ).scalar()
    if above is not None:
        raise UnsafeRoleError(
            f"the database role {role.rolname!r} may SET ROLE {above}, which bypasses "
            f"row-level security; revoke that membership"
        )
    reads_key = connection.execute(
        text(
            "SELECT has_schema_privilege(current_user, oid, 'USAGE') FROM pg_namespace "
            "WHERE nspname = :schema"
        ),
        {"schema": PRIVATE_SCHEMA},
    ).scalar()
    if reads_key is None:
        raise UnsafeRoleError(
            f"the database has no {PRIVATE_SCHEMA} schema: run `plugs db upgrade`"
        )
    if reads_key:
        raise UnsafeRoleError(
            f"the database role {role.rolname!r} may use the schema {PRIVATE_SCHEMA}, which "
            "holds the key that binds transactions to organizations; revoke it"
        )
    _check_tables(connection, role.rolname, tables, forced=True)


def verify_system_role(connection: Connection, tables: Iterable[str]) -> None:
    """Refuse a system role that is a superuser, owns a tenant table or cannot do its work
    (BYPASSRLS and the key)."""
    role = _current_role(connection)
    if role.rolsuper:
        raise UnsafeRoleError(
            f"the system database role {role.rolname!r} is a superuser; use the role made "
            "by `plugs db create-system-role`"
        )
    if not role.rolbypassrls:
        raise UnsafeRoleError(
            f"the system database role {role.rolname!r} lacks BYPASSRLS, so it cannot work "
            "across organizations; use the role made by `plugs db create-system-role`"
        )
    reads_key = connection.execute(
        text(
            "SELECT has_schema_privilege(current_user, n.oid, 'USAGE') "
            "AND has_table_privilege(current_user, c.oid, 'SELECT') "
            "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relname = :table"
        ),
        {"schema": PRIVATE_SCHEMA, "table": KEY_TABLE.split(".")[1]},
    ).scalar()
    if reads_key is None:
        raise UnsafeRoleError(f"the database has no {KEY_TABLE}: run `plugs db upgrade`")
    if not reads_key:
        raise UnsafeRoleError(
            f"the system database role {role.rolname!r} cannot read {KEY_TABLE}; "
            "run `plugs db create-system-role` for it again"
        )
    _check_tables(connection, role.rolname, tables, forced=False)


def _current_role(connection: Connection) -> Row[str, bool, bool]:
    return connection.execute(
        text("SELECT rolname, rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ).one()


def _check_tables(connection: Connection, role: str, tables: Iterable[str], forced: bool) -> None:
    rows = connection.execute(
        text(
            "SELECT c.relname, pg_get_userbyid(c.relowner) AS owner, c.relrowsecurity, "
            "c.relforcerowsecurity FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname = ANY(:names)"
        ),
        {"names": list(tables)},
    ).all()
    for row in rows:
        if row.owner == role:
            raise UnsafeRoleError(
                f"the database role {role!r} owns {row.relname}; the application's roles "
                "must own nothing (run migrations as another role)"
            )
        if forced and not (row.relrowsecurity and row.relforcerowsecurity):
            raise UnsafeRoleError(f"row-level security is not enabled and forced on {row.relname}")
