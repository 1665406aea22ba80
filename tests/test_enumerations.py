"""Every enumeration of erd.md is enforced: a bad value is a clear error, by the ORM and by
the database itself (raw SQL hits the CHECK constraint)."""

from __future__ import annotations

import pytest
from sqlalchemy import text, update
from sqlalchemy.exc import IntegrityError, StatementError

import models
from models.session import Database
from tests import erd
from tests.factories import make_world

#: The connector registry validates providers, so third-party connectors can plug in.
NOT_A_CHECK = {("integrations", "provider")}
ENUMS = [c for c in erd.enum_columns() if (c.table, c.name) not in NOT_A_CHECK]


def _model(table: str) -> type[models.Base]:
    for mapper in models.Base.registry.mappers:
        if mapper.class_.__tablename__ == table:
            return mapper.class_
    raise LookupError(table)


@pytest.mark.parametrize("column", ENUMS, ids=lambda c: f"{c.table}.{c.name}")
def test_the_database_refuses_a_value_outside_the_enumeration(
    any_db: Database, column: erd.Column, request: pytest.FixtureRequest
) -> None:
    world = make_world(any_db)
    # audit_logs and friends are not the app's to rewrite: ask as the schema owner.
    owner = request.getfixturevalue("pg_owner_db") if any_db.is_postgresql else any_db
    statement = text(f"UPDATE {column.table} SET {column.name} = 'bogus' WHERE id = :id")
    record_id = world.ids[column.table]
    if not any_db.is_postgresql:
        record_id = record_id.hex  # SQLite stores uuids as 32 hex characters
    with pytest.raises(IntegrityError, match=f"ck_{column.table}_{column.name}"):
        with owner.engine.begin() as connection:
            connection.execute(statement, {"id": record_id})


@pytest.mark.parametrize("column", ENUMS, ids=lambda c: f"{c.table}.{c.name}")
def test_every_erd_value_is_accepted(any_db: Database, column: erd.Column) -> None:
    world = make_world(any_db)
    model = _model(column.table)
    attribute = getattr(model, column.name)
    with any_db.tenant(world.org_id) as session:
        for value in column.enum_values or ():
            session.execute(
                update(model).where(model.id == world.ids[column.table]).values({attribute: value})
            )


def test_the_orm_names_the_allowed_values(sqlite_db: Database) -> None:
    world = make_world(sqlite_db)
    with pytest.raises(StatementError, match="target, contact, plug"):
        with sqlite_db.tenant(world.org_id) as session:
            contact = session.get(models.Contact, world.ids["contacts"])
            contact.contact_type = "friend"


def test_lead_score_must_be_between_0_and_100(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        session.get(models.Contact, world.ids["contacts"]).lead_score = 100
    with pytest.raises(IntegrityError, match="ck_contacts_lead_score_range"):
        with any_db.tenant(world.org_id) as session:
            session.get(models.Contact, world.ids["contacts"]).lead_score = 101
