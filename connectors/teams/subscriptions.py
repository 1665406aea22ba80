"""Graph change-notification subscriptions of Teams integrations: created, renewed, recreated.

An integration with a notification URL follows the organizer's calendar
(``/users/{organizer}/events``: created, updated, deleted).  The URL is the
``notification_url`` setting, where ``{integration_id}`` is replaced by the integration's
id (``https://<host>/webhooks/teams/{integration_id}``, the receiver's URL), or else
derived from ``PLUGS_PUBLIC_BASE_URL`` (``<base>/webhooks/teams/<integration id>``).  Each subscription is a
:class:`~models.webhooks.WebhookSubscription` row; Graph's is created with a clientState
of the integration's own (generated once, stored encrypted with its credentials as
``client_state``) and the same URL for lifecycle notifications.

Graph deletes a subscription that is not renewed (docs/vendors/teams.md#change-notifications),
so :func:`renew_expiring` (the ``webhooks.renew_subscriptions`` beat task) creates the
missing ones and PATCHes a new expiry into each one past half its lifetime
(``subscription_minutes`` setting, at most 4,230 less :data:`SKEW_MARGIN`: Graph checks
the expiry against its own clock, which may be behind ours); one Graph no longer knows is
created again.  :func:`set_up` does the same for one integration as soon as it is added or
changed (``Teams.after_configured``), so its first notification need not wait for the
task.  A subscription Graph refuses to create ends ``failed`` with Graph's reason in
``last_error``; a renewal that fails keeps its reason there too; the next round tries again.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import select

from connectors import loading
from connectors.base import unwrap_secret
from connectors.credentials import Credentials, decrypt_credentials, store_credentials
from core.errors import ConfigError, PlugsError
from core.settings import get_settings
from models.base import utcnow
from models.integrations import Integration
from models.session import ROW_LOCK, Database, PlugsSession
from models.webhooks import WebhookSubscription

if TYPE_CHECKING:
    from connectors.teams.connector import Teams

log = logging.getLogger(__name__)
#: Graph's longest lifetime of a subscription to events (docs/vendors/teams.md).
MAX_MINUTES = 4230
#: Asked for less than the longest lifetime by this much: Graph refuses an expiry past
#: its own now + 4,230 minutes, and its clock may be behind ours.
SKEW_MARGIN = timedelta(minutes=10)
DEFAULT_MINUTES = MAX_MINUTES - int(SKEW_MARGIN.total_seconds() // 60)
CHANGE_TYPES = "created,updated,deleted"
#: The receiver's path of a Teams integration, under the public base URL.
RECEIVER_PATH = "/webhooks/teams/{integration_id}"


@dataclass
class RenewalReport:
    """What one round did, summed over integrations."""

    integrations: int = 0
    created: int = 0
    renewed: int = 0
    failed: int = 0


def lifetime(integration: Integration) -> timedelta:
    """The lifetime asked for: the ``subscription_minutes`` setting, at most
    :data:`DEFAULT_MINUTES` (the longest less the margin for clock skew)."""
    wanted = integration.settings.get("subscription_minutes") or DEFAULT_MINUTES
    if not str(wanted).isdigit() or int(wanted) < 1:
        raise ConfigError(f"subscription_minutes must be a number of minutes, not {wanted!r}")
    return timedelta(minutes=min(int(wanted), DEFAULT_MINUTES))


def notification_url(integration: Integration) -> str | None:
    """Where Graph sends this integration's notifications: the ``notification_url``
    setting with ``{integration_id}`` filled in, else derived from the public base URL
    (``PLUGS_PUBLIC_BASE_URL``); None when neither is set."""
    template = str(integration.settings.get("notification_url") or "").strip()
    if not template:
        base = (get_settings().public_base_url or "").strip().rstrip("/")
        if not base:
            return None
        template = base + RECEIVER_PATH
    return template.replace("{integration_id}", str(integration.id))


def set_up(db: Database, connector: Teams) -> list[str]:
    """Create (or renew) the integration's subscriptions now, as the renewal task would:
    one line per subscription Graph did not accept (its row is ``failed``, with the
    reason, and the task tries again)."""
    integration = connector.integration
    if not integration.is_active or notification_url(integration) is None:
        return []
    report = RenewalReport(integrations=1)
    _renew_integration(db, integration, None, report, connector)
    if not report.failed:
        return []
    with db.tenant(integration.organization_id) as session:
        reasons = session.scalars(
            select(WebhookSubscription.last_error).where(
                WebhookSubscription.integration_id == integration.id,
                WebhookSubscription.status == "failed",
            )
        )
        return [f"Graph subscription not created: {reason}" for reason in reasons]


def client_state(db: Database, connector: Teams) -> str:
    """The integration's clientState, generated and stored (encrypted) the first time."""
    known = unwrap_secret(connector.credentials.get("client_state"))
    if known:
        return known
    integration = connector.integration
    with db.tenant(integration.organization_id) as session:
        row = session.get(Integration, integration.id, with_for_update=ROW_LOCK)
        if row is None:
            raise ConfigError(f"integration {integration.id} is gone")
        current = decrypt_credentials(row)
        state = unwrap_secret(current.get("client_state"))
        if not state:
            state = secrets.token_urlsafe(48)  # Graph allows 128 characters
            store_credentials(session, row, Credentials({**current, "client_state": state}))
        return state


def renew_expiring(db: Database, within: timedelta | None = None) -> RenewalReport:
    """Create the missing subscriptions of every active Teams integration that has a
    ``notification_url`` and renew those expiring within ``within`` (default: half of
    their lifetime)."""
    report = RenewalReport()
    with db.system("webhooks: find Teams integrations that follow changes") as session:
        integrations = [
            i
            for i in session.scalars(
                select(Integration).where(
                    Integration.provider == "teams", Integration.is_active.is_(True)
                )
            )
            if notification_url(i) is not None
        ]
    for integration in integrations:
        report.integrations += 1
        try:
            _renew_integration(db, integration, within, report)
        except PlugsError as exc:  # bad credentials, Graph down: recorded, tried next round
            report.failed += 1
            log.warning("integration %s: subscriptions not renewed: %s", integration.id, exc)
    return report


def _renew_integration(
    db: Database,
    integration: Integration,
    within: timedelta | None,
    report: RenewalReport,
    connector: Teams | None = None,
) -> None:
    if connector is None:
        connector = cast("Teams", loading.open_connector(integration))  # registry's "teams"
    margin = within if within is not None else lifetime(integration) / 2
    with db.tenant(integration.organization_id) as session:
        rows = {
            r.resource: r
            for r in session.scalars(
                select(WebhookSubscription).where(
                    WebhookSubscription.integration_id == integration.id
                )
            )
        }
        for resource in connector.followed_resources():
            row = rows.get(resource)
            if row is None:
                row = WebhookSubscription(integration_id=integration.id, resource=resource)
                session.add(row)
            due = row.expires_at is None or row.expires_at - margin <= utcnow()
            if row.external_id and row.status == "active" and not due:
                continue
            created = not row.external_id or row.status != "active"
            if refresh(db, connector, row):
                report.created += int(created)
                report.renewed += int(not created)
            else:
                report.failed += 1


def refresh(db: Database, connector: Teams, row: WebhookSubscription) -> bool:
    """Renew ``row`` at Graph (PATCH a new expiry), or create it when it does not exist
    there (never created, removed, expired).  True when it is active afterwards."""
    client = loading.client_for(connector)
    body: dict[str, Any] | None = None
    try:
        expiry = (
            (datetime.now(UTC) + lifetime(connector.integration)).isoformat().replace("+00:00", "Z")
        )
        if row.external_id and row.status == "active":
            response = client.request(
                "PATCH", f"/subscriptions/{row.external_id}", json={"expirationDateTime": expiry}
            )
            body = response.json() if response.status_code == 200 else None
    except PlugsError as exc:  # not renewed: it lives at Graph until it expires
        row.last_error = str(exc)[:500]
        return False
    if body is None:
        try:
            body = _create(db, connector, client, row.resource, expiry)
        except PlugsError as exc:  # Graph has none: failed, created again next round
            row.status, row.external_id, row.last_error = "failed", None, str(exc)[:500]
            return False
    row.external_id = str(body["id"])
    row.expires_at = _parse(body.get("expirationDateTime")) or utcnow() + lifetime(
        connector.integration
    )
    row.status, row.last_error = "active", None
    row.change_types = CHANGE_TYPES
    return True


def recreate(db: Database, connector: Teams, row: WebhookSubscription) -> bool:
    """Create ``row`` anew at Graph (after ``subscriptionRemoved``)."""
    row.status = "removed"
    return refresh(db, connector, row)


def delete_all(db: Database, connector: Teams) -> tuple[int, list[str]]:
    """Delete the integration's subscriptions at Graph (the integration is being removed):
    how many, and one line per one Graph did not delete (it expires there on its own).  A
    404 means Graph has no such subscription any more.  Rows end ``removed``."""
    integration = connector.integration
    with db.tenant(integration.organization_id) as session:
        found = session.execute(
            select(WebhookSubscription.id, WebhookSubscription.external_id).where(
                WebhookSubscription.integration_id == integration.id,
                WebhookSubscription.status == "active",
                WebhookSubscription.external_id.is_not(None),
            )
        ).all()
    deleted, problems, gone = 0, [], []
    client = loading.client_for(connector)
    for row_id, external_id in found:
        try:
            client.request("DELETE", f"/subscriptions/{external_id}")
        except PlugsError as exc:
            problems.append(f"Graph subscription {external_id} not deleted: {exc}")
            continue
        deleted += 1
        gone.append(row_id)
    if gone:
        with db.tenant(integration.organization_id) as session:
            for row in session.scalars(
                select(WebhookSubscription).where(WebhookSubscription.id.in_(gone))
            ):
                row.status, row.last_error = "removed", None
    return deleted, problems


def _create(
    db: Database, connector: Teams, client: Any, resource: str, expiry: str
) -> dict[str, Any]:
    url = notification_url(connector.integration)
    if not url:
        raise ConfigError(
            "set the integration's notification_url (or PLUGS_PUBLIC_BASE_URL) to receive "
            "Graph notifications"
        )
    payload = {
        "changeType": CHANGE_TYPES,
        "notificationUrl": url,
        "lifecycleNotificationUrl": url,
        "resource": resource,
        "expirationDateTime": expiry,
        "clientState": client_state(db, connector),
    }
    return dict(client.request("POST", "/subscriptions", json=payload).json())


def find(
    session: PlugsSession, integration_id: uuid.UUID, external_id: str
) -> WebhookSubscription | None:
    """The integration's subscription with Graph's id ``external_id``."""
    return session.scalars(
        select(WebhookSubscription).where(
            WebhookSubscription.integration_id == integration_id,
            WebhookSubscription.external_id == external_id,
        )
    ).one_or_none()


def _parse(text: Any) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
