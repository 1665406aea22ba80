"""Integration rows: the operations behind `plugs integrations` (and any other front end).

Adding, showing, changing, checking and removing an integration are plain functions of a
:class:`~models.session.Database` and ids; they raise :class:`~core.errors.PlugsError`
with a one-line message an operator can act on.  Credentials are encrypted at once
(:mod:`connectors.credentials`) and never returned: a view names their fields only.
Pausing and resuming are :func:`scheduler.schedules.set_active` (schedules and webhook
processing stop together; deliveries wait in the inbox).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update

from connectors import loading
from connectors.base import Connector, unwrap_secret
from connectors.credentials import decrypt_credentials, store_credentials
from connectors.http_urls import check_url_settings
from connectors.registry import get_connector
from core.errors import (
    OUR_CONFIGURATION,
    AuthError,
    ConfigError,
    NotFoundError,
    PlatformConfigError,
    PlugsError,
)
from core.redaction import REDACTED, is_secret_name
from core.settings import get_settings
from models.accounts import get_organization
from models.integrations import Integration, IntegrationLog
from models.schedules import SyncSchedule
from models.session import Database
from models.webhooks import WebhookSubscription

#: Cached tokens an OAuth connector fetched with the other credentials: dropped when those
#: change, so the next call asks the vendor with the new ones.
CACHED_TOKEN_FIELDS = ("access_token", "expires_at")
log = logging.getLogger(__name__)
#: Attempts of the one call a connection check makes (a transient failure is tried once more).
CHECK_ATTEMPTS = 2
#: Longest vendor message a check reports, in characters.
MESSAGE_LIMIT = 400


def add_integration(
    db: Database,
    org_id: uuid.UUID,
    provider: str,
    credentials: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
) -> Integration:
    """Connect ``org_id`` to ``provider``; the credentials are stored encrypted.

    Settings named ``*_url`` are URLs we will call (``base_url``, ``login_base_url``,
    ``oauth_base_url``): each is checked now (:func:`check_url_settings`), so a bad one is
    refused with its name before anything is stored.  ``name`` is the operator's label.
    """
    connector = get_connector(provider)
    _check_credential_names(connector, credentials)
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
            metadata_={"name": _name(name)} if name is not None else {},
        )
        session.add(integration)
        store_credentials(session, integration, dict(credentials))
    after_configured(db, integration.id)
    return integration


def credentials_from(
    token: str | None, credentials_json: str | None, *, what: str = "credentials"
) -> dict[str, Any]:
    """The credential fields given as a JSON object and/or a token (the CLI's
    ``--credentials`` and ``--token``, the console's form): the token goes in ``token``;
    ``what`` names the JSON in errors."""
    credentials: dict[str, Any] = {}
    if credentials_json:
        try:
            credentials = json.loads(credentials_json)
        except json.JSONDecodeError as exc:
            raise PlugsError(f"{what} is not JSON: {exc.msg}") from None
        if not isinstance(credentials, dict):
            raise PlugsError(f"{what} must be a JSON object")
    if token is not None:
        credentials["token"] = token
    return credentials


class CredentialsRefused(PlugsError):
    """The check call made before keeping a new integration failed: nothing was kept."""


def add_checked_integration(
    db: Database,
    org_id: uuid.UUID,
    provider: str,
    credentials: Mapping[str, Any],
    settings: Mapping[str, Any] | None = None,
    *,
    name: str | None = None,
    verify: bool = True,
) -> Integration:
    """:func:`add_integration`, then (``verify``) one authenticated call to the vendor
    (:func:`check_integration`): if it fails the integration is removed again and
    :class:`CredentialsRefused` says why."""
    created = add_integration(db, org_id, provider, credentials, settings, name=name)
    if verify:
        check = check_integration(db, created.id)
        if not check.ok:
            remove_integration(db, created.id)
            raise CredentialsRefused(f"not added: {check.message}")
        created = get_integration(db, created.id)
    return created


def after_configured(db: Database, integration_id: uuid.UUID) -> list[str]:
    """Let the connector set up at the vendor what its new configuration needs
    (:meth:`~connectors.base.Connector.after_configured`): one line per problem, logged;
    the integration is stored either way (a renewal task or the next change tries again)."""
    integration = get_integration(db, integration_id)
    if get_connector(integration.provider).after_configured is Connector.after_configured:
        return []  # nothing to set up
    try:
        problems = loading.open_connector(integration).after_configured(db)
    except PlugsError as exc:
        problems = [f"not set up at the vendor: {exc}"]
    for problem in problems:
        log.warning("integration %s: %s", integration_id, problem)
    return problems


def _check_credential_names(connector: type[Connector], credentials: Iterable[str]) -> None:
    names = {f.name for f in connector.credential_fields}
    unknown = sorted(set(credentials) - names)
    if unknown:
        raise ConfigError(
            f"{connector.provider} takes no credential {', '.join(unknown)}; "
            f"it takes {', '.join(sorted(names))}"
        )


def _name(name: str) -> str:
    if not name.strip():
        raise ConfigError("an integration's name cannot be empty")
    return name.strip()[:255]


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


def get_integration(db: Database, integration_id: uuid.UUID) -> Integration:
    """The integration (detached from its session); NotFoundError for an unknown or
    removed one."""
    org_id = organization_of(db, integration_id)
    with db.tenant(org_id) as session:
        integration = session.get(Integration, integration_id)
        if integration is None:
            raise NotFoundError(f"no integration with id {integration_id}")
        session.expunge(integration)
        return integration


# --- showing ------------------------------------------------------------------------------


@dataclass(frozen=True)
class IntegrationView:
    """What an operator may see of an integration: never a secret.  ``settings`` have the
    values of secret-named keys replaced; credentials are named, not shown."""

    integration: Integration
    name: str | None
    settings: dict[str, Any]
    credential_fields: list[str]
    key_id: str | None
    last_error: str | None
    runs: list[IntegrationLog] = field(default_factory=list)


def describe_integration(
    db: Database, integration_id: uuid.UUID, *, runs: int = 5
) -> IntegrationView:
    """The integration as `plugs integrations show` prints it, with its last ``runs``."""
    integration = get_integration(db, integration_id)
    try:
        fields = sorted(decrypt_credentials(integration))
    except PlatformConfigError as exc:
        fields = [f"(cannot be read: {exc})"]
    stored = integration.credentials or {}
    metadata = integration.metadata_ or {}
    return IntegrationView(
        integration=integration,
        name=metadata.get("name"),
        settings={
            key: REDACTED if is_secret_name(key) else value
            for key, value in sorted(integration.settings.items())
        },
        credential_fields=fields,
        key_id=stored.get("kid") if isinstance(stored, dict) else None,
        last_error=metadata.get("last_error"),
        runs=recent_runs(db, integration_id, runs) if runs else [],
    )


# --- changing -----------------------------------------------------------------------------


def update_integration(
    db: Database,
    integration_id: uuid.UUID,
    *,
    credentials: Mapping[str, Any] | None = None,
    settings: Mapping[str, Any] | None = None,
    unset: Sequence[str] = (),
    name: str | None = None,
) -> list[str]:
    """Change an integration's credentials (merged over the stored ones and encrypted as at
    add; the cached access token is dropped, so the next call uses the new ones), settings
    (``settings`` set, ``unset`` removed; URLs checked as at add) and name.  Returns what
    changed (``credentials``, ``settings``, ``name``)."""
    if not (credentials or settings or unset or name is not None):
        raise ConfigError(
            "nothing to change: give credentials, settings to set or unset, or a name"
        )
    org_id = organization_of(db, integration_id)
    changed = []
    with db.tenant(org_id) as session:
        row = session.get(Integration, integration_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no integration with id {integration_id}")
        connector = get_connector(row.provider)
        if settings or unset:
            merged = {**row.settings, **(settings or {})}
            missing = sorted(key for key in unset if key not in merged)
            if missing:
                raise ConfigError(
                    f"integration {integration_id} has no setting {', '.join(missing)}"
                )
            for key in unset:
                merged.pop(key)
            check_url_settings(merged, allow_private=get_settings().allow_private_urls)
            row.settings = merged
            changed.append("settings")
        if credentials:
            _check_credential_names(connector, credentials)
            current = {k: unwrap_secret(v) for k, v in decrypt_credentials(row).items()}
            kept = {k: v for k, v in current.items() if k not in CACHED_TOKEN_FIELDS}
            store_credentials(session, row, {**kept, **credentials})
            changed.append("credentials")
        if name is not None:
            row.metadata_ = {**(row.metadata_ or {}), "name": _name(name)}
            changed.append("name")
    if "settings" in changed or "credentials" in changed:
        after_configured(db, integration_id)
    return changed


# --- checking -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectionCheck:
    """The outcome of one authenticated call to the vendor: ``message`` is one line."""

    ok: bool
    message: str
    seconds: float


def check_integration(db: Database, integration_id: uuid.UUID) -> ConnectionCheck:
    """Make the connector's one cheap authenticated call
    (:meth:`~connectors.base.Connector.check_connection`) and record what it proved: a
    success marks the integration ``connected``, refused credentials mark it ``error``,
    anything else (unreachable, a wrong setting, our keys) leaves its status alone."""
    integration = get_integration(db, integration_id)
    started = time.monotonic()
    status: str | None = None
    try:
        connector = loading.open_connector(integration)
        with loading.open_client(connector) as client:
            client.max_attempts = CHECK_ATTEMPTS
            seen = connector.check_connection(client)
    except PlatformConfigError as exc:
        ok, message = False, f"{OUR_CONFIGURATION}{exc}"
    except AuthError as exc:
        ok, message, status = False, f"authentication failed: {exc}", "error"
    except PlugsError as exc:
        ok, message = False, str(exc)
    else:
        ok, status = True, "connected"
        message = f"{integration.provider} answered" + (f": {seen}" if seen else "")
    message = " ".join(message.split())[:MESSAGE_LIMIT]
    if status is not None:
        _record_status(db, integration, status, None if ok else message)
    return ConnectionCheck(ok, message, time.monotonic() - started)


def _record_status(db: Database, integration: Integration, status: str, error: str | None) -> None:
    with db.tenant(integration.organization_id) as session:
        row = session.get(Integration, integration.id)
        if row is None:
            return
        metadata = {k: v for k, v in (row.metadata_ or {}).items() if k != "last_error"}
        row.status = status
        row.metadata_ = {**metadata, "last_error": error} if error else metadata


# --- removing -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Removal:
    """What removing an integration did; ``problems``: vendor subscriptions not deleted
    (they expire at the vendor on their own)."""

    schedules: int
    subscriptions: int
    problems: list[str]


def remove_integration(db: Database, integration_id: uuid.UUID) -> Removal:
    """Soft-delete an integration: its vendor-side webhook subscriptions are deleted first
    (while its credentials still serve), then, in one transaction, it is marked deleted and
    its schedules are removed.  Its webhooks get 404 from then on, no run starts, and a run
    still going ends at its next page."""
    integration = get_integration(db, integration_id)
    try:
        deleted, problems = loading.open_connector(integration).delete_webhook_subscriptions(db)
    except PlugsError as exc:
        deleted, problems = 0, [f"vendor subscriptions not deleted: {exc}"]
    with db.tenant(integration.organization_id) as session:
        row = session.get(Integration, integration_id, with_for_update=True)
        if row is None:
            raise NotFoundError(f"no integration with id {integration_id}")
        row.soft_delete()
        schedules = session.execute(
            delete(SyncSchedule)
            .where(SyncSchedule.integration_id == integration_id)
            .execution_options(synchronize_session=False)
        )
        session.execute(
            update(WebhookSubscription)
            .where(
                WebhookSubscription.integration_id == integration_id,
                WebhookSubscription.status == "active",
            )
            .values(status="removed")
            .execution_options(synchronize_session=False)
        )
        removed = int(getattr(schedules, "rowcount", 0) or 0)
    return Removal(removed, deleted, problems)
