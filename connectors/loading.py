"""From an integration row to a ready connector and its HTTP client.

Credentials are decrypted here, at the point of use, and live only in the connector object
of the task that needs them.
"""

from __future__ import annotations

import atexit
import json
from collections import OrderedDict

from connectors.base import Connector
from connectors.credentials import decrypt_credentials
from connectors.http import Throttle, VendorClient
from connectors.http_urls import check_url_settings
from connectors.ratelimit import limiter_from_settings
from connectors.registry import get_connector
from core.settings import get_settings
from models.integrations import Integration


def connector_class(integration: Integration) -> type[Connector]:
    return get_connector(integration.provider)


def open_connector(integration: Integration) -> Connector:
    """The integration's connector with its decrypted credentials."""
    return connector_class(integration)(integration, decrypt_credentials(integration))


#: Clients kept per process, so a worker reuses its connections across page tasks.
_CLIENTS: OrderedDict[tuple[str, ...], VendorClient] = OrderedDict()
_KEEP = 32


def client_for(connector: Connector) -> VendorClient:
    """This process's client for the connector's account and current credentials.

    Kept open across tasks (one connection pool per account, not one per page); a change
    of credentials (rotation, OAuth refresh) or settings gives a new client.
    """
    integration = connector.integration
    key = (
        str(integration.id),
        connector.base_url,
        json.dumps(integration.credentials, sort_keys=True),
        json.dumps(integration.settings, sort_keys=True, default=str),
    )
    client = _CLIENTS.get(key)
    if client is not None:
        _CLIENTS.move_to_end(key)
        return client
    client = open_client(connector)
    _CLIENTS[key] = client
    while len(_CLIENTS) > _KEEP:
        _CLIENTS.popitem(last=False)[1].close()
    return client


@atexit.register
def close_clients() -> None:
    """Close this process's kept clients and their pooled connections (at exit: a process
    that ends with its sockets open leaves them to the garbage collector)."""
    while _CLIENTS:
        _CLIENTS.popitem()[1].close()


def open_client(connector: Connector) -> VendorClient:
    """A new client for the connector's vendor account: base URL, auth, shared rate limit.

    The integration's URL settings are checked first (:func:`check_url_settings`): a row
    written before the checks existed, or by hand, fails here with the setting's name.
    """
    settings = get_settings()
    check_url_settings(connector.integration.settings, allow_private=settings.allow_private_urls)
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
        max_inline_wait=settings.max_inline_wait,
    )
