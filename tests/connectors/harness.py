"""Driving our connectors end to end in tests: a vendor simulator over real HTTP, an
integration of a fresh organization pointed at it by configuration, runs executed by a
real worker process.

The pieces are the shipped ones (:mod:`connectors.testing`); what is ours is each vendor's
credentials and settings for its simulator, and a :class:`Vendor` that starts runs in this
process through the engine (:mod:`runs.sync`), which saves the `plugs` command's start-up
on each of the suite's many runs.  The conformance suite starts them with the command, as
a third party's tests do.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from connectors import testing
from connectors.testing.vendor import FINISHED, wait_for_run
from models.session import Database
from runs import sync
from simulators.hubspot.server import HubSpotSimulator
from simulators.mailchimp.server import MailchimpSimulator
from simulators.teams.server import GraphSimulator
from simulators.zoom.server import ZoomSimulator

__all__ = ["FINISHED", "Vendor", "hubspot", "mailchimp", "teams", "wait_for_run", "zoom"]

ORGANIZER = "organizer@contoso.test"


class Vendor(testing.Vendor):
    """The shipped :class:`connectors.testing.Vendor`, its runs started in this process."""

    def start(self, **kwargs: Any) -> uuid.UUID:
        """Open a run through the engine (``streams``, ``full_refresh``, ``record_ids``...)."""
        return sync.start_run(self.db, self.org_id, self.integration_id, **kwargs)


# --- each vendor's credentials and settings for its simulator -----------------------------


def zoom_credentials(sim: ZoomSimulator, client_secret: str | None = None) -> dict[str, str]:
    return {
        "account_id": sim.account_id,
        "client_id": sim.client_id,
        "client_secret": client_secret or sim.client_secret,
        "webhook_secret_token": sim.webhook_secret,
    }


def zoom_settings(sim: ZoomSimulator, base_url: str) -> dict[str, str]:
    """OAuth and API on one loopback server."""
    return {"base_url": f"{base_url}/v2", "oauth_base_url": base_url}


def mailchimp_credentials(sim: MailchimpSimulator) -> dict[str, str]:
    return {"api_key": sim.api_key, "webhook_secret": "s3cr3t-url-token"}


def mailchimp_settings(sim: MailchimpSimulator, base_url: str) -> dict[str, str]:
    """The simulator's audience."""
    return {"base_url": f"{base_url}/3.0", "list_id": sim.list_id}


def graph_simulator(organizer: str = ORGANIZER) -> GraphSimulator:
    """A Graph simulator whose tenant has ``organizer`` as a user."""
    return with_organizer(GraphSimulator(), organizer)


def with_organizer(sim: GraphSimulator, organizer: str) -> GraphSimulator:
    if sim.store.user(organizer) is None:
        sim.add_user(organizer, "Organizer")
    return sim


def teams_credentials(sim: GraphSimulator, client_secret: str | None = None) -> dict[str, str]:
    return {
        "tenant_id": sim.tenant_id,
        "client_id": sim.client_id,
        "client_secret": client_secret or sim.client_secret,
    }


def teams_settings(
    sim: GraphSimulator, base_url: str, organizer: str = ORGANIZER
) -> dict[str, str]:
    """Graph and its login on one loopback server, the calendar of ``organizer``."""
    return {"base_url": base_url, "login_base_url": base_url, "organizer": organizer}


# --- a simulator served and an organization connected to it -------------------------------


@contextmanager
def hubspot(
    db: Database,
    *,
    sim: HubSpotSimulator | None = None,
    token: str | None = None,
    credentials: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[Vendor]:
    """A HubSpot simulator served on loopback and an integration of a new organization."""
    sim = sim or HubSpotSimulator()
    credentials = credentials or {"private_app_token": token or "pat-na1-simulator"}
    with testing.connect(
        db, "hubspot", sim, credentials, lambda url: {"base_url": url, **settings}, vendor=Vendor
    ) as vendor:
        assert isinstance(vendor, Vendor)
        yield vendor


@contextmanager
def zoom(
    db: Database,
    *,
    sim: ZoomSimulator | None = None,
    client_secret: str | None = None,
    **settings: str,
) -> Iterator[Vendor]:
    """A Zoom simulator and an integration of a new organization pointed at it;
    ``client_secret`` overrides the right one."""
    sim = sim or ZoomSimulator()
    with testing.connect(
        db,
        "zoom",
        sim,
        zoom_credentials(sim, client_secret),
        lambda url: {**zoom_settings(sim, url), **settings},
        vendor=Vendor,
    ) as vendor:
        assert isinstance(vendor, Vendor)
        yield vendor


@contextmanager
def mailchimp(
    db: Database,
    *,
    sim: MailchimpSimulator | None = None,
    credentials: dict[str, str] | None = None,
    **settings: str,
) -> Iterator[Vendor]:
    """A Mailchimp simulator served on loopback and an integration of a new organization
    following its audience (API key auth unless ``credentials`` say otherwise)."""
    sim = sim or MailchimpSimulator()
    with testing.connect(
        db,
        "mailchimp",
        sim,
        credentials or mailchimp_credentials(sim),
        lambda url: mailchimp_settings(sim, url) | settings,
        vendor=Vendor,
    ) as vendor:
        assert isinstance(vendor, Vendor)
        yield vendor


@contextmanager
def teams(
    db: Database,
    *,
    sim: GraphSimulator | None = None,
    client_secret: str | None = None,
    organizer: str = ORGANIZER,
    **settings: Any,
) -> Iterator[Vendor]:
    """A Graph simulator (Graph and login) on loopback with the organizer as a user, and a
    Teams integration of a new organization pointed at it."""
    sim = with_organizer(sim or GraphSimulator(), organizer)
    with testing.connect(
        db,
        "teams",
        sim,
        teams_credentials(sim, client_secret),
        lambda url: {**teams_settings(sim, url, organizer), **settings},
        vendor=Vendor,
    ) as vendor:
        assert isinstance(vendor, Vendor)
        yield vendor
