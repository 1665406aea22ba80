"""Zoom API v2: events become meetings, attendees registrants; attendance, meeting state
and recordings come back by webhook and the participants report.

Vendor facts: ``docs/vendors/zoom.md``.  Credentials: ``account_id``,
``client_id``, ``client_secret`` (Server-to-Server OAuth, :mod:`connectors.zoom.auth`) and
``webhook_secret_token`` (the app's Secret Token, for webhooks).  Settings: ``base_url``
(default ``https://api.zoom.us/v2``), ``oauth_base_url`` (default ``https://zoom.us``),
``plan`` (free | pro | business: the rate limits), ``host_user`` (the Zoom user who hosts
the meetings; default ``me``), ``webhook_max_age`` (seconds, default 300).

Streams: ``meetings`` (events linked to Zoom meetings, read again from Zoom),
``registrants`` (-> event_attendees, matched to users by email), and the write-back
streams ``meetings_export`` (events -> meetings) and ``registrants_export`` (attendees ->
registrants); see :mod:`connectors.zoom.meetings` and :mod:`connectors.zoom.paging`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import httpx

from connectors.base import (
    Connector,
    CredentialField,
    ExportStream,
    Stream,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
    unwrap_secret,
)
from connectors.http import Action, VendorClient
from connectors.ratelimit import ZOOM_LIMITS, Limit
from connectors.zoom import webhooks
from connectors.zoom.attendance import Attendance
from connectors.zoom.auth import ZoomAuth, fetch_token
from connectors.zoom.mapping import (
    MEETING_COLUMNS,
    REGISTRANT_COLUMNS,
    map_meeting,
    map_registrant,
)
from connectors.zoom.meetings import (
    MEETING_ROWS,
    REGISTRANT_ROWS,
    push_meetings,
    push_registrants,
)
from connectors.zoom.paging import MeetingsPaginator, RegistrantsPaginator, bind_stream
from core.errors import ConfigError
from models.events import Event, EventAttendee
from models.session import PlugsSession

BASE_URL = "https://api.zoom.us/v2"
OAUTH_BASE_URL = "https://zoom.us"
#: The label our calls are throttled at: create/list calls are Medium, reads Light; the
#: Heavy report call is rare and Zoom's 429 (Retry-After) covers it and the daily caps.
LABEL = "medium"


class Zoom(Connector):
    """Zoom meetings for events (see the module docstring)."""

    provider = "zoom"
    integration_type = "video"
    default_base_url = BASE_URL
    allowed_hosts = ("api.zoom.us", "zoom.us")
    webhook_security_headers = (*Connector.webhook_security_headers, *webhooks.SECURITY_HEADERS)
    credential_fields = (
        CredentialField("account_id", secret=False, description="Zoom account id"),
        CredentialField("client_id", secret=False, description="S2S OAuth app client id"),
        CredentialField("client_secret", description="S2S OAuth app client secret"),
        CredentialField(
            "webhook_secret_token", required=False, description="The app's webhook Secret Token"
        ),
        CredentialField("access_token", required=False, description="Cached; fetched by us"),
        CredentialField("expires_at", secret=False, required=False),
    )
    #: Zoom's 400s (validation, code 300/3000/...) refuse one record, not the run.
    status_actions = {400: Action.SKIP_RECORD}
    streams = (
        Stream(
            name="meetings",
            entity=Event,
            path="/meetings",
            paginator=MeetingsPaginator(),
            mapper=map_meeting,
            page_size=30,
        ),
        Stream(
            name="registrants",
            entity=EventAttendee,
            path="/meetings/{meetingId}/registrants",
            paginator=RegistrantsPaginator(),
            mapper=map_registrant,
            cursor_field="create_time",
            page_size=300,
            # After this run's write-back: registrants we just created are linked to our
            # attendees by then, not pulled in again as new ones.
            after=("meetings", "registrants_export"),
        ),
    )
    export_streams = (
        ExportStream(
            name="meetings_export",
            entity=Event,
            pull_stream="meetings",
            push=push_meetings,
            columns=MEETING_COLUMNS,
            batch_size=30,
            where=MEETING_ROWS,
            include_deleted=True,  # a soft-deleted event's meeting is deleted
        ),
        ExportStream(
            name="registrants_export",
            entity=EventAttendee,
            pull_stream="registrants",
            push=push_registrants,
            columns=REGISTRANT_COLUMNS,
            batch_size=30,
            where=REGISTRANT_ROWS,
        ),
    )

    @property
    def rate_limit(self) -> Limit:
        """The account's per-second limit for the plan (docs/vendors/zoom.md#rate-limits)."""
        plan = str(self.integration.settings.get("plan") or "free").lower()
        if (plan, LABEL) not in ZOOM_LIMITS:
            raise ConfigError(f"unknown Zoom plan {plan!r}; one of free, pro, business")
        return ZOOM_LIMITS[(plan, LABEL)]

    def account_key(self) -> str:
        """Zoom counts limits per account, shared by every app and integration on it."""
        account = unwrap_secret(self.credentials.get("account_id"))
        return str(account or super().account_key())

    def stream(self, name: str) -> Stream:
        """The stream, its paginator bound to this integration (it reads our meetings and
        matches users)."""
        integration = self.integration
        return bind_stream(super().stream(name), integration.organization_id, integration.id)

    def export_stream(self, name: str) -> ExportStream:
        stream = super().export_stream(name)
        if stream.push is push_meetings:
            host = str(self.integration.settings.get("host_user") or "me")
            return replace(stream, push=functools.partial(push_meetings, host=host))
        return stream

    # ---------------------------------------------------------------- auth

    def refresh_credentials(self, current: Mapping[str, Any]) -> dict[str, Any] | None:
        """A new S2S access token (Zoom gives no refresh token: the client secret is it)."""
        oauth = str(self.integration.settings.get("oauth_base_url") or OAUTH_BASE_URL)
        return fetch_token(oauth, current)

    def auth(self) -> httpx.Auth:
        return ZoomAuth(self)

    def check_connection(self, client: VendorClient) -> str | None:
        """The app's user (``GET /users/me``): a token is issued and accepted."""
        response = client.request("GET", "/users/me")
        if response.status_code == 404:
            raise ConfigError(f"no Zoom API at {self.base_url} (check setting base_url)")
        return f"user {response.json().get('email') or 'me'}"

    # ------------------------------------------------------------- webhooks

    def _secret(self) -> str:
        secret = unwrap_secret(self.credentials.get("webhook_secret_token"))
        if not secret:
            raise ConfigError("Zoom webhooks need the webhook_secret_token credential")
        return secret

    def _max_age(self) -> float:
        return float(self.integration.settings.get("webhook_max_age") or webhooks.MAX_AGE)

    def webhook_handshake(self, request: WebhookRequest) -> WebhookReply | None:
        return webhooks.handshake(request, self._secret(), self._max_age())

    def verify_webhook(self, request: WebhookRequest) -> None:
        webhooks.verify(request, self._secret(), self._max_age())

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        return webhooks.parse(request)

    def webhook_delivery_id(self, request: WebhookRequest, events: Sequence[WebhookEvent]) -> str:
        return webhooks.delivery_id(list(events))

    def apply_webhook_event(self, session: PlugsSession, event: WebhookEvent) -> None:
        from connectors.loading import client_for

        Attendance(session, self.integration.id, lambda: client_for(self)).apply(event)
