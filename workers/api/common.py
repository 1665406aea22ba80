"""What every resource of the API uses: the tenant check of an id, the audit row of a
change the audit listener does not see, and the listing envelope.

The key of a request is the actor of every audit row its changes write
(:func:`workers.api.auth.current_key` sets it): a change of an audited model is recorded
by the listener in the change's own transaction.  An operation whose change is made by
statements outside the ORM, in a function that owns its transaction (a sync started, a
replay enqueued, schedules cleared, notifications sent or marked read), is summed up by
:func:`audit` in a transaction of its own just after.

Some operations find an integration's organization from its id through the system role
(operators name integrations by id); the API first looks the id up in the key's own
tenant session, so an id of another organization is a 404 before any of them runs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Generic, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from core.errors import NotFoundError
from models.api_keys import ApiKeyIdentity
from models.audit_trail import record_action
from models.integrations import Integration
from models.session import Database, get_database

T = TypeVar("T")

#: Text of a request: no NUL (PostgreSQL refuses it), bounded.
Text = Annotated[str, StringConstraints(max_length=10_000, pattern=r"^[^\x00]*$")]
ShortText = Annotated[str, StringConstraints(max_length=255, pattern=r"^[^\x00]*$")]
#: A cursor of a listing (opaque).
Cursor = Annotated[str, StringConstraints(max_length=512, pattern=r"^[A-Za-z0-9_-]*$")]


class Listing(BaseModel, Generic[T]):
    """A page of a listing, newest first; pass ``next_cursor`` as ``cursor`` for the
    next (null: this was the last)."""

    items: list[T]
    next_cursor: str | None = Field(default=None)


def db() -> Database:
    return get_database()


def integration_in(key: ApiKeyIdentity, integration_id: uuid.UUID) -> Integration:
    """The integration, if it is the key's organization's (detached); else 404."""
    with db().tenant(key.organization_id) as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise NotFoundError(f"no integration with id {integration_id}")
        session.expunge(integration)
        return integration


def audit(
    key: ApiKeyIdentity,
    *,
    table: str,
    record_id: uuid.UUID,
    action: str = "update",
    values: dict[str, Any] | None = None,
) -> None:
    """A summary audit row of a change the listener did not see, the key as its actor."""
    with db().tenant(key.organization_id) as session:
        record_action(
            session,
            key.organization_id,
            table=table,
            record_id=record_id,
            action=action,
            values=values,
        )
