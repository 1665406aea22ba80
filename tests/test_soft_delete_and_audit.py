"""Soft delete hides and restore shows; every change of a tenant entity leaves an audit row
with the changed columns' old and new values, in the same transaction."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from models import AuditLog, Contact, Event, Integration, User
from models.session import Database
from tests.factories import make_world


def _audit(db: Database, org, record_id) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with db.tenant(org) as session:
        query = select(AuditLog).where(AuditLog.record_id == record_id)
        return list(session.scalars(query.order_by(AuditLog.created_at)))


def test_a_soft_deleted_row_is_hidden_and_a_restored_row_is_back(any_db: Database) -> None:
    world = make_world(any_db)
    contact_id = world.ids["contacts"]
    with any_db.tenant(world.org_id) as session:
        session.get(Contact, contact_id).soft_delete()
    with any_db.tenant(world.org_id) as session:
        assert session.get(Contact, contact_id) is None
        assert session.scalars(select(Contact)).all() == []
        hidden = session.scalars(select(Contact).execution_options(include_deleted=True)).one()
        assert hidden.is_deleted and hidden.deleted_at is not None
        hidden.restore()
    with any_db.tenant(world.org_id) as session:
        back = session.get(Contact, contact_id)
        assert back is not None and not back.is_deleted and back.deleted_at is None


def test_soft_deleted_children_are_hidden_from_relationships(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        event = session.get(Event, world.ids["events"])
        assert len(event.attendees) == 1
        event.attendees[0].soft_delete()
    with any_db.tenant(world.org_id) as session:
        assert session.get(Event, world.ids["events"]).attendees == []


def test_create_update_delete_and_restore_are_audited(any_db: Database) -> None:
    world = make_world(any_db)
    actor = world.ids["users"]
    with any_db.tenant(world.org_id, user_id=actor) as session:
        contact = Contact(first_name="Ada", email="ada@example.test", lead_score=10)
        session.add(contact)
    with any_db.tenant(world.org_id, user_id=actor) as session:
        row = session.get(Contact, contact.id)
        row.lead_score = 55
        row.company = "Analytical Engines"
    with any_db.tenant(world.org_id, user_id=actor) as session:
        session.get(Contact, contact.id).soft_delete()
    with any_db.tenant(world.org_id, user_id=actor) as session:
        session.scalars(
            select(Contact).where(Contact.id == contact.id).execution_options(include_deleted=True)
        ).one().restore()

    trail = _audit(any_db, world.org_id, contact.id)
    assert [a.action for a in trail] == ["create", "update", "delete", "restore"]
    assert all(a.user_id == actor and a.table_name == "contacts" for a in trail)
    created, updated, deleted, restored = trail
    assert created.old_values is None
    assert created.new_values["first_name"] == "Ada"
    assert created.new_values["created_by"] == str(actor)
    assert updated.old_values == {"lead_score": 10, "company": None, "updated_by": None}
    assert updated.new_values == {
        "lead_score": 55,
        "company": "Analytical Engines",
        "updated_by": str(actor),
    }
    assert deleted.old_values["is_deleted"] is False and deleted.new_values["is_deleted"] is True
    assert restored.new_values == {"is_deleted": False, "deleted_at": None}
    assert restored.old_values["is_deleted"] is True and restored.old_values["deleted_at"]


def test_an_update_that_changes_nothing_writes_no_audit_row(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        session.get(Contact, world.ids["contacts"]).first_name = "Cleo"  # unchanged
    assert [a.action for a in _audit(any_db, world.org_id, world.ids["contacts"])] == ["create"]


def test_a_rolled_back_change_leaves_no_audit_row(any_db: Database) -> None:
    world = make_world(any_db)
    with pytest.raises(RuntimeError):
        with any_db.tenant(world.org_id) as session:
            session.get(Contact, world.ids["contacts"]).company = "Nope"
            session.flush()
            raise RuntimeError("abort")
    assert [a.action for a in _audit(any_db, world.org_id, world.ids["contacts"])] == ["create"]


def test_secret_columns_are_audited_without_their_values(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        session.get(User, world.ids["users"]).password_hash = "argon2$canary-hash"
        session.get(Integration, world.ids["integrations"]).credentials = {"token": "canary"}
    rows = _audit(any_db, world.org_id, world.ids["users"])
    rows += _audit(any_db, world.org_id, world.ids["integrations"])
    assert "canary" not in repr([(r.old_values, r.new_values) for r in rows])
    assert rows[-1].new_values == {"credentials": "[redacted]"}


def test_updated_at_moves_on_every_update(any_db: Database) -> None:
    world = make_world(any_db)
    with any_db.tenant(world.org_id) as session:
        before = session.get(Contact, world.ids["contacts"]).updated_at
    time.sleep(0.01)
    with any_db.tenant(world.org_id) as session:
        session.get(Contact, world.ids["contacts"]).notes = "met at the summit"
    with any_db.tenant(world.org_id) as session:
        after = session.get(Contact, world.ids["contacts"]).updated_at
    assert after > before and after.tzinfo is not None
