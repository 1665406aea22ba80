"""Adding and finding integrations: the operations behind `plugs integrations`."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select

from connectors.credentials import store_credentials
from connectors.http_urls import check_url_settings
from connectors.registry import get_connector
from core.errors import ConfigError, NotFoundError
from core.settings import get_settings
from models.accounts import get_organization
from models.integrations import Integration, IntegrationLog
from models.session import Database


def add_integration(
    db: Database,
    org_id: uuid.UUID,
    provider: str,
    credentials: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
) -> Integration:
    """Connect ``org_id`` to ``provider``; the credentials are stored encrypted.

    Settings named ``*_url`` are URLs we will call (``base_url``, ``login_base_url``,
    ``oauth_base_url``): each is checked now (:func:`check_url_settings`), so a bad one is
    refused with its name before anything is stored.
    """
    connector = get_connector(provider)
    names = {f.name for f in connector.credential_fields}
    unknown = sorted(set(credentials) - names)
    if unknown:
        raise ConfigError(
            f"{provider} takes no credential {', '.join(unknown)}; it takes {', '.join(sorted(names))}"
        )
    if not credentials:
        required = [f.name for f in connector.credential_fields if f.required]
        raise ConfigError(f"{provider} needs credentials: {', '.join(required) or 'see its docs'}")
    check_url_settings(settings or {}, allow_private=get_settings().allow_private_urls)
    get_organization(db, org_id)
    with db.tenant(org_id) as session:
        integration = Integration(
            id=uuid.uuid4(),
            provider=provider,
            integration_type=connector.integration_type,
            settings=dict(settings or {}),
            status="disconnected",
        )
        session.add(integration)
        store_credentials(session, integration, dict(credentials))
    return integration


def list_integrations(db: Database, org_id: uuid.UUID | None = None) -> Sequence[Integration]:
    """Integrations of one organization, or of all (an operator's cross-tenant view)."""
    if org_id is not None:
        with db.tenant(org_id) as session:
            return session.scalars(select(Integration).order_by(Integration.created_at)).all()
    with db.system("plugs integrations list") as session:
        return session.scalars(select(Integration).order_by(Integration.created_at)).all()


def organization_of(db: Database, integration_id: uuid.UUID) -> uuid.UUID:
    """The organization an integration belongs to (operators name integrations by id)."""
    with db.system("cli: find the organization of an integration") as session:
        org_id = session.scalar(
            select(Integration.organization_id).where(Integration.id == integration_id)
        )
    if org_id is None:
        raise NotFoundError(f"no integration with id {integration_id}")
    return org_id


def organization_of_run(db: Database, run_id: uuid.UUID) -> uuid.UUID:
    with db.system("cli: find the organization of a run") as session:
        org_id = session.scalar(
            select(IntegrationLog.organization_id).where(IntegrationLog.id == run_id)
        )
    if org_id is None:
        raise NotFoundError(f"no run with id {run_id}")
    return org_id


def recent_runs(db: Database, integration_id: uuid.UUID, last: int) -> list[IntegrationLog]:
    """The integration's newest ``last`` runs, newest first."""
    org_id = organization_of(db, integration_id)
    with db.tenant(org_id) as session:
        return list(
            session.scalars(
                select(IntegrationLog)
                .where(IntegrationLog.integration_id == integration_id)
                .order_by(IntegrationLog.created_at.desc())
                .limit(last)
            )
        )
