"""The migrations build exactly the models' schema, and take it down again."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from models import migrate
from models.base import Base
from models.session import Database, make_engine


def _differences(db: Database) -> list[object]:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return compare_metadata(context, Base.metadata)


def test_the_migrated_postgresql_schema_equals_the_models(pg_owner_db: Database) -> None:
    assert _differences(pg_owner_db) == []


def test_the_migrated_sqlite_schema_equals_the_models(sqlite_db: Database) -> None:
    assert _differences(sqlite_db) == []


#: Every table of the models, and Alembic's own.
EVERY_TABLE = {*Base.metadata.tables, "alembic_version"}


def test_the_database_is_at_the_codes_head(pg_owner_db: Database) -> None:
    with pg_owner_db.engine.connect() as connection:
        assert migrate.is_at_head(connection)


def test_downgrade_to_base_and_upgrade_again_on_sqlite(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    assert inspect(engine).get_table_names() == ["alembic_version"]
    migrate.upgrade(engine)
    assert set(inspect(engine).get_table_names()) == EVERY_TABLE
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again_on_postgresql(pg_server_url: str) -> None:
    from sqlalchemy.engine import make_url

    admin = make_engine(pg_server_url, isolation_level="AUTOCOMMIT")
    name = "plugs_test_migrations"
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(pg_server_url).set(database=name))
    try:
        migrate.upgrade(engine)
        migrate.downgrade(engine, "base")
        assert inspect(engine).get_table_names() == ["alembic_version"]
        with engine.connect() as connection:
            functions = connection.execute(
                text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'plugs_%'")
            ).scalar()
        assert functions == 0
        migrate.upgrade(engine)
        assert set(inspect(engine).get_table_names()) == EVERY_TABLE
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
