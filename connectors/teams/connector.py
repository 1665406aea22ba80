"""Microsoft Teams through Microsoft Graph: calendar events and Teams meetings both ways,
attendance into event_attendees, change notifications.

Vendor facts: ``docs/vendors/teams.md``.  Credentials: ``tenant_id``,
``client_id``, ``client_secret`` of an app registration with application permissions
(``Calendars.ReadWrite``, ``OnlineMeetings.Read.All``, ``OnlineMeetingArtifact.Read.All``
and an application access policy for the organizer); the app token is cached encrypted as
``access_token``/``expires_at`` (:mod:`connectors.teams.auth`), the notification
``client_state`` is generated (:mod:`connectors.teams.subscriptions`).  Settings:

* ``organizer`` (required): the Graph user id or UPN whose calendar holds the meetings;
* ``notification_url``: where Graph sends change notifications (the receiver's URL;
  ``{integration_id}`` in it is replaced by the integration's id); without it, derived
  from ``PLUGS_PUBLIC_BASE_URL``.  Subscriptions are made as soon as the integration is
  added or changed (:meth:`Teams.after_configured`), then kept by the renewal task;
* ``attendance_days`` (30), ``subscription_minutes`` (at most 4,220: Graph's 4,230 less a
  margin for clock skew);
* ``base_url`` / ``login_base_url``: Graph and the login host (a simulator in tests).

Streams: ``events`` (the organizer's calendar into ``events``, incremental on
``lastModifiedDateTime``), ``attendance`` (attendance records into ``event_attendees``,
after ``events``) and the export stream ``meetings`` (events that ask for Teams become
Teams meetings, see :mod:`connectors.teams.meetings`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import httpx
from sqlalchemy import select

from connectors.base import (
    Connector,
    CredentialField,
    ExportStream,
    Stream,
    SyncRequest,
    WebhookEvent,
    WebhookReply,
    WebhookRequest,
    unwrap_secret,
)
from connectors.http import VendorClient
from connectors.meetings import closed_here
from connectors.ratelimit import Limit
from connectors.teams import subscriptions, webhooks
from connectors.teams.attendance import AttendancePaginator
from connectors.teams.auth import LOGIN_BASE, GraphAuth, fetch_token
from connectors.teams.mapping import EVENT_COLUMNS, map_attendance, map_event
from connectors.teams.meetings import MEETING_ROWS, push_meetings
from connectors.teams.paging import GraphPaginator, fetch_events_by_ids
from core.errors import AuthError, ConfigError, SkippableRecordError
from models.events import Event, EventAttendee
from models.integrations import Integration
from models.session import Database, PlugsSession, get_database
from models.sync_state import ExternalId

GRAPH_URL = "https://graph.microsoft.com/v1.0"
GRAPH_HOSTS = ("graph.microsoft.com",)
EVENTS_PATH = "/users/{organizer}/events"
MEETINGS_PATH = "/users/{organizer}/onlineMeetings"
#: Outlook: 10,000 requests per 10 minutes per app and mailbox (docs/vendors/teams.md).
MAILBOX_LIMIT = Limit(10_000, 600.0)


class Teams(Connector):
    """Microsoft Teams meetings and the organizer's calendar through Microsoft Graph."""

    provider = "teams"
    integration_type = "video"
    default_base_url = GRAPH_URL
    credential_fields = (
        CredentialField("tenant_id", secret=False, description="Directory (tenant) id"),
        CredentialField("client_id", secret=False, description="Application (client) id"),
        CredentialField("client_secret", description="Client secret of the app registration"),
        CredentialField("access_token", required=False),
        CredentialField("expires_at", secret=False, required=False),
        CredentialField("client_state", required=False, description="Generated"),
    )
    streams = (
        Stream(
            name="events",
            entity=Event,
            path=EVENTS_PATH,
            paginator=GraphPaginator(),
            mapper=map_event,
            cursor_field="lastModifiedDateTime",
            page_size=50,
            fetch_by_ids=fetch_events_by_ids,
            # After this run's write-back: meetings we just created are linked to our
            # events by then, not pulled in again as new events.
            after=("meetings",),
        ),
        Stream(
            name="attendance",
            entity=EventAttendee,
            path=MEETINGS_PATH,
            paginator=AttendancePaginator(),
            mapper=map_attendance,
            page_size=100,
            after=("events",),
        ),
    )
    export_streams = (
        ExportStream(
            name="meetings",
            entity=Event,
            pull_stream="events",
            push=push_meetings,
            columns=EVENT_COLUMNS,
            batch_size=20,
            where=MEETING_ROWS,
            include_deleted=True,  # a soft-deleted event's meeting is deleted
        ),
    )
    rate_limit = MAILBOX_LIMIT
    webhook_ack_status = 202  # Graph: acknowledge a stored notification with 202

    # --- per-integration streams (the organizer's mailbox is in the paths) ---------------

    @property
    def organizer(self) -> str:
        organizer = str(self.integration.settings.get("organizer") or "").strip()
        if not organizer:
            raise ConfigError("set the Teams integration's organizer (a Graph user id or UPN)")
        return organizer

    def stream(self, name: str) -> Stream:
        """The declared stream with this integration's organizer in its path (and, for
        attendance, a paginator that can match users of this organization)."""
        stream = super().stream(name)
        path = stream.path.format(organizer=self.organizer)
        if name == "attendance":
            paginator = AttendancePaginator(self.integration, path)
            return dataclasses.replace(stream, path=path, paginator=paginator)
        return dataclasses.replace(stream, path=path)

    def export_stream(self, name: str) -> ExportStream:
        """The declared export stream, pushing to this integration's organizer's calendar."""
        events_path = EVENTS_PATH.format(organizer=self.organizer)
        push = functools.partial(push_meetings, events_path=events_path)
        return dataclasses.replace(super().export_stream(name), push=push)

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """Graph's hosts, and the configured base URL's (a simulator, a national cloud)."""
        return (*GRAPH_HOSTS, httpx.URL(self.base_url).host)

    def account_key(self) -> str:
        tenant = unwrap_secret(self.credentials.get("tenant_id")) or self.integration.id
        return f"{tenant}:{self.organizer.lower()}"

    # --- auth ----------------------------------------------------------------------------

    def auth(self) -> httpx.Auth:
        return GraphAuth(self)

    def check_connection(self, client: VendorClient) -> str | None:
        """The organizer (``GET /users/{organizer}``): a token is issued, and Graph lets
        the app read the user whose calendar holds the meetings."""
        response = client.request("GET", f"/users/{self.organizer}")
        if response.status_code == 404:
            raise ConfigError(f"Graph has no user {self.organizer} (check setting organizer)")
        return f"organizer {response.json().get('userPrincipalName') or self.organizer}"

    def delete_webhook_subscriptions(self, db: Database) -> tuple[int, list[str]]:
        """Delete the integration's change-notification subscriptions at Graph."""
        return subscriptions.delete_all(db, self)

    def after_configured(self, db: Database) -> list[str]:
        """Subscribe to the organizer's calendar now, not at the next renewal round."""
        return subscriptions.set_up(db, self)

    def refresh_credentials(self, current: Any) -> dict[str, Any] | None:
        """A new app token (client credentials have no refresh token: ask again)."""
        login = str(self.integration.settings.get("login_base_url") or LOGIN_BASE)
        return fetch_token(login, current)

    # --- change notifications ------------------------------------------------------------

    def followed_resources(self) -> list[str]:
        return [EVENTS_PATH.format(organizer=self.organizer)]

    def webhook_handshake(self, request: WebhookRequest) -> WebhookReply | None:
        return webhooks.handshake(request)

    def verify_webhook(self, request: WebhookRequest) -> None:
        state = unwrap_secret(self.credentials.get("client_state"))
        if not state:
            raise AuthError("this Teams integration has no subscription (no clientState) yet")
        webhooks.verify(request, state)

    def parse_webhook(self, request: WebhookRequest) -> list[WebhookEvent]:
        return webhooks.parse(request)

    def webhook_stored_body(self, request: WebhookRequest) -> bytes:
        """The delivery without its clientState (a secret), for the inbox."""
        return webhooks.stored_body(request)

    def apply_webhook_event(self, session: PlugsSession, event: WebhookEvent) -> SyncRequest | None:
        """created/updated: fetch that event again through the ``events`` stream (a run
        of its own); deleted: soft-delete our event unless it is cancelled or deleted here
        already (then the deletion is our own write-back's echo); lifecycle: renew,
        recreate, or run a catch-up sync of ``events`` after ``missed``."""
        integration = session.get(Integration, self.integration.id)
        if integration is None:
            raise ConfigError(f"integration {self.integration.id} is gone")
        if event.kind in ("created", "updated") and event.object_id:
            return SyncRequest(streams=("events",), record_ids={"events": [event.object_id]})
        if event.kind == "deleted" and event.object_id:
            self._soft_delete(session, event.object_id)
        elif event.kind == webhooks.LIFECYCLE + "missed":
            return SyncRequest(streams=("events",))
        elif event.kind.startswith(webhooks.LIFECYCLE):
            self._lifecycle(session, event)
        return None

    def _soft_delete(self, session: PlugsSession, graph_id: str) -> None:
        """Soft-delete the event of a calendar event deleted in Outlook or Teams; one
        cancelled or deleted here keeps its row as it is (see :func:`closed_here`)."""
        local_id = session.scalar(
            select(ExternalId.local_id).where(
                ExternalId.integration_id == self.integration.id,
                ExternalId.entity_type == "events",
                ExternalId.external_id == graph_id,
            )
        )
        if local_id is None:
            return  # never synced here
        row = session.scalars(
            select(Event).where(Event.id == local_id).execution_options(include_deleted=True)
        ).one_or_none()
        if row is not None and not closed_here(row):
            row.soft_delete()

    def _lifecycle(self, session: PlugsSession, event: WebhookEvent) -> None:
        row = subscriptions.find(session, self.integration.id, str(event.object_id))
        if row is None:
            return  # a subscription we no longer hold (already recreated)
        db = get_database()
        if event.kind == webhooks.LIFECYCLE + "subscriptionRemoved":
            done = subscriptions.recreate(db, self, row)
        elif event.kind == webhooks.LIFECYCLE + "reauthorizationRequired":
            done = subscriptions.refresh(db, self, row)
        else:
            return
        if not done:
            raise SkippableRecordError(f"subscription {event.object_id}: {row.last_error}")
