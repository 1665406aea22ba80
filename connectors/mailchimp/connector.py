"""Mailchimp Marketing 3.0: an audience's members and campaign activity in, contacts out.

Vendor facts: ``docs/vendors/mailchimp.md``.

* Auth: an API key ``<hex>-<dc>`` (HTTP Basic, any username; the base URL is
  ``https://<dc>.api.mailchimp.com/3.0``) or an OAuth ``access_token`` (Bearer; tokens never
  expire) with the data center in the ``dc`` setting (or ``api_endpoint``, as the OAuth
  metadata names it).  The ``base_url`` setting overrides both (simulators).
* Settings: ``list_id`` (the audience, required), ``status_if_new`` (``subscribed`` or
  ``pending`` for double opt-in; the status of members an export creates), ``page_size``.
* Limits: 10 simultaneous connections per API key, shared by every worker through the
  Redis :class:`~connectors.ratelimit.Concurrency` lease; a 429 is retried with backoff.
* Write-back is ``PUT /lists/{id}/members/{hash}`` with ``status_if_new`` and no
  ``status``: a member who unsubscribed or was cleaned stays so (compliance).
* Webhooks: a secret in the URL query (``webhook_secret`` credential), checked in constant
  time; the validation GET is answered 200.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial
from typing import Any

import httpx

from connectors.base import (
    BearerAuth,
    Connector,
    CredentialField,
    ExportStream,
    PushResult,
    Stream,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
    unwrap_secret,
)
from connectors.http import VendorClient
from connectors.mailchimp import webhooks
from connectors.mailchimp.events import MEMBER_EVENTS, member_record, relink_moved_members
from connectors.mailchimp.mapping import (
    CONTACT_COLUMNS,
    map_activity,
    map_member,
    member_body,
    member_tags,
    subscriber_hash,
    tag_changes,
)
from connectors.mailchimp.paging import (
    MAX_COUNT,
    ActivityPaginator,
    MembersPaginator,
    fetch_members,
)
from connectors.ratelimit import MAILCHIMP_CONNECTIONS
from connectors.upsert import apply_page
from core.errors import AuthError, ConfigError, FatalError, SkippableRecordError
from models.contacts import Contact, ContactInteraction
from models.session import PlugsSession

API_HOST = "api.mailchimp.com"
MEMBERS_PATH = "/lists/{list_id}/members"
#: Members written at once by one export task (each its own idempotent PUT).
PUSH_THREADS = 4
EXPORT_BATCH = 100
STATUSES_IF_NEW = ("subscribed", "pending", "unsubscribed", "transactional")
_DATA_CENTER = re.compile(r"^[a-z]{2,}[0-9]{1,3}$")


def data_center(api_key: str) -> str:
    """The data center of an API key (``…-us21`` -> ``us21``); :class:`ConfigError` (never
    showing the key) when it has none."""
    _, dash, dc = api_key.strip().rpartition("-")
    if not dash or not _DATA_CENTER.match(dc):
        raise ConfigError(
            "the Mailchimp API key has no data-center suffix (it looks like <32 hex>-us21)"
        )
    return dc


def push_members(
    client: VendorClient, rows: Sequence[Any], *, path: str, status_if_new: str
) -> list[PushResult]:
    """Upsert each contact as a member (a refused one is that row's failure)."""
    with ThreadPoolExecutor(max_workers=PUSH_THREADS) as pool:
        return list(pool.map(partial(_push_one, client, path, status_if_new), rows))


def _push_one(client: VendorClient, path: str, status_if_new: str, row: Any) -> PushResult:
    if not row.email or not row.email.strip():
        return PushResult(row.id, error="contact has no email")
    known = (row.metadata_ or {}).get("mailchimp") or {}
    same_list = path == MEMBERS_PATH.format(list_id=known.get("list_id"))
    # The member id we know: a changed address moves that member rather than adding one.
    member_id = str(
        known.get("id") if same_list and known.get("id") else subscriber_hash(row.email)
    )
    try:
        response = client.request(
            "PUT", f"{path}/{member_id}", json=member_body(row, status_if_new)
        )
    except FatalError as exc:
        if getattr(exc, "status_code", None) != 400:
            raise
        return PushResult(row.id, error=str(exc))
    if response.status_code == 404:
        raise ConfigError(f"Mailchimp has no audience at {path} (check the list_id setting)")
    member = response.json()
    changes = tag_changes(member.get("tags") or [], member_tags(row))
    if changes:
        client.request("POST", f"{path}/{member['id']}/tags", json={"tags": changes})
    return PushResult(row.id, external_id=str(member["id"]), record=member)


def _relink(org_id: Any, integration_id: Any, records: list[dict[str, Any]]) -> None:
    from models.session import get_database

    relink_moved_members(get_database(), org_id, integration_id, records)


class Mailchimp(Connector):
    """Mailchimp: audience members (incremental on last_changed) and campaign activity."""

    provider = "mailchimp"
    integration_type = "email"
    default_base_url = f"https://{API_HOST}/3.0"
    allowed_hosts = (API_HOST,)
    rate_limit = MAILCHIMP_CONNECTIONS
    webhook_security_params = (webhooks.SECRET_PARAM,)  # Mailchimp signs nothing
    credential_fields = (
        CredentialField("api_key", required=False, description="API key <hex>-<dc>"),
        CredentialField("access_token", required=False, description="OAuth access token"),
        CredentialField("webhook_secret", required=False, description="?secret= of webhooks"),
    )
    streams = (
        Stream(
            name="members",
            entity=Contact,
            path=MEMBERS_PATH,
            paginator=MembersPaginator(),
            mapper=map_member,
            cursor_field="last_changed",
            page_size=MAX_COUNT,
            fetch_by_ids=fetch_members,
            # After this run's write-back: what we just pushed is linked to our rows by
            # then, not pulled in again as new contacts.
            after=("members_export",),
        ),
        Stream(
            name="activity",
            entity=ContactInteraction,
            path="/reports",
            paginator=ActivityPaginator(),
            mapper=map_activity,
            cursor_field="timestamp",
            page_size=MAX_COUNT,
            after=("members",),
        ),
    )
    export_streams = (
        ExportStream(
            name="members_export",
            entity=Contact,
            pull_stream="members",
            push=push_members,
            columns=CONTACT_COLUMNS,
            batch_size=EXPORT_BATCH,
        ),
    )

    # ----------------------------------------------------------- configuration

    @property
    def list_id(self) -> str:
        value = str(self.integration.settings.get("list_id") or "").strip()
        if not value:
            raise ConfigError("Mailchimp integrations need the audience id in settings list_id")
        return value

    @property
    def base_url(self) -> str:
        configured = self.integration.settings.get("base_url")
        if configured:
            return str(configured).rstrip("/")
        return f"https://{self.data_center()}.{API_HOST}/3.0"

    def data_center(self) -> str:
        """From the API key, else the ``dc`` / ``api_endpoint`` settings (OAuth)."""
        api_key = unwrap_secret(self.credentials.get("api_key"))
        if api_key:
            return data_center(api_key)
        settings = self.integration.settings
        dc = str(settings.get("dc") or "").strip().lower()
        if not dc and settings.get("api_endpoint"):
            dc = (httpx.URL(str(settings["api_endpoint"])).host or "").split(".")[0]
        if not _DATA_CENTER.match(dc):
            raise ConfigError("a Mailchimp OAuth integration needs its data center in setting dc")
        return dc

    def auth(self) -> httpx.Auth:
        api_key = unwrap_secret(self.credentials.get("api_key"))
        if api_key:
            data_center(api_key)  # a key without its data center is refused before use
            return httpx.BasicAuth("plugs", api_key)
        token = unwrap_secret(self.credentials.get("access_token"))
        if token:
            return BearerAuth(token)
        raise ConfigError("a Mailchimp integration needs an api_key or an OAuth access_token")

    def check_connection(self, client: VendorClient) -> str | None:
        """The audience (``GET /lists/{list_id}``): the key works and the list_id exists."""
        response = client.request("GET", f"/lists/{self.list_id}", params={"fields": "id,name"})
        if response.status_code == 404:
            raise ConfigError(f"Mailchimp has no audience {self.list_id} (check setting list_id)")
        return f"audience {response.json().get('name') or self.list_id}"

    def account_key(self) -> str:
        """The API key (or token) the 10-connection limit belongs to, as a hash."""
        explicit = self.integration.settings.get("account_id")
        if explicit:
            return str(explicit)
        secret = unwrap_secret(self.credentials.get("api_key")) or unwrap_secret(
            self.credentials.get("access_token")
        )
        if not secret:
            return str(self.integration.id)
        return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:24]

    def stream(self, name: str) -> Stream:
        """The stream bound to this integration's audience (and page size)."""
        stream = super().stream(name)
        size = self.integration.settings.get("page_size") or stream.page_size
        if not str(size).isdigit() or not 1 <= int(size) <= MAX_COUNT:
            raise ConfigError(f"page_size must be 1..{MAX_COUNT}, not {size!r}")
        paginator = stream.paginator
        if isinstance(paginator, ActivityPaginator):
            paginator = replace(paginator, list_id=self.list_id)
        if isinstance(paginator, MembersPaginator):
            integration = self.integration
            relink = partial(_relink, integration.organization_id, integration.id)
            paginator = replace(paginator, relink=relink)
        return replace(
            stream,
            path=stream.path.format(list_id=self.list_id),
            paginator=paginator,
            page_size=int(size),
        )

    def export_stream(self, name: str) -> ExportStream:
        """The write-back bound to this integration's audience and ``status_if_new``."""
        stream = super().export_stream(name)
        status = str(self.integration.settings.get("status_if_new") or "subscribed")
        if status not in STATUSES_IF_NEW:
            raise ConfigError(f"status_if_new must be one of {', '.join(STATUSES_IF_NEW)}")
        path = MEMBERS_PATH.format(list_id=self.list_id)
        return replace(stream, push=partial(push_members, path=path, status_if_new=status))

    # ----------------------------------------------------------------- webhooks

    def webhook_handshake(self, request: WebhookRequest) -> WebhookReply | None:
        """Mailchimp checks a new webhook URL with a GET that must answer 200."""
        if request.method.upper() not in ("GET", "HEAD"):
            return None
        try:
            self.verify_webhook(request)
        except ConfigError as exc:  # no secret configured: the URL cannot be verified
            raise AuthError(str(exc)) from None
        return WebhookReply(200, b"ok")

    def verify_webhook(self, request: WebhookRequest) -> None:
        secret = unwrap_secret(self.credentials.get("webhook_secret"))
        if not secret:
            raise ConfigError("Mailchimp webhooks need the webhook_secret credential")
        webhooks.verify(request, secret)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        return webhooks.parse(request)

    def webhook_delivery_id(self, request: WebhookRequest, events: Sequence[WebhookEvent]) -> str:
        """Mailchimp sends no id: the hash of the form's fields (one event per delivery)."""
        return webhooks.delivery_key(webhooks.form_pairs(request.body))

    def apply_webhook_event(self, session: PlugsSession, event: WebhookEvent) -> None:
        """A member event updates (or creates) the contact through the members mapping;
        ``campaign`` events change no contact (activity comes with the activity stream)."""
        if event.kind not in MEMBER_EVENTS:
            return
        data = event.payload.get("data") or {}
        list_id = data.get("list_id")
        if list_id and list_id != self.list_id:
            raise SkippableRecordError(
                f"event of audience {list_id}; this integration follows {self.list_id}"
            )
        record = member_record(session, self.integration.id, event.kind, data)
        outcome = apply_page(session, self.integration.id, self.stream("members"), [record])
        if outcome.failures:
            raise SkippableRecordError(outcome.failures[0]["reason"], record_id=event.object_id)
