"""`plugs demo`: the main job on whatever the settings say (by default, with no servers).

It migrates the database, creates a demo organization with users, starts a real worker
process, runs a task through the broker against the database, then syncs a HubSpot
account -- the HubSpot simulator, served on loopback -- through that worker, and prints
what it did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import click
from sqlalchemy import select

from models import IntegrationLog, Organization, User, accounts, migrate
from models.errors import PlugsError
from models.session import get_database, make_engine
from workers.queues import QUEUES
from workers.settings import get_settings

DEMO_ORG = "The Plugs Demo"
DEMO_CONTACTS = 500
DEMO_USERS = (
    ("ada@demo.theplugs.test", "Ada", "Lovelace", True),
    ("grace@demo.theplugs.test", "Grace", "Hopper", False),
)


def _demo_organization() -> Organization:
    db = get_database()
    existing = [o for o in accounts.list_organizations(db) if o.name == DEMO_ORG]
    org = existing[0] if existing else accounts.create_organization(db, DEMO_ORG, plan="pro")
    with db.tenant(org.id) as session:
        have = set(session.scalars(select(User.email)))
    for email, first, last, admin in DEMO_USERS:
        if email not in have:
            accounts.create_user(
                db, org.id, email, first_name=first, last_name=last, is_admin=admin
            )
    return org


def _start_worker(log: Path) -> subprocess.Popen[bytes]:
    """A real worker process (one at a time on the embedded default), its output in ``log``."""
    command = [
        sys.executable,
        "-m",
        "workers.cli",
        "worker",
        "--pool",
        "solo",
        "--queues",
        ",".join(QUEUES),
        "--loglevel",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"demo-{os.getpid()}@%h",
    ]
    with log.open("ab") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the task.")
def demo(timeout: float) -> None:
    """Migrate, create a demo organization, and run a task through a real worker."""
    # The demo's vendor is a simulator on this machine: let its connectors call loopback.
    os.environ.setdefault("PLUGS_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()
    settings = get_settings()
    where = "embedded default (no servers)" if settings.is_embedded else "configured services"
    click.echo(f"The Plugs demo on the {where}")
    owner = make_engine(settings.owner_sqlalchemy_url())
    try:
        migrate.upgrade(owner)
    finally:
        owner.dispose()
    click.echo(f"  database migrated to {migrate.head_revision()}")
    org = _demo_organization()
    click.echo(f"  organization {org.name}: {org.id} with {len(DEMO_USERS)} users")
    from workers.tasks.maintenance import ping

    worker_log = settings.data_dir.resolve() / "demo-worker.log"
    worker = _start_worker(worker_log)
    try:
        started = time.monotonic()
        try:
            result = ping.delay().get(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - reported as one line below
            raise PlugsError(f"the worker did not run the task: {exc}") from None
        took = time.monotonic() - started
        click.echo(
            f"  worker {result['worker']} ran maintenance.ping against {result['database']} "
            f"({result['organizations']} organizations) in {took:.2f}s"
        )
        _sync_hubspot(org.id, timeout)
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    click.echo(
        f"Data is under {settings.data_dir.resolve()}; try `plugs org list`, `plugs logs ID`."
    )


def _sync_hubspot(org_id: uuid.UUID, timeout: float) -> None:
    """Serve the HubSpot simulator, connect the demo organization to it, sync, report."""
    from connectors import sync
    from connectors.hubspot.simulator import HubSpotSimulator
    from connectors.integrations import add_integration
    from connectors.simulator_server import serve

    sim = HubSpotSimulator(private_app_token="pat-na1-demo")
    ids = sim.add_contacts(DEMO_CONTACTS)
    for contact_id in ids[:5]:
        sim.add_engagement("meetings", contact_id, hs_meeting_title="Intro at the summit")
    sim.update_contact(ids[-1], email="not-an-email@@demo.test")  # one bad record, on purpose
    db = get_database()
    with serve(sim) as server:
        integration = add_integration(
            db,
            org_id,
            "hubspot",
            {"private_app_token": "pat-na1-demo"},
            {"base_url": server.base_url},
        )
        started = time.monotonic()
        run_id = sync.start_run(db, org_id, integration.id, full_refresh=True)
        run = _wait(org_id, run_id, timeout)
    click.echo(
        f"  hubspot sync {run.status} in {time.monotonic() - started:.1f}s: "
        f"{run.records_processed} records synced, {run.records_failed} failed "
        f"({run.error_details['failures'][0]['reason'] if run.records_failed else 'none'})"
    )
    click.echo(f"  integration {integration.id}: `plugs logs {integration.id}` shows the run")


def _wait(org_id: uuid.UUID, run_id: uuid.UUID, timeout: float) -> IntegrationLog:
    db = get_database()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.tenant(org_id) as session:
            run = session.get(IntegrationLog, run_id)
            if run is not None and run.status != "running":
                return run
        time.sleep(0.2)
    raise PlugsError(f"the demo sync did not finish within {timeout:.0f}s")


COMMANDS = [demo]
