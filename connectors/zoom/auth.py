"""Server-to-Server OAuth for Zoom: a token per account, cached encrypted, fetched again
before it expires and once more when Zoom answers 401 to it.

Zoom's S2S tokens last an hour and come with no refresh token: a new one is requested
with the client id and secret (docs/vendors/zoom.md#authentication).  The token is stored
with the integration's credentials (``access_token``, ``expires_at``), so every worker
shares it.  A fetch happens under the integration's row lock and only if the stored token
is still the stale one, so concurrent workers fetch once and all use the new token (old
forum threads say a new token can invalidate the previous one).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Generator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx

from connectors.base import unwrap_secret
from connectors.credentials import Credentials, decrypt_credentials, store_credentials
from connectors.http import VendorClient
from connectors.http_messages import scrub
from core.errors import AuthError, ConfigError
from models.integrations import Integration
from models.session import get_database

if TYPE_CHECKING:
    from connectors.zoom.connector import Zoom

TOKEN_PATH = "/oauth/token"
#: Fetch a new token when less than this remains (Zoom's own SDK uses 60 s).
MARGIN = timedelta(seconds=60)


def fetch_token(oauth_base_url: str, current: Mapping[str, Any]) -> dict[str, Any]:
    """A new access token for the account credentials in ``current``."""
    account_id = unwrap_secret(current.get("account_id"))
    client_id = unwrap_secret(current.get("client_id"))
    client_secret = unwrap_secret(current.get("client_secret"))
    if not (account_id and client_id and client_secret):
        raise ConfigError("Zoom needs the account_id, client_id and client_secret credentials")
    with VendorClient(name="zoom-oauth", base_url=oauth_base_url) as client:
        response = client.request(
            "POST",
            TOKEN_PATH,
            params={"grant_type": "account_credentials", "account_id": account_id},
            auth=httpx.BasicAuth(client_id, client_secret),
        )
    if response.status_code == 404:
        raise ConfigError(f"no Zoom OAuth endpoint at {oauth_base_url}{TOKEN_PATH}")
    body = response.json()
    if "access_token" not in body:
        reason = scrub(str(body.get("error")), response.request)  # a vendor could echo a secret
        raise AuthError(f"Zoom refused the account credentials: {reason}")
    expires = datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 3600)))
    return {"access_token": body["access_token"], "expires_at": expires.isoformat()}


def is_stale(current: Mapping[str, Any], rejected: str | None = None) -> bool:
    """Whether ``current`` needs a new token: none yet, about to expire, or the one Zoom
    just rejected."""
    token = unwrap_secret(current.get("access_token"))
    if not token or (rejected is not None and token == rejected):
        return True
    expires_at = getattr(current, "expires_at", None)
    return expires_at is None or expires_at - MARGIN <= datetime.now(UTC)


def renew_if_stale(
    organization_id: uuid.UUID,
    integration_id: uuid.UUID,
    fetch: Callable[[Credentials], Mapping[str, Any]],
    *,
    rejected: str | None = None,
) -> Credentials:
    """The integration's credentials, with a new token fetched and stored encrypted first
    when the stored one :func:`is_stale` (checked again under the row lock)."""
    with get_database().tenant(organization_id) as session:
        integration = session.get(Integration, integration_id, with_for_update=True)
        if integration is None:
            raise ConfigError(f"integration {integration_id} is gone")
        current = decrypt_credentials(integration)
        if not is_stale(current, rejected):
            return current
        fresh = Credentials({**current, **fetch(current)})
        store_credentials(session, integration, fresh)
        return fresh


class ZoomAuth(httpx.Auth):
    """Bearer auth with the account's S2S token (see the module docstring)."""

    def __init__(self, connector: Zoom) -> None:
        self._connector = connector
        self._credentials: Mapping[str, Any] = connector.credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if is_stale(self._credentials):
            self._renew(rejected=None)
        token = unwrap_secret(self._credentials.get("access_token"))
        request.headers["Authorization"] = f"Bearer {token}"
        response = yield request
        if response.status_code == 401:  # code 124: expired or revoked; one new token
            self._renew(rejected=token)
            token = unwrap_secret(self._credentials.get("access_token"))
            request.headers["Authorization"] = f"Bearer {token}"
            yield request

    def _renew(self, rejected: str | None) -> None:
        integration = self._connector.integration
        self._credentials = renew_if_stale(
            integration.organization_id,
            integration.id,
            lambda current: self._connector.refresh_credentials(current) or {},
            rejected=rejected,
        )

    def __repr__(self) -> str:
        return "ZoomAuth(**********)"
