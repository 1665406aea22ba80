"""Every table and column of erd.md exists, with the types it names, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from models.session import Database
from tests import erd

#: Columns we add to erd.md's tables, each for a reason given in the model's docstring.
ADDED_COLUMNS = {("media_collection_items", "organization_id")}

PG_TYPES = {
    "uuid": "UUID",
    "varchar": "VARCHAR",
    "text": "TEXT",
    "jsonb": "JSONB",
    "boolean": "BOOLEAN",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "int": "INTEGER",
    "decimal": "NUMERIC",
    "date": "DATE",
    "bigint": "BIGINT",
    "inet": "INET",
}


def _columns(db: Database) -> dict[str, dict[str, object]]:
    inspector = inspect(db.engine)
    return {
        table: {c["name"]: c["type"] for c in inspector.get_columns(table)}
        for table in inspector.get_table_names()
    }


def test_the_erd_copy_describes_16_tables_and_253_columns() -> None:
    tables = erd.tables()
    assert len(tables) == 16
    assert sum(len(columns) for columns in tables.values()) == 253


def test_every_erd_table_and_column_exists_on_both_databases(any_db: Database) -> None:
    actual = _columns(any_db)
    missing = [
        f"{c.table}.{c.name}"
        for columns in erd.tables().values()
        for c in columns
        if c.name not in actual.get(c.table, {})
    ]
    assert missing == []
    extra = {
        (table, column)
        for table in erd.tables()
        for column in actual[table]
        if column not in {c.name for c in erd.tables()[table]}
    }
    assert extra == ADDED_COLUMNS


def test_postgresql_column_types_are_the_ones_the_erd_names(pg_db: Database) -> None:
    actual = _columns(pg_db)
    wrong = {}
    for columns in erd.tables().values():
        for c in columns:
            got = str(actual[c.table][c.name].compile(dialect=pg_db.engine.dialect))
            if not got.startswith(PG_TYPES[c.type]):
                wrong[f"{c.table}.{c.name}"] = (c.type, got)
    assert wrong == {}


@pytest.mark.parametrize(
    ("table", "column"),
    [("users", "organization_id"), ("contacts", "organization_id"), ("events", "organization_id")],
)
def test_tenant_tables_are_indexed_by_organization_first(
    pg_db: Database, table: str, column: str
) -> None:
    inspector = inspect(pg_db.engine)
    leading = [ix["column_names"][0] for ix in inspector.get_indexes(table)]
    leading += [uq["column_names"][0] for uq in inspector.get_unique_constraints(table)]
    assert column in leading


def test_users_email_is_unique_within_an_organization_only(any_db: Database) -> None:
    inspector = inspect(any_db.engine)
    uniques = [set(u["column_names"]) for u in inspector.get_unique_constraints("users")]
    assert {"organization_id", "email"} in uniques
