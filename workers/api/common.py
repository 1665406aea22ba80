"""What every resource of the API uses: the tenant check of an id and the listing envelope.

The key of a request is the actor of every audit row its changes write
(:func:`workers.api.auth.current_key` sets it), in the change's own transaction: the
listener records a change of an audited model (or of a table the operation names with
:func:`models.audit_trail.audit_tables`, runs inserted in bulk included), and an operation
whose change is made by statements outside the ORM (schedules cleared, webhook deliveries
replayed, notifications sent or marked read) writes its summary row itself
(:func:`models.audit_trail.record_actor_action`).

Some operations find an integration's organization from its id through the system role
(operators name integrations by id); the API first looks the id up in the key's own
tenant session, so an id of another organization is a 404 before any of them runs.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Generic, TypeVar

from pydantic import BaseModel, Field, StringConstraints

from core.errors import NotFoundError
from models.api_keys import ApiKeyIdentity
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
