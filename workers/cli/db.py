"""`plugs db`: migrations and the application's database role."""

from __future__ import annotations

import os

import click
from sqlalchemy import text

import models
from core.errors import PlugsError
from core.settings import get_settings
from models import migrate, rls
from models.base import Base
from models.session import make_engine


@click.group()
def db() -> None:
    """Create and migrate the database schema."""


def _owner_engine():  # type: ignore[no-untyped-def]
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return make_engine(settings.owner_sqlalchemy_url())


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


@db.command("create-app-role")
@click.argument("role")
@click.option(
    "--password-env",
    metavar="VAR",
    help="Name of the environment variable holding the role's password (never on the command line).",
)
def create_app_role(role: str, password_env: str | None) -> None:
    """Create or fix ROLE, the PostgreSQL role the application connects as.

    It owns nothing and cannot bypass row-level security; run this as the schema owner
    after `plugs db upgrade`, then point PLUGS_DATABASE_URL at ROLE.
    """
    password = None
    if password_env:
        password = os.environ.get(password_env)
        if password is None:
            raise PlugsError(f"environment variable {password_env} is not set")
    engine = _owner_engine()
    try:
        if engine.dialect.name != "postgresql":
            raise PlugsError("application roles exist on PostgreSQL only")
        with engine.begin() as connection:
            rls.create_app_role(connection, role, password)
        click.echo(f"role {role} can use the data and cannot bypass row-level security")
    finally:
        engine.dispose()


@db.command("check-role")
def check_role() -> None:
    """Check that PLUGS_DATABASE_URL's role cannot see across organizations."""
    engine = make_engine(get_settings().sqlalchemy_url())
    try:
        if engine.dialect.name != "postgresql":
            click.echo("SQLite: no database roles; the ORM filter isolates organizations")
            return
        tables = [name for name, _ in rls.tenant_tables(Base.metadata)]
        with engine.connect() as connection:
            rls.verify_app_role(connection, tables)
            user = connection.execute(text("SELECT current_user")).scalar()
        click.echo(f"role {user} is subject to row-level security on {len(tables)} tables")
    finally:
        engine.dispose()


assert models
COMMANDS = [db]
