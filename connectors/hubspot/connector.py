"""HubSpot CRM v3: contacts and engagements in, contacts out.

Vendor facts: ``docs/vendors/hubspot.md``.  Auth is a private app
token (``private_app_token``, or ``token``) or OAuth (``access_token``, ``refresh_token``,
``expires_at``, ``client_id``, ``client_secret``), refreshed before expiry by TTL (HubSpot
says a 401 is not a refresh signal).  Point it at a simulator with the ``base_url`` setting.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from connectors import loading, upsert
from connectors.base import (
    BearerAuth,
    Connector,
    CredentialField,
    ExportStream,
    PushResult,
    Stream,
    WebhookEvent,
    WebhookRequest,
    unwrap_secret,
)
from connectors.http import VendorClient
from connectors.http_messages import scrub
from connectors.hubspot import webhooks
from connectors.hubspot.mapping import (
    CONTACT_COLUMNS,
    CONTACT_PROPERTIES,
    ENGAGEMENTS,
    contact_properties,
    engagement_mapper,
    map_contact,
)
from connectors.hubspot.paging import CrmPaginator, fetch_by_ids
from connectors.ratelimit import Limit
from core.errors import AuthError, ConfigError, SkippableRecordError
from models.contacts import Contact, ContactInteraction
from models.session import PlugsSession

BASE_URL = "https://api.hubapi.com"
CONTACTS_PATH = "/crm/v3/objects/contacts"
TOKEN_PATH = "/oauth/v1/token"
#: Contact events that re-read the contact, and those that delete it.
CONTACT_CHANGES = frozenset(
    {"contact.creation", "contact.propertyChange", "contact.restore", "contact.merge"}
)
CONTACT_DELETIONS = frozenset({"contact.deletion", "contact.privacyDeletion"})
BATCH_SIZE = 100  # HubSpot's batch endpoints take at most 100 inputs
#: Burst limits per 10 s by tier (private apps); OAuth apps get 110.
TIER_LIMITS = {"free": 100, "starter": 100, "professional": 190, "enterprise": 190, "oauth": 110}
ENGAGEMENT_PROPERTIES = {
    "notes": ("hs_timestamp", "hs_note_body", "hs_lastmodifieddate"),
    "meetings": (
        "hs_timestamp",
        "hs_meeting_title",
        "hs_meeting_body",
        "hs_meeting_outcome",
        "hs_lastmodifieddate",
    ),
    "calls": (
        "hs_timestamp",
        "hs_call_title",
        "hs_call_body",
        "hs_call_disposition",
        "hs_lastmodifieddate",
    ),
    "emails": ("hs_timestamp", "hs_email_subject", "hs_email_text", "hs_lastmodifieddate"),
}


def _engagement_stream(kind: str) -> Stream:
    properties = ENGAGEMENT_PROPERTIES[kind]
    return Stream(
        name=kind,
        entity=ContactInteraction,
        path=f"/crm/v3/objects/{kind}",
        paginator=CrmPaginator(properties, associations="contacts"),
        mapper=engagement_mapper(kind),
        page_size=100,
        after=("contacts",),
    )


def push_contacts(client: VendorClient, rows: Sequence[Any]) -> list[PushResult]:
    """Batch-upsert contacts by email; a 207 fails only the rows it names."""
    results: list[PushResult] = [
        PushResult(r.id, error="contact has no email") for r in rows if not r.email
    ]
    sendable = [r for r in rows if r.email]
    if not sendable:
        return results
    inputs = [
        {
            "id": r.email,
            "idProperty": "email",
            "objectWriteTraceId": str(r.id),
            "properties": contact_properties(r),
        }
        for r in sendable
    ]
    body = client.request("POST", f"{CONTACTS_PATH}/batch/upsert", json={"inputs": inputs}).json()
    failed: dict[str, str] = {}
    for error in body.get("errors") or []:
        for trace in (error.get("context") or {}).get("objectWriteTraceId") or []:
            failed[trace] = str(error.get("message") or error.get("category") or "rejected")[:300]
    by_email = {
        str((rec.get("properties") or {}).get("email") or "").lower(): rec
        for rec in body.get("results") or []
    }
    for row in sendable:
        record = by_email.get(row.email.lower())
        if str(row.id) in failed or record is None:
            results.append(
                PushResult(row.id, error=failed.get(str(row.id), "not in HubSpot's answer"))
            )
        else:
            results.append(PushResult(row.id, external_id=str(record["id"]), record=record))
    return results


class HubSpot(Connector):
    """HubSpot CRM: contacts (incremental on lastmodifieddate) and engagements."""

    provider = "hubspot"
    integration_type = "crm"
    default_base_url = BASE_URL
    allowed_hosts = ("api.hubapi.com",)
    webhook_security_headers = (*Connector.webhook_security_headers, *webhooks.SECURITY_HEADERS)
    credential_fields = (
        CredentialField("private_app_token", required=False, description="Private app token"),
        CredentialField("token", required=False, description="Alias of private_app_token"),
        CredentialField("access_token", required=False),
        CredentialField("refresh_token", required=False),
        CredentialField("expires_at", secret=False, required=False),
        CredentialField("client_id", secret=False, required=False),
        CredentialField("client_secret", required=False),
    )
    streams = (
        Stream(
            name="contacts",
            entity=Contact,
            path=CONTACTS_PATH,
            paginator=CrmPaginator(CONTACT_PROPERTIES),
            mapper=map_contact,
            cursor_field="lastmodifieddate",
            page_size=100,
            fetch_by_ids=fetch_by_ids(CONTACT_PROPERTIES),
            # After this run's write-back: what we just pushed is linked to our rows by
            # then, not pulled in again as new contacts.
            after=("contacts_export",),
        ),
        Stream(
            name="archived_contacts",
            entity=Contact,
            path=CONTACTS_PATH,
            paginator=CrmPaginator(CONTACT_PROPERTIES, params=(("archived", "true"),)),
            mapper=map_contact,
            page_size=100,
        ),
        *(_engagement_stream(kind) for kind in ENGAGEMENTS),
    )
    export_streams = (
        ExportStream(
            name="contacts_export",
            entity=Contact,
            pull_stream="contacts",
            push=push_contacts,
            columns=CONTACT_COLUMNS,
            batch_size=BATCH_SIZE,
        ),
    )

    @property
    def rate_limit(self) -> Limit:
        """The account's burst limit per 10 s: the ``rate_limit`` setting when given (a
        limit-increase pack: 250), else by ``tier``."""
        explicit = self.integration.settings.get("rate_limit")
        if explicit is not None:
            try:
                return Limit(int(explicit), 10.0)
            except (TypeError, ValueError):
                raise ConfigError(
                    f"rate_limit must be requests per 10 s, not {explicit!r}"
                ) from None
        tier = str(self.integration.settings.get("tier") or "free").lower()
        if "refresh_token" in self.credentials and "private_app_token" not in self.credentials:
            tier = "oauth"
        if tier not in TIER_LIMITS:
            raise ConfigError(f"unknown HubSpot tier {tier!r}; one of {', '.join(TIER_LIMITS)}")
        return Limit(TIER_LIMITS[tier], 10.0)

    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = unwrap_secret(self.credentials.get("client_secret"))
        if not secret:
            raise ConfigError("HubSpot webhooks need the app's client_secret in the credentials")
        allow_legacy = str(self.integration.settings.get("allow_legacy_signatures", "")).lower()
        webhooks.verify(request, secret, allow_legacy=allow_legacy in ("1", "true", "yes"))

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        return webhooks.parse(request)

    def apply_webhook_event(self, session: PlugsSession, event: WebhookEvent) -> None:
        """A contact event updates the contact now, not at the next scheduled sync: the
        contact is read again from HubSpot and upserted through the same mapping and
        external-id map as a sync (so an echo of our own write-back changes nothing); a
        deletion soft-deletes it.  Other objects' events are not acted on."""
        if not event.kind.startswith("contact.") or event.object_id is None:
            return
        stream = self.stream("contacts")
        if event.kind in CONTACT_DELETIONS:
            upsert.delete_external(session, self.integration.id, stream, event.object_id)
            return
        if event.kind not in CONTACT_CHANGES:
            return
        assert stream.fetch_by_ids is not None
        client = loading.client_for(self)
        records = stream.fetch_by_ids(client, stream, [event.object_id])
        if not records:
            raise SkippableRecordError(
                f"HubSpot has no contact {event.object_id} any more", record_id=event.object_id
            )
        outcome = upsert.apply_page(session, self.integration.id, stream, records)
        if outcome.failures:
            raise SkippableRecordError(outcome.failures[0]["reason"], record_id=event.object_id)

    def check_connection(self, client: VendorClient) -> str | None:
        """One contact (``GET /crm/v3/objects/contacts?limit=1``): the token reads contacts."""
        if client.request("GET", CONTACTS_PATH, params={"limit": 1}).status_code == 404:
            raise ConfigError(f"no HubSpot CRM API at {self.base_url} (check setting base_url)")
        return None

    def refresh_credentials(self, current: Mapping[str, Any]) -> dict[str, Any] | None:
        """A new OAuth access token from the refresh token (None for private-app tokens)."""
        return refresh_oauth_token(self.base_url, current)

    def auth(self) -> httpx.Auth:
        token = unwrap_secret(
            self.credentials.get("private_app_token") or self.credentials.get("token")
        )
        if token:
            return BearerAuth(token)
        if "refresh_token" in self.credentials:
            return HubSpotOAuth(self)
        raise ConfigError("HubSpot integration needs a private_app_token or OAuth tokens")


class HubSpotOAuth(httpx.Auth):
    """Bearer auth with the OAuth access token, refreshed before it expires (by TTL).

    The refresh runs under a row lock (:func:`connectors.credentials.refresh_if_expiring`),
    so concurrent workers refresh once and all use the new token, stored encrypted.
    """

    #: Refresh this long before the token expires.
    MARGIN = timedelta(minutes=5)

    def __init__(self, connector: HubSpot) -> None:
        self._connector = connector
        self._credentials: Any = connector.credentials

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        expires_at = getattr(self._credentials, "expires_at", None)
        if expires_at is None or expires_at - self.MARGIN <= datetime.now(UTC):
            from connectors.credentials import refresh_if_expiring
            from models.session import get_database

            integration = self._connector.integration
            self._credentials = refresh_if_expiring(
                get_database(),
                integration.organization_id,
                integration.id,
                self._refresh,
                margin=self.MARGIN,
            )
        token = unwrap_secret(self._credentials.get("access_token"))
        request.headers["Authorization"] = f"Bearer {token}"
        yield request

    def _refresh(self, current: Mapping[str, Any]) -> dict[str, Any]:
        return self._connector.refresh_credentials(current) or {}


def refresh_oauth_token(base_url: str, current: Mapping[str, Any]) -> dict[str, Any] | None:
    """A new access token for the OAuth credentials in ``current`` (None without a refresh
    token); raises :class:`AuthError` when HubSpot refuses the refresh token."""
    if not unwrap_secret(current.get("refresh_token")):
        return None
    form = {
        name: unwrap_secret(current.get(name)) or ""
        for name in ("refresh_token", "client_id", "client_secret")
    }
    with VendorClient(name="hubspot", base_url=base_url) as client:
        response = client.request("POST", TOKEN_PATH, data={"grant_type": "refresh_token", **form})
    body = response.json()
    if "access_token" not in body:
        reason = scrub(str(body.get("status") or body.get("error")), response.request)
        raise AuthError(f"HubSpot refused the refresh token: {reason}")
    expires = datetime.now(UTC) + timedelta(seconds=int(body.get("expires_in", 1800)))
    return {
        "access_token": body["access_token"],
        "refresh_token": body.get("refresh_token") or form["refresh_token"],
        "expires_at": expires.isoformat(),
    }
