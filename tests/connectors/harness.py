"""Driving a connector end to end in tests: a vendor simulator over real HTTP, an
integration pointed at it by configuration, runs executed by a real worker process."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from connectors.integrations import add_integration
from models import AuditLog, Contact, IntegrationLog
from models.accounts import create_organization
from models.session import Database
from runs import sync
from simulators.hubspot.server import HubSpotSimulator
from simulators.mailchimp.server import MailchimpSimulator
from simulators.server import serve
from simulators.teams.server import GraphSimulator

FINISHED = ("success", "failed", "partial")


@dataclass
class Vendor:
    """A running simulator and the integration of one fresh organization pointed at it."""

    sim: Any  # HubSpotSimulator, MailchimpSimulator, ...
    base_url: str
    db: Database
    org_id: uuid.UUID
    integration_id: uuid.UUID

    def sync(self, **kwargs: Any) -> IntegrationLog:
        """Start a run and wait for the worker to finish it."""
        run_id = sync.start_run(self.db, self.org_id, self.integration_id, **kwargs)
        return wait_for_run(self.db, self.org_id, run_id)

    def count(self, model: type = Contact, *, include_deleted: bool = False) -> int:
        with self.db.tenant(self.org_id) as session:
            query = select(func.count()).select_from(model)
            return session.scalar(query.execution_options(include_deleted=include_deleted)) or 0

    def audit_rows(self, table: str = "contacts") -> int:
        """Audit rows written for ``table``: one per row created, changed or deleted."""
        with self.db.tenant(self.org_id) as session:
            query = select(func.count()).where(AuditLog.table_name == table)
            return session.scalar(query) or 0


def wait_for_run(
    db: Database, org_id: uuid.UUID, run_id: uuid.UUID, timeout: float = 180
) -> IntegrationLog:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.tenant(org_id) as session:
            run = session.get(IntegrationLog, run_id)
            if run is not None and run.status in FINISHED:
                return run
        time.sleep(0.2)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s")


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
    with serve(sim) as server:
        org = create_organization(db, f"HubSpot customer {uuid.uuid4().hex[:6]}")
        credentials = credentials or {"private_app_token": token or "pat-na1-simulator"}
        integration = add_integration(
            db, org.id, "hubspot", credentials, {"base_url": server.base_url, **settings}
        )
        yield Vendor(sim, server.base_url, db, org.id, integration.id)


@contextmanager
def zoom(
    db: Database, *, sim: Any = None, client_secret: str | None = None, **settings: str
) -> Iterator[Vendor]:
    """A Zoom simulator (OAuth and API on one loopback server) and an integration of a new
    organization pointed at it; ``client_secret`` overrides the right one."""
    from simulators.zoom.server import ZoomSimulator

    sim = sim or ZoomSimulator()
    with serve(sim) as server:
        org = create_organization(db, f"Zoom customer {uuid.uuid4().hex[:6]}")
        credentials = {
            "account_id": sim.account_id,
            "client_id": sim.client_id,
            "client_secret": client_secret or sim.client_secret,
            "webhook_secret_token": sim.webhook_secret,
        }
        urls = {"base_url": f"{server.base_url}/v2", "oauth_base_url": server.base_url}
        integration = add_integration(db, org.id, "zoom", credentials, {**urls, **settings})
        yield Vendor(sim, server.base_url, db, org.id, integration.id)


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
    with serve(sim) as server:
        org = create_organization(db, f"Mailchimp customer {uuid.uuid4().hex[:6]}")
        credentials = credentials or {"api_key": sim.api_key, "webhook_secret": "s3cr3t-url-token"}
        base = {"base_url": f"{server.base_url}/3.0", "list_id": sim.list_id}
        integration = add_integration(db, org.id, "mailchimp", credentials, base | settings)
        yield Vendor(sim, server.base_url, db, org.id, integration.id)


@contextmanager
def teams(
    db: Database,
    *,
    sim: GraphSimulator | None = None,
    client_secret: str | None = None,
    organizer: str = "organizer@contoso.test",
    **settings: Any,
) -> Iterator[Vendor]:
    """A Graph simulator (Graph and login) on loopback with the organizer as a user, and a
    Teams integration of a new organization pointed at it."""
    sim = sim or GraphSimulator()
    if sim.store.user(organizer) is None:
        sim.add_user(organizer, "Organizer")
    with serve(sim) as server:
        org = create_organization(db, f"Teams customer {uuid.uuid4().hex[:6]}")
        credentials = {
            "tenant_id": sim.tenant_id,
            "client_id": sim.client_id,
            "client_secret": client_secret or sim.client_secret,
        }
        integration = add_integration(
            db,
            org.id,
            "teams",
            credentials,
            {
                "base_url": server.base_url,
                "login_base_url": server.base_url,
                "organizer": organizer,
                **settings,
            },
        )
        yield Vendor(sim, server.base_url, db, org.id, integration.id)  # type: ignore[arg-type]
