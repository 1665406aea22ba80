"""Filling the demo organization: simulators served, integrations pointed at them and
scheduled, a first sync of each, signed webhooks to the HTTP app, a few notifications.

Used by ``plugs demo`` (which then waits and prints what happened) and ``plugs up --demo``
(which keeps everything running).  The simulators run in this process, on loopback, for
as long as it lives (or until :meth:`DemoReport.close`).
"""

from __future__ import annotations

import os
import secrets
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import delete, select, update
from sqlalchemy.exc import OperationalError
from tenacity import retry, retry_if_exception, stop_after_delay, wait_fixed

from connectors.credentials import store_credentials
from connectors.integrations import add_integration
from connectors.meetings import asking_for
from core.errors import PlugsError
from core.settings import get_settings
from demo import teams_subscription
from demo.people import DEMO_USERS, DemoPeople, ensure_people
from demo.vendors import DemoVendor, HubSpot, Mailchimp, Target, Teams, Zoom
from models.api_keys import create_api_key
from models.base import utcnow
from models.events import Event
from models.integrations import Integration, IntegrationLog
from models.session import Database, get_database
from models.sync_state import ExternalId
from models.webhooks import WebhookDelivery
from notifications import Audience, Content, send
from runs.lifecycle import open_run
from scheduler.schedules import set_schedule
from scheduler.timing import Timing
from simulators.server import serve

SCHEDULE = "every 5m"
FINISHED = ("success", "failed", "partial")
FEED_SECRET_FILE = "feed_secret"
#: How often a delivery answered 5xx is sent (vendors retry far longer).
VENDOR_ATTEMPTS = 5


@dataclass
class VendorRun:
    """One vendor's part of the demo."""

    provider: str
    integration_id: uuid.UUID
    base_url: str  # its simulator
    run_id: uuid.UUID | None = None  # its first sync
    run: IntegrationLog | None = None  # once finished
    webhooks_accepted: int = 0
    webhooks_refused: list[str] = field(default_factory=list)


@dataclass
class DemoReport:
    """What :func:`fill_demo` did; ``close()`` stops the simulators."""

    people: DemoPeople
    vendors: list[VendorRun]
    notifications: int  # created now (0 when a previous run already sent them)
    email_note: str
    simulators: ExitStack

    @property
    def org_id(self) -> uuid.UUID:
        return self.people.organization.id

    def close(self, *, pause: bool = False) -> None:
        """Stop the simulators; with ``pause``, pause the integrations pointed at them too
        (their schedules would only fail; ``plugs up --demo`` resumes them)."""
        self.simulators.close()
        if pause:
            db = get_database()
            with db.tenant(self.org_id) as session:
                for run in self.vendors:
                    integration = session.get(Integration, run.integration_id)
                    if integration is not None:
                        integration.is_active = False


def prepare_environment() -> None:
    """Settings every process of the demo needs, set before any child starts: connectors
    may call the loopback simulators, and the feed has a signing secret (generated once
    into the data folder when ``PLUGS_FEED_SECRET`` is not set)."""
    os.environ.setdefault("PLUGS_ALLOW_PRIVATE_URLS", "true")
    get_settings.cache_clear()
    if get_settings().feed_secret is None:
        os.environ["PLUGS_FEED_SECRET"] = _stored_feed_secret(get_settings().data_dir)
        get_settings.cache_clear()
    if get_settings().console_secret is None:  # the console's cookies, for this demo's run
        os.environ["PLUGS_CONSOLE_SECRET"] = secrets.token_urlsafe(32)
        get_settings.cache_clear()


def console_key(db: Database, org_id: uuid.UUID) -> str:
    """A new API key of the demo organization, to sign in to the web console with (a key
    is shown once: each demo makes its own)."""
    return create_api_key(db, org_id, f"demo console {utcnow():%Y-%m-%d %H:%M:%S}")[1]


def _stored_feed_secret(data_dir: Path) -> str:
    path = (data_dir / FEED_SECRET_FILE).resolve()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as output:
            output.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def fill_demo(http_port: int | None, *, timeout: float = 120.0) -> DemoReport:
    """Create (or find) the demo data, connect the four vendors, sync each once and wait
    for those syncs, notify the admin, then send signed webhooks to the HTTP app on
    ``http_port`` (if given), each processed before the next.  Idempotent: a second call
    adds no rows it already made (webhooks are new events, so they are stored again)."""
    prepare_environment()
    db = get_database()
    people = ensure_people(db)
    admin_email = DEMO_USERS[0][0]
    vendors: list[DemoVendor] = [HubSpot(), Mailchimp(), Zoom(admin_email), Teams()]
    stack = ExitStack()
    try:
        # One step at a time: on the embedded default SQLite takes one writer at a time, so
        # the demo does not write while the worker does (see _locked_retry).
        runs = [_connect(db, stack, people, vendor, http_port) for vendor in vendors]
        _start_runs(db, people.organization.id, runs)
        for run in runs:
            assert run.run_id is not None
            run.run = wait_for_run(db, people.organization.id, run.run_id, timeout)
        created, email_note = _notify(db, people, runs)
        report = DemoReport(people, runs, created, email_note, stack)
        if http_port is not None:
            base = f"http://127.0.0.1:{http_port}"
            for vendor, run in zip(vendors, runs, strict=True):
                target = Target(db, people.organization.id, run.integration_id, base)
                target.event_ids = people.event_ids
                _post(vendor, target, run, lambda: wait_for_webhooks(db, report, timeout))
    except BaseException:
        stack.close()
        raise
    return report


def _connect(
    db: Database,
    stack: ExitStack,
    people: DemoPeople,
    vendor: DemoVendor,
    http_port: int | None,
) -> VendorRun:
    """Serve the simulator, point the organization's integration at it (creating it the
    first time), follow its changes (Teams) and schedule it."""
    org_id = people.organization.id
    server = stack.enter_context(serve(vendor.sim))
    credentials, settings = vendor.connection(server.base_url)
    integration_id = _integration(db, org_id, vendor.provider, credentials, settings)
    if vendor.source_of_truth:
        _forget_links(db, org_id, integration_id, vendor.provider)
    if vendor.provider == "teams" and http_port is not None:
        url = f"http://127.0.0.1:{http_port}/webhooks/teams/{integration_id}"
        teams_subscription.follow(db, org_id, integration_id, url)
    set_schedule(db, integration_id, Timing.parse(every=SCHEDULE))
    return VendorRun(vendor.provider, integration_id, server.base_url)


def _start_runs(db: Database, org_id: uuid.UUID, runs: list[VendorRun]) -> None:
    """A full sync of each integration, opened in one transaction: the worker starts on
    them once everything the demo writes before is written."""
    with db.tenant(org_id) as session:
        for run in runs:
            integration = session.get(Integration, run.integration_id)
            assert integration is not None
            run.run_id = open_run(session, integration, full_refresh=True)


def _integration(
    db: Database,
    org_id: uuid.UUID,
    provider: str,
    credentials: dict[str, str],
    settings: dict[str, str],
) -> uuid.UUID:
    """The organization's integration of ``provider``, now pointed at ``settings`` with
    fresh ``credentials`` (tokens cached for an earlier simulator would be refused)."""
    with db.tenant(org_id) as session:
        integration = session.scalars(
            select(Integration)
            .where(Integration.provider == provider)
            .order_by(Integration.created_at)
        ).first()
        if integration is not None:
            integration.settings = {**integration.settings, **settings}
            integration.is_active = True
            store_credentials(session, integration, credentials)
            return integration.id
    return add_integration(db, org_id, provider, credentials, settings).id


def _forget_links(
    db: Database, org_id: uuid.UUID, integration_id: uuid.UUID, provider: str
) -> None:
    """Drop the integration's links to vendor objects (see ``DemoVendor.source_of_truth``),
    and what the last run's meetings wrote onto the events asking for this platform (their
    ids and join URLs name meetings of a simulator that is gone)."""
    with db.tenant(org_id) as session:
        session.execute(delete(ExternalId).where(ExternalId.integration_id == integration_id))
        session.execute(
            update(Event)
            .where(asking_for(provider))
            .values(venue_details={}, registration_url=None)
            .execution_options(synchronize_session=False)
        )


def _post(
    vendor: DemoVendor, target: Target, run: VendorRun, processed: Callable[[], object]
) -> None:
    """POST the vendor's signed deliveries to the HTTP app, as the vendor would (a 5xx is
    tried again, as vendors do), each once the previous one is ``processed()``."""
    with httpx.Client(base_url=target.http_base, timeout=30) as client:
        for delivery in vendor.deliveries(target):
            for attempt in range(VENDOR_ATTEMPTS):
                answer = client.post(delivery.path, content=delivery.body, headers=delivery.headers)
                if answer.status_code < 500:
                    break
                time.sleep(0.5 * (attempt + 1))
            if answer.is_success:
                run.webhooks_accepted += 1
                processed()
            else:
                run.webhooks_refused.append(f"HTTP {answer.status_code} {answer.text[:80]}")


def _locked(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "locked" in str(exc)


#: SQLite refuses a write whose transaction read before another process committed
#: ("database is locked", whatever the busy timeout): the demo's own writes try again.
_locked_retry = retry(
    retry=retry_if_exception(_locked),
    wait=wait_fixed(0.5),
    stop=stop_after_delay(60),
    reraise=True,
)


def _notify(db: Database, people: DemoPeople, runs: list[VendorRun]) -> tuple[int, str]:
    """A welcome and a summary of the first syncs to the admin: in-app, and by email when
    SMTP is configured.  Keyed, so a second demo run sends nothing again."""
    email = bool(get_settings().smtp_servers)
    channels = ("in_app", "email") if email else ("in_app",)
    note = "in-app and email" if email else "in-app only (set PLUGS_SMTP_SERVERS to send email too)"
    synced = ", ".join(f"{r.provider} {r.run.records_processed if r.run else 0}" for r in runs)
    messages = [
        Content(
            "Welcome to The Plugs",
            "Your demo organization is connected to HubSpot, Mailchimp, Zoom and Teams.",
            channels=channels,
            key="demo:welcome",
        ),
        Content(
            "First syncs finished",
            f"Records synced: {synced}. Each integration now syncs {SCHEDULE}.",
            notification_type="success",
            channels=channels,
            key="demo:first-syncs",
        ),
    ]
    audience = Audience(user_ids=(people.admin_id,))
    notify = _locked_retry(send)
    created = sum(notify(db, people.organization.id, audience, c).created for c in messages)
    return created, note


def wait_for_run(
    db: Database, org_id: uuid.UUID, run_id: uuid.UUID, timeout: float
) -> IntegrationLog:
    """The run once a worker has finished it; a clear error after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.tenant(org_id) as session:
            run = session.get(IntegrationLog, run_id)
            if run is not None and run.status in FINISHED:
                session.expunge(run)
                return run
        time.sleep(0.2)
    raise PlugsError(
        f"the demo sync {run_id} did not finish within {timeout:.0f}s (is the worker running? "
        f"see its log under {get_settings().data_dir.resolve()})"
    )


def wait_for_webhooks(db: Database, report: DemoReport, timeout: float) -> dict[str, int]:
    """Processed deliveries per provider, once none of the demo's is waiting any more and
    the runs they started (a Teams notification syncs the changed event) have ended."""
    ids = {r.integration_id: r.provider for r in report.vendors}
    deadline = time.monotonic() + timeout
    while True:
        with db.tenant(report.org_id) as session:
            rows = session.execute(
                select(WebhookDelivery.integration_id, WebhookDelivery.status).where(
                    WebhookDelivery.integration_id.in_(ids)
                )
            ).all()
            running = session.scalar(
                select(IntegrationLog.id)
                .where(IntegrationLog.integration_id.in_(ids), IntegrationLog.status == "running")
                .limit(1)
            )
        if running is None and all(status != "received" for _, status in rows):
            done = dict.fromkeys(ids.values(), 0)
            for integration_id, status in rows:
                done[ids[integration_id]] += status == "processed"
            return done
        if time.monotonic() > deadline:
            waiting = sum(status == "received" for _, status in rows)
            raise PlugsError(
                f"{waiting} demo webhook deliveries (or the runs they started) were not "
                f"processed within {timeout:.0f}s (is the worker running?)"
            )
        time.sleep(0.2)
