"""Schema migrations (Alembic, scripts in ``models/migrations``), driven from Python.

``plugs db upgrade`` runs :func:`upgrade` as the schema owner
(``PLUGS_MIGRATION_DATABASE_URL``, or ``PLUGS_DATABASE_URL`` when that is the owner).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(connection: Connection | None = None, url: str | None = None) -> Config:
    """An Alembic config for our scripts, bound to ``connection`` (or ``url``)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def create_database(url: str) -> bool:
    """Create the PostgreSQL database ``url`` names (as its user, who becomes its owner)
    through the server's ``postgres`` database; False when it already exists.  A SQLite
    file is created by its first connection: nothing to do."""
    target = make_url(url)
    if target.get_backend_name() != "postgresql" or not target.database:
        return False
    engine = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            found = connection.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            )
            if found:
                return False
            quoted = connection.dialect.identifier_preparer.quote(target.database)
            connection.execute(text(f"CREATE DATABASE {quoted}"))
        return True
    finally:
        engine.dispose()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database of ``engine`` up to ``revision``."""
    with engine.begin() as connection:
        command.upgrade(alembic_config(connection), revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Migrate the database of ``engine`` down to ``revision`` (``base`` empties it)."""
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), revision)


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def is_at_head(connection: Connection) -> bool:
    """Whether the database's schema is the one this code expects."""
    return current_revision(connection) == head_revision()
