"""An organization's event endpoints: registered, listed, disabled and enabled, removed,
given a new signing secret.  One implementation for the CLI and the HTTP API.

A URL is checked when it is registered by the same guard as a vendor URL
(:func:`connectors.http_urls.check_configured_url`: https, no credentials in it, no
private or loopback address literal, no ``localhost``); what its name resolves to is
checked at every connect (:mod:`connectors.egress`).

The signing secret is a Standard Webhooks secret (``whsec_`` + base64 of 32 random
bytes), shown once when it is made and stored sealed like integration credentials
(:data:`connectors.credentials.ENDPOINT_SECRETS`: AES-256-GCM under ``PLUGS_SECRET_KEYS``,
bound to the endpoint's organization and id; `plugs keys rotate` re-encrypts it).
"""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from connectors.credentials import ENDPOINT_SECRETS
from connectors.http_urls import check_configured_url
from core.errors import NotFoundError, PlugsError
from core.settings import get_settings
from models.base import utcnow
from models.host_events import EVENT_TYPES, EventEndpoint
from models.session import Database, PlugsSession

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32


@dataclass(frozen=True)
class Endpoint:
    """An endpoint as shown to people (never its secret)."""

    id: uuid.UUID
    organization_id: uuid.UUID
    url: str
    event_types: tuple[str, ...]
    description: str | None
    enabled: bool
    disabled_reason: str | None
    disabled_at: datetime | None
    failure_streak: int
    created_at: datetime

    @classmethod
    def of(cls, row: EventEndpoint) -> Endpoint:
        return cls(
            id=row.id,
            organization_id=row.organization_id,
            url=row.url,
            event_types=tuple(row.event_types),
            description=row.description,
            enabled=row.enabled,
            disabled_reason=row.disabled_reason,
            disabled_at=row.disabled_at,
            failure_streak=row.failure_streak,
            created_at=row.created_at,
        )


def check_event_types(event_types: Iterable[str]) -> list[str]:
    """The event types, each known, without repeats; at least one."""
    wanted = list(dict.fromkeys(t.strip() for t in event_types if t.strip()))
    unknown = [t for t in wanted if t not in EVENT_TYPES]
    if unknown:
        raise PlugsError(f"unknown event type {unknown[0]!r}; choose from {', '.join(EVENT_TYPES)}")
    if not wanted:
        raise PlugsError(f"name at least one event type: {', '.join(EVENT_TYPES)}")
    return wanted


def check_url(url: str) -> str:
    """The URL if an endpoint may have it (see the module docstring)."""
    parsed = check_configured_url(
        url, setting="url", allow_private=get_settings().allow_private_urls
    )
    return str(parsed)


def new_secret() -> str:
    """A fresh signing secret, ``whsec_<base64>``."""
    return SECRET_PREFIX + base64.b64encode(os.urandom(_SECRET_BYTES)).decode("ascii")


def _seal(row: EventEndpoint, secret: str) -> None:
    ENDPOINT_SECRETS.seal(row, {"secret": secret})


def signing_secret(row: EventEndpoint) -> str:
    """The endpoint's signing secret, opened at the point of use (the sender)."""
    return str(ENDPOINT_SECRETS.open(row)["secret"].get_secret_value())


def add_endpoint(
    db: Database,
    organization_id: uuid.UUID,
    url: str,
    event_types: Iterable[str],
    *,
    description: str | None = None,
) -> tuple[Endpoint, str]:
    """Register an endpoint; returns it and its signing secret (shown this once)."""
    checked, types = check_url(url), check_event_types(event_types)
    if description is not None and len(description) > 500:
        raise PlugsError("a description has at most 500 characters")
    secret = new_secret()
    with db.tenant(organization_id) as session:
        row = EventEndpoint(
            id=uuid.uuid4(),
            organization_id=organization_id,
            url=checked,
            event_types=types,
            description=description,
        )
        _seal(row, secret)
        session.add(row)
        session.flush()
        return Endpoint.of(row), secret


def get_endpoint(session: PlugsSession, endpoint_id: uuid.UUID) -> EventEndpoint:
    row = session.get(EventEndpoint, endpoint_id)
    if row is None:
        raise NotFoundError(f"no event endpoint with id {endpoint_id}")
    return row


def show_endpoint(db: Database, organization_id: uuid.UUID, endpoint_id: uuid.UUID) -> Endpoint:
    with db.tenant(organization_id) as session:
        return Endpoint.of(get_endpoint(session, endpoint_id))


def list_endpoints(db: Database, organization_id: uuid.UUID) -> list[Endpoint]:
    with db.tenant(organization_id) as session:
        rows = session.scalars(select(EventEndpoint).order_by(EventEndpoint.created_at))
        return [Endpoint.of(row) for row in rows]


def update_endpoint(
    db: Database,
    organization_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    *,
    url: str | None = None,
    event_types: Iterable[str] | None = None,
    description: str | None = None,
) -> Endpoint:
    """Change an endpoint's URL, event types or description (what is given)."""
    with db.tenant(organization_id) as session:
        row = get_endpoint(session, endpoint_id)
        if url is not None:
            row.url = check_url(url)
        if event_types is not None:
            row.event_types = check_event_types(event_types)
        if description is not None:
            row.description = description[:500] or None
        session.flush()
        return Endpoint.of(row)


def set_enabled(
    db: Database,
    organization_id: uuid.UUID,
    endpoint_id: uuid.UUID,
    enabled: bool,
    *,
    reason: str = "disabled by an operator",
) -> Endpoint:
    """Enable (its failure streak forgotten) or disable an endpoint."""
    with db.tenant(organization_id) as session:
        row = get_endpoint(session, endpoint_id)
        if enabled:
            row.enabled, row.disabled_at, row.disabled_reason = True, None, None
            row.failure_streak, row.failing_since = 0, None
        elif row.enabled:
            row.enabled, row.disabled_at, row.disabled_reason = False, utcnow(), reason[:500]
        session.flush()
        return Endpoint.of(row)


def remove_endpoint(db: Database, organization_id: uuid.UUID, endpoint_id: uuid.UUID) -> None:
    """Delete an endpoint with its deliveries and their attempts (the events stay)."""
    with db.tenant(organization_id) as session:
        session.delete(get_endpoint(session, endpoint_id))  # the rest: ON DELETE CASCADE


def rotate_secret(db: Database, organization_id: uuid.UUID, endpoint_id: uuid.UUID) -> str:
    """Give the endpoint a new signing secret and return it (shown this once); deliveries
    from now on are signed with it."""
    secret = new_secret()
    with db.tenant(organization_id) as session:
        _seal(get_endpoint(session, endpoint_id), secret)
    return secret
