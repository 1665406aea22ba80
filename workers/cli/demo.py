"""`plugs demo`: the main job on whatever the settings say (by default, with no servers).

It migrates the database, creates a demo organization with users, starts a real worker
process, runs a task through the broker against the database, and prints what it did.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import click
from sqlalchemy import select

from models import Organization, User, accounts, migrate
from models.errors import PlugsError
from models.session import get_database, make_engine
from workers.settings import get_settings

DEMO_ORG = "The Plugs Demo"
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


def _start_worker() -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "workers.cli",
        "worker",
        "--pool",
        "solo",
        "--queues",
        "default,maintenance,syncs",
        "--loglevel",
        "WARNING",
        "--without-mingle",
        "--without-gossip",
        "--hostname",
        f"demo-{os.getpid()}@%h",
    ]
    return subprocess.Popen(command)


@click.command()
@click.option("--timeout", default=60.0, show_default=True, help="Seconds to wait for the task.")
def demo(timeout: float) -> None:
    """Migrate, create a demo organization, and run a task through a real worker."""
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

    worker = _start_worker()
    try:
        started = time.monotonic()
        result = ping.delay().get(timeout=timeout)
        took = time.monotonic() - started
    except Exception as exc:  # noqa: BLE001 - reported as one line below
        raise PlugsError(f"the worker did not run the task: {exc}") from None
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
    click.echo(
        f"  worker {result['worker']} ran maintenance.ping against {result['database']} "
        f"({result['organizations']} organizations) in {took:.2f}s"
    )
    click.echo(f"Data is under {settings.data_dir.resolve()}; try `plugs org list`.")


COMMANDS = [demo]
