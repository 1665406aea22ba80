"""Housekeeping: refresh the OAuth tokens of idle integrations before they expire.

A running sync refreshes its own token (its auth does, under the row lock).  An idle
integration's access token would expire unused, and some vendors also expire refresh
tokens that are not used for a while; so every few minutes, the active integrations of
connectors that can refresh (:meth:`Connector.refresh_credentials`), with no sync running,
whose stored ``expires_at`` falls within the margin and that hold a refresh token, are
refreshed through :func:`connectors.credentials.refresh_if_expiring`.  That re-checks the
expiry under the integration's row lock, so two beats (or a sync starting meanwhile)
refresh once.  A refused refresh (a fatal vendor answer) marks the integration ``error``;
a vendor that is down is tried again on the next round.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import exists, select, text

from connectors.base import Connector
from connectors.credentials import CredentialsError, decrypt_credentials, refresh_if_expiring
from connectors.registry import get_connector, installed
from core.errors import ConfigError, FatalError, PlugsError
from core.settings import get_settings
from models.integrations import Integration, IntegrationLog
from models.session import Database

log = logging.getLogger(__name__)


@dataclass
class RefreshReport:
    """How many idle integrations were looked at, refreshed, and failed to refresh."""

    checked: int = 0
    refreshed: int = 0
    failed: int = 0


def refreshable_providers() -> list[str]:
    """Installed connectors that override :meth:`Connector.refresh_credentials`."""
    found = []
    for provider in installed():
        try:
            if get_connector(provider).refreshes_credentials():
                found.append(provider)
        except (ConfigError, ImportError) as exc:
            log.warning("connector %s cannot be loaded: %s", provider, exc)
    return found


def _refresh_of(connector: Connector) -> Callable[[Mapping[str, Any]], Mapping[str, Any]]:
    """The connector's refresh as :func:`refresh_if_expiring` calls it (None: no new fields)."""
    return lambda current: connector.refresh_credentials(current) or {}


def refresh_idle(db: Database, *, margin: timedelta | None = None) -> RefreshReport:
    """Refresh every idle integration's token that expires within ``margin``."""
    margin = margin or timedelta(seconds=get_settings().token_refresh_margin_seconds)
    report = RefreshReport()
    for integration in _idle(db):
        report.checked += 1
        if not _expiring(integration, margin):
            continue
        connector = get_connector(integration.provider)(integration, {})
        try:
            refresh_if_expiring(
                db,
                integration.organization_id,
                integration.id,
                _refresh_of(connector),
                margin=margin,
            )
            report.refreshed += 1
        except FatalError as exc:  # refused (revoked refresh token, bad client): say so
            report.failed += 1
            _mark_error(db, integration, f"token refresh refused: {exc}")
        except PlugsError as exc:  # the vendor is down or slow: the next round tries again
            report.failed += 1
            log.warning("integration %s: token refresh failed: %s", integration.id, exc)
    return report


def _idle(db: Database) -> list[Integration]:
    providers = refreshable_providers()
    if not providers:
        return []
    running = exists().where(
        IntegrationLog.integration_id == Integration.id,
        text("integration_logs.status = 'running'"),
    )
    with db.system("housekeeping: find idle integrations with tokens to refresh") as session:
        return list(
            session.scalars(
                select(Integration).where(
                    Integration.provider.in_(providers),
                    Integration.is_active.is_(True),
                    ~running,
                )
            )
        )


def _expiring(integration: Integration, margin: timedelta) -> bool:
    """Whether the stored token has a refresh token and expires within ``margin``."""
    try:
        current = decrypt_credentials(integration)
    except CredentialsError as exc:
        log.warning("integration %s: %s", integration.id, exc)
        return False
    expires_at = current.expires_at
    if expires_at is None or "refresh_token" not in current:
        return False
    return expires_at - margin <= datetime.now(UTC)


def _mark_error(db: Database, integration: Integration, reason: str) -> None:
    log.warning("integration %s: %s", integration.id, reason)
    with db.tenant(integration.organization_id) as session:
        row = session.get(Integration, integration.id)
        if row is not None:
            row.status = "error"
            row.metadata_ = {**(row.metadata_ or {}), "last_error": reason}
