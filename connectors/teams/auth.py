"""Client-credentials tokens for Microsoft Graph, cached encrypted and fetched before expiry.

``POST {login_base}/{tenant_id}/oauth2/v2.0/token`` with the app's client id and secret and
``scope=https://graph.microsoft.com/.default`` (docs/vendors/teams.md#authentication) gives
a bearer token for about an hour and no refresh token: a new one is simply requested.  The
token and its ``expires_at`` are stored with the integration's credentials (encrypted), so
every worker uses the same token until it is within :data:`MARGIN` of expiring; the fetch
happens under the integration's row lock, so concurrent workers fetch one token, not one
each.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from connectors.base import unwrap_secret
from connectors.credentials import (
    Credentials,
    decrypt_credentials,
    refresh_if_expiring,
    store_credentials,
)
from connectors.http import VendorClient
from core.errors import AuthError, ConfigError
from models.integrations import Integration
from models.session import ROW_LOCK, get_database

if TYPE_CHECKING:
    from connectors.teams.connector import Teams

LOGIN_BASE = "https://login.microsoftonline.com"
SCOPE = "https://graph.microsoft.com/.default"
#: Fetch a new token this long before the current one expires.
MARGIN = timedelta(minutes=5)


def fetch_token(login_base: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """A new app-only token for the tenant/client in ``current``: ``access_token`` and
    ``expires_at``.  Raises :class:`AuthError` when the directory refuses the client."""
    tenant = unwrap_secret(current.get("tenant_id"))
    form = {name: unwrap_secret(current.get(name)) for name in ("client_id", "client_secret")}
    if not tenant or not all(form.values()):
        raise ConfigError("Teams needs tenant_id, client_id and client_secret credentials")
    host = httpx.URL(login_base).host
    with VendorClient(name="teams-login", base_url=login_base, allowed_hosts=[host]) as client:
        response = client.request(
            "POST",
            f"/{tenant}/oauth2/v2.0/token",
            data={**form, "scope": SCOPE, "grant_type": "client_credentials"},
        )
    body = response.json() if response.status_code == 200 else {}
    if "access_token" not in body:
        raise AuthError(
            f"the Microsoft identity platform refused the client ({response.status_code})"
        )
    expires = datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3599)))
    return {"access_token": body["access_token"], "expires_at": expires.isoformat()}


class GraphAuth(httpx.Auth):
    """Bearer auth with the cached app token, fetched anew when it is about to expire."""

    def __init__(self, connector: Teams) -> None:
        self._connector = connector
        self._credentials: Any = connector.credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        expires_at = getattr(self._credentials, "expires_at", None)
        if not self._credentials.get("access_token") or expires_at is None:
            self._credentials = self._first_token()
        elif expires_at - MARGIN <= datetime.now(UTC):
            integration = self._connector.integration
            self._credentials = refresh_if_expiring(
                get_database(),
                integration.organization_id,
                integration.id,
                self._fetch,
                margin=MARGIN,
            )
        token = unwrap_secret(self._credentials.get("access_token"))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _fetch(self, current: Mapping[str, Any]) -> dict[str, Any]:
        return self._connector.refresh_credentials(current) or {}

    def _first_token(self) -> Credentials:
        """The first token of an integration (no ``expires_at`` yet, so
        :func:`refresh_if_expiring` would not fetch one), under the same row lock."""
        integration = self._connector.integration
        with get_database().tenant(integration.organization_id) as session:
            row = session.get(Integration, integration.id, with_for_update=ROW_LOCK)
            if row is None:
                raise ConfigError(f"integration {integration.id} is gone")
            current = decrypt_credentials(row)
            if current.get("access_token") and current.expires_at is not None:
                return current  # another worker fetched it while we waited for the lock
            fresh = Credentials({**current, **self._fetch(current)})
            store_credentials(session, row, fresh)
            return fresh

    def __repr__(self) -> str:
        return "GraphAuth(**********)"
