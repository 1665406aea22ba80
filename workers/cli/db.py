"""`plugs db`: migrations and the application's two database roles."""

from __future__ import annotations

import os
from collections.abc import Callable

import click
from sqlalchemy import Connection, Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, ProgrammingError

import models
from core.errors import PlugsError
from core.settings import get_settings
from models import migrate, rls
from models.base import Base
from models.session import Database, make_engine


@click.group()
def db() -> None:
    """Create and migrate the database schema."""


def _owner_engine() -> Engine:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.owner_sqlalchemy_url())


@db.command()
def create() -> None:
    """Create the database PLUGS_MIGRATION_DATABASE_URL names (its user owns it), unless it
    exists; then run `plugs db upgrade`."""
    url = get_settings().owner_sqlalchemy_url()
    name = make_url(url).database
    if make_url(url).get_backend_name() != "postgresql":
        click.echo("SQLite: the database file is created by `plugs db upgrade`")
    elif migrate.create_database(url):
        click.echo(f"database {name} created")
    else:
        click.echo(f"database {name} exists already")


@db.command()
@click.option("--revision", default="head", show_default=True, help="Target revision.")
def upgrade(revision: str) -> None:
    """Migrate the schema up (creates every table on an empty database)."""
    engine = _owner_engine()
    try:
        migrate.upgrade(engine, revision)
        with engine.connect() as connection:
            click.echo(f"database at revision {migrate.current_revision(connection)}")
    finally:
        engine.dispose()


@db.command()
@click.argument("revision")
def downgrade(revision: str) -> None:
    """Migrate the schema down to REVISION ('base' drops every table)."""
    engine = _owner_engine()
    try:
        migrate.downgrade(engine, revision)
        click.echo(f"database downgraded to {revision}")
    finally:
        engine.dispose()


@db.command()
def current() -> None:
    """Print the database's revision and whether it is the code's head."""
    engine = _owner_engine()
    try:
        with engine.connect() as connection:
            revision = migrate.current_revision(connection)
            state = (
                "head" if migrate.is_at_head(connection) else f"head is {migrate.head_revision()}"
            )
            click.echo(f"{revision or 'empty'} ({state})")
    finally:
        engine.dispose()


_PASSWORD_ENV = click.option(
    "--password-env",
    metavar="VAR",
    help="Name of the environment variable holding the role's password (never on the command line).",
)


@db.command("create-app-role")
@click.argument("role")
@_PASSWORD_ENV
def create_app_role(role: str, password_env: str | None) -> None:
    """Create or fix ROLE, the PostgreSQL role the application connects as.

    It owns nothing and cannot bypass row-level security; run this as the schema owner
    after `plugs db upgrade`, then point PLUGS_DATABASE_URL at ROLE.
    """
    _create_role(rls.create_app_role, role, password_env)
    click.echo(f"role {role} can use the data and cannot bypass row-level security")


@db.command("create-system-role")
@click.argument("role")
@_PASSWORD_ENV
def create_system_role(role: str, password_env: str | None) -> None:
    """Create or fix ROLE, the PostgreSQL role of the work across organizations.

    The scheduler tick, sweepers, purges and metrics connect as ROLE (BYPASSRLS, owns
    nothing, not a superuser), and every process reads through it the key that binds
    tenant transactions.  Run this as a superuser after `plugs db upgrade`, then point
    PLUGS_SYSTEM_DATABASE_URL at ROLE.  Never grant ROLE to the application role.
    """
    _create_role(rls.create_system_role, role, password_env)
    click.echo(f"role {role} can use every organization's data; keep its password apart")


def _create_role(
    create: Callable[[Connection, str, str | None], None], role: str, password_env: str | None
) -> None:
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise PlugsError(f"environment variable {password_env} is not set")
    engine = _owner_engine()
    try:
        if engine.dialect.name != "postgresql":
            raise PlugsError("database roles exist on PostgreSQL only")
        with engine.begin() as connection:
            create(connection, role, password)
    except ProgrammingError as exc:
        raise PlugsError(f"cannot create role {role}: {_first_line(exc)}") from None
    finally:
        engine.dispose()


def _first_line(exc: DBAPIError) -> str:
    return str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__


@db.command("check-role")
def check_role() -> None:
    """Check PLUGS_DATABASE_URL's and PLUGS_SYSTEM_DATABASE_URL's roles: the first cannot
    see across organizations, the second can and is no superuser."""
    settings = get_settings()
    url = settings.sqlalchemy_url()
    if make_url(url).get_backend_name() != "postgresql":
        click.echo("SQLite: no database roles; the ORM filter isolates organizations")
        return
    database = Database(url, system_url=settings.system_sqlalchemy_url(), pool_size=1)
    try:
        app_role, system_role = database.verify_roles()
        tables = len(rls.tenant_tables(Base.metadata))
        click.echo(f"role {app_role} is subject to row-level security on {tables} tables")
        click.echo(f"role {system_role} does the work across organizations")
    finally:
        database.dispose()


assert models
COMMANDS = [db]
