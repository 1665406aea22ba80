"""From an integration row to a ready connector and its HTTP client.

Credentials are decrypted here, at the point of use, and live only in the connector object
of the task that needs them.
"""

from __future__ import annotations

from connectors.base import Connector
from connectors.credentials import decrypt_credentials
from connectors.http import Throttle, VendorClient
from connectors.ratelimit import limiter_from_settings
from connectors.registry import get_connector
from models.integrations import Integration
from workers.settings import get_settings


def connector_class(integration: Integration) -> type[Connector]:
    return get_connector(integration.provider)


def open_connector(integration: Integration) -> Connector:
    """The integration's connector with its decrypted credentials."""
    return connector_class(integration)(integration, decrypt_credentials(integration))


def open_client(connector: Connector) -> VendorClient:
    """A client for the connector's vendor account: its base URL, auth, shared rate limit."""
    settings = get_settings()
    throttle = None
    if connector.rate_limit is not None:
        throttle = Throttle(
            limiter=limiter_from_settings(settings),
            key=f"{connector.provider}:{connector.account_key()}",
            limit=connector.rate_limit,
        )
    return VendorClient(
        name=connector.provider,
        base_url=connector.base_url,
        auth=connector.auth(),
        status_actions=dict(connector.status_actions),
        throttle=throttle,
        allowed_hosts=connector.allowed_hosts or None,
        allow_private=settings.allow_private_urls,
    )
