"""Graph change notifications for the demo's Teams integration.

Graph only notifies about what a subscription follows, so the demo subscribes its
integration to the organizer's calendar with the HTTP app's URL as ``notification_url``.
Each demo run serves a fresh Graph simulator, so the subscription is created anew
(:func:`connectors.teams.subscriptions.recreate`) rather than renewed.
"""

from __future__ import annotations

import uuid

from sqlalchemy import select

from connectors import loading
from connectors.teams import subscriptions
from connectors.teams.connector import Teams
from core.errors import PlugsError
from models.integrations import Integration
from models.session import Database
from models.webhooks import WebhookSubscription


def follow(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, url: str) -> None:
    """Point the integration's notifications at ``url`` and subscribe at Graph."""
    with db.tenant(org_id) as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise PlugsError(f"no integration with id {integration_id}")
        integration.settings = {**integration.settings, "notification_url": url}
    subscriptions.client_state(db, _connector(db, org_id, integration_id))
    connector = _connector(db, org_id, integration_id)  # now with its clientState
    with db.tenant(org_id) as session:
        for resource in connector.followed_resources():
            row = session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.integration_id == integration_id,
                    WebhookSubscription.resource == resource,
                )
            ).one_or_none()
            if row is None:
                row = WebhookSubscription(integration_id=integration_id, resource=resource)
                session.add(row)
            if not subscriptions.recreate(db, connector, row):
                raise PlugsError(f"Graph refused the demo subscription: {row.last_error}")


def _connector(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> Teams:
    with db.tenant(org_id) as session:
        integration = session.get(Integration, integration_id)
        assert integration is not None
        session.expunge(integration)
    connector = loading.open_connector(integration)
    assert isinstance(connector, Teams)
    return connector
