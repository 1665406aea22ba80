"""The receiver's inbox write (``Database.insert_one``, PostgreSQL, as the application role):
one statement that binds itself to its organization, stores a delivery once, leaves no
tenant behind on the pooled connection, and stays behind the row-level security wall."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError

from core.errors import TenancyError
from models import WebhookDelivery
from models.base import utcnow
from models.session import TOKEN_PARAM, Database, _insert_one
from tests.factories import World, make_world

TABLE = WebhookDelivery.__table__
UNIQUE = ("integration_id", "delivery_id")


@pytest.fixture(scope="module")
def one_connection(pg_database: dict[str, str]) -> Iterator[Database]:
    """The app role through a pool of one connection: every unit of work reuses it."""
    db = Database(
        pg_database["app_url"], system_url=pg_database["system_url"], pool_size=1, max_overflow=0
    )
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def worlds(pg_db: Database) -> tuple[World, World]:
    return make_world(pg_db, "A"), make_world(pg_db, "B")


def _delivery(world: World, key: str) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "organization_id": world.org_id,
        "integration_id": world.ids["integrations"],
        "provider": "hubspot",
        "delivery_id": key,
        "method": "POST",
        "url": "http://testserver/webhooks/hubspot/x",
        "headers": {"content-type": "application/json"},
        "body": b"[]",
        "received_at": utcnow(),
        "event_count": 0,
        "status": "received",
        "attempts": 0,
        "created_at": utcnow(),
        "updated_at": utcnow(),
    }


def test_a_delivery_is_stored_once_and_no_tenant_stays_on_the_connection(
    one_connection: Database, worlds: tuple[World, World]
) -> None:
    a, _ = worlds
    first = _delivery(a, "once")
    stored = one_connection.insert_one(a.org_id, TABLE, first, unique=UNIQUE)  # type: ignore[arg-type]
    again = one_connection.insert_one(a.org_id, TABLE, _delivery(a, "once"), unique=UNIQUE)  # type: ignore[arg-type]

    assert (stored, again) == (first["id"], None)
    with one_connection.engine.connect() as connection:  # the same pooled connection
        assert connection.execute(text("SELECT current_setting('app.tenant', true)")).scalar() in (
            None,
            "",
        )
        assert connection.execute(select(func.count()).select_from(TABLE)).scalar() == 0
    with one_connection.tenant(a.org_id) as session:
        rows = session.scalars(select(WebhookDelivery).where(WebhookDelivery.delivery_id == "once"))
        assert [row.id for row in rows] == [first["id"]]


def test_a_row_of_another_organization_is_refused_before_and_by_the_database(
    pg_db: Database, worlds: tuple[World, World]
) -> None:
    a, b = worlds
    with pytest.raises(TenancyError):
        pg_db.insert_one(a.org_id, TABLE, _delivery(b, "theirs"), unique=UNIQUE)  # type: ignore[arg-type]
    # The statement itself, A's token and B's row: the policy checks the row after the
    # token is set, and refuses it; without a token nothing goes in either.
    statement = _insert_one(TABLE, tuple(_delivery(b, "x")), UNIQUE, "postgresql")  # type: ignore[arg-type]
    for token in (pg_db.tenant_token(a.org_id), ""):
        with pg_db.engine.connect() as connection, pytest.raises(DBAPIError, match="row-level"):
            connection.execute(statement, {**_delivery(b, "theirs"), TOKEN_PARAM: token})
    with pg_db.tenant(b.org_id) as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


def test_a_pooled_connection_the_server_closed_is_replaced_without_an_error(
    one_connection: Database, pg_owner_db: Database, worlds: tuple[World, World]
) -> None:
    a, _ = worlds
    with one_connection.engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    with pg_owner_db.engine.connect() as owner:
        assert owner.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the backend is gone once its row is
        with pg_owner_db.engine.connect() as owner:
            query = text("SELECT count(*) FROM pg_stat_activity WHERE pid = :pid")
            if not owner.execute(query, {"pid": pid}).scalar():
                break
        time.sleep(0.05)

    first = _delivery(a, "after-restart")
    assert one_connection.insert_one(a.org_id, TABLE, first, unique=UNIQUE) == first["id"]  # type: ignore[arg-type]
