"""The four demo vendors: a seeded simulator each, the credentials and settings of an
integration pointed at it, and signed webhook deliveries as that vendor sends them.

The simulators are the ones the connectors' own tests run against (``connectors/*/
simulator.py``); their ids are deterministic, so a second demo run against fresh
simulators upserts the same records instead of adding new ones.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import select

from models.session import Database
from models.sync_state import ExternalId
from models.webhooks import WebhookSubscription
from simulators.hubspot.server import HubSpotSimulator
from simulators.mailchimp.server import MailchimpSimulator
from simulators.teams.server import GraphSimulator
from simulators.zoom.server import ZoomSimulator

HUBSPOT_CONTACTS = 500
HUBSPOT_CLIENT_SECRET = "demo-hubspot-client-secret"
MAILCHIMP_MEMBERS = 300
MAILCHIMP_WEBHOOK_SECRET = "demo-mailchimp-url-token"
TEAMS_ORGANIZER = "organizer@demo.theplugs.test"
TEAMS_CALENDAR_EVENTS = 200


@dataclass(frozen=True)
class Delivery:
    """One signed webhook request: path (with query) under the HTTP app, headers, body."""

    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Target:
    """Where the demo integration of a vendor is and how the HTTP app is reached."""

    db: Database
    org_id: uuid.UUID
    integration_id: uuid.UUID
    http_base: str  # http://127.0.0.1:<port>
    event_ids: dict[str, uuid.UUID] = field(default_factory=dict)

    def path(self, provider: str) -> str:
        return f"/webhooks/{provider}/{self.integration_id}"


class DemoVendor(Protocol):
    provider: str
    sim: Any
    #: Our rows are the source (write-back): the vendor ids linked to them by an earlier
    #: demo run name objects of that run's simulator, gone now, so the links are dropped
    #: and the first sync creates the objects again.
    source_of_truth: bool

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        """Credentials and settings of an integration pointed at the simulator."""
        ...

    def deliveries(self, target: Target) -> list[Delivery]:
        """Signed webhooks about what the first sync brought in."""
        ...


class HubSpot:
    """500 contacts (one with an email HubSpot accepts but we refuse), five meetings."""

    provider = "hubspot"
    source_of_truth = False

    def __init__(self) -> None:
        self.token = f"pat-na1-demo-{_fresh()}"
        self.sim = HubSpotSimulator(private_app_token=self.token)
        self.ids = self.sim.add_contacts(HUBSPOT_CONTACTS)
        for contact_id in self.ids[:5]:
            self.sim.add_engagement("meetings", contact_id, hs_meeting_title="Intro at the summit")
        self.sim.update_contact(self.ids[-1], email="not-an-email@@demo.test")  # on purpose

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        credentials = {"private_app_token": self.token, "client_secret": HUBSPOT_CLIENT_SECRET}
        return credentials, {"base_url": base_url}

    def deliveries(self, target: Target) -> list[Delivery]:
        """A renamed contact and a new one, each POSTed as HubSpot does (v3 signed)."""
        renamed = self.ids[0]
        self.sim.update_contact(renamed, firstname="Augusta")
        [created] = self.sim.add_contacts(1)
        events = [
            self.sim.contact_event("propertyChange", renamed, propertyName="firstname"),
            self.sim.contact_event("creation", created),
        ]
        path = target.path(self.provider)
        found = []
        for event in events:
            headers, body = self.sim.webhook_delivery(
                [event], target.http_base + path, HUBSPOT_CLIENT_SECRET
            )
            found.append(Delivery(path, headers, body))
        return found


class Mailchimp:
    """An audience of 300 members; a new subscriber arrives by webhook."""

    provider = "mailchimp"
    source_of_truth = False

    def __init__(self) -> None:
        self.sim = MailchimpSimulator(api_key=f"{_fresh()}{_fresh()}{_fresh()}{_fresh()}-us21")
        self.sim.add_members(MAILCHIMP_MEMBERS)

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        credentials = {"api_key": self.sim.api_key, "webhook_secret": MAILCHIMP_WEBHOOK_SECRET}
        return credentials, {"base_url": f"{base_url}/3.0", "list_id": self.sim.list_id}

    def deliveries(self, target: Target) -> list[Delivery]:
        member = self.sim.add_member(
            "katherine@demo.theplugs.test", merge_fields={"FNAME": "Katherine"}
        )
        headers, body = self.sim.webhook_delivery("subscribe", member)
        path = f"{target.path(self.provider)}?secret={MAILCHIMP_WEBHOOK_SECRET}"
        return [Delivery(path, headers, body)]


class Zoom:
    """Our Zoom event becomes a meeting with its attendees registered (write-back); the
    admin joining it arrives by webhook and checks her in."""

    provider = "zoom"
    source_of_truth = True

    def __init__(self, admin_email: str) -> None:
        self.sim = ZoomSimulator(account_id=f"demo-account-{_fresh()}")
        self.admin_email = admin_email

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        credentials = {
            "account_id": self.sim.account_id,
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
            "webhook_secret_token": self.sim.webhook_secret,
        }
        settings = {
            "base_url": f"{base_url}/v2",
            "oauth_base_url": base_url,
            "write_back": "true",
        }
        return credentials, settings

    def deliveries(self, target: Target) -> list[Delivery]:
        from demo.people import ZOOM_EVENT

        meeting_id = _external_id(target, "events", target.event_ids[ZOOM_EVENT])
        meeting = self.sim.store.meetings.get(int(meeting_id)) if meeting_id else None
        if meeting is None:
            return []  # the write-back did not create it; the report says why
        participant = {
            "user_id": "16778240",
            "user_name": "Ada Lovelace",
            "email": self.admin_email,
            "join_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        obj = {"id": str(meeting.id), "uuid": meeting.uuid, "type": 2, "participant": participant}
        headers, body = self.sim.deliver("meeting.participant_joined", obj)
        return [Delivery(target.path(self.provider), headers, body)]


class Teams:
    """The organizer's calendar of 200 events, our Teams event as a Teams meeting
    (write-back), and a change notification for one calendar event."""

    provider = "teams"
    source_of_truth = False

    def __init__(self) -> None:
        self.sim = GraphSimulator(tenant_id=str(uuid.uuid4()))
        self.sim.add_user(TEAMS_ORGANIZER, "Demo Organizer")
        self.event_ids = self.sim.add_events(TEAMS_ORGANIZER, TEAMS_CALENDAR_EVENTS)

    def connection(self, base_url: str) -> tuple[dict[str, str], dict[str, str]]:
        credentials = {
            "tenant_id": self.sim.tenant_id,
            "client_id": self.sim.client_id,
            "client_secret": self.sim.client_secret,
        }
        settings = {
            "base_url": base_url,
            "login_base_url": base_url,
            "organizer": TEAMS_ORGANIZER,
            "write_back": "true",
        }
        return credentials, settings

    def deliveries(self, target: Target) -> list[Delivery]:
        with target.db.tenant(target.org_id) as session:
            subscription = session.scalars(
                select(WebhookSubscription.external_id).where(
                    WebhookSubscription.integration_id == target.integration_id,
                    WebhookSubscription.status == "active",
                )
            ).first()
        if subscription is None or subscription not in self.sim.store.subscriptions:
            return []
        self.sim.update_event(self.event_ids[0], subject="Moved to the big room")
        body = self.sim.notification(subscription, "updated", self.event_ids[0])
        headers = {"Content-Type": "application/json"}
        return [Delivery(target.path(self.provider), headers, body)]


def _external_id(target: Target, entity: str, local_id: uuid.UUID) -> str | None:
    with target.db.tenant(target.org_id) as session:
        return session.scalar(
            select(ExternalId.external_id).where(
                ExternalId.integration_id == target.integration_id,
                ExternalId.entity_type == entity,
                ExternalId.local_id == local_id,
            )
        )


def _fresh() -> str:
    """Random hex for this run's vendor accounts: their rate limits are shared through
    Redis by account, and a demo must not inherit another run's waits (or a test's)."""
    return secrets.token_hex(4)
