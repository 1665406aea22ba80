"""Fan-out: preferences, quiet hours, idempotency keys, expiry, producers, a real worker."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.errors import PlugsError
from models import Integration, IntegrationLog, Notification
from models.base import utcnow
from models.notification_delivery import NotificationDelivery
from models.organizations import Organization
from models.session import Database, get_database
from notifications import Audience, Content, send
from notifications.fanout import run_request
from notifications.preferences import set_preference, set_profile
from notifications.producers import run_ended
from tests import services
from tests.notifications.conftest import Org, Providers, deliver_all, deliveries


def test_an_opted_out_channel_gets_nothing_and_org_defaults_apply(
    db: Database, org: Org, providers: Providers
) -> None:
    with db.tenant(org.id) as session:
        session.get(Organization, org.id).settings = {"notifications": {"channels": {"sms": False}}}
        set_preference(session, org.users[0], "email", False)  # every type
        set_preference(session, org.users[1], "sms", True, notification_type="warning")

    result = send(
        db, org.id, Audience(role="members"), Content("T", "M", "warning", ("email", "sms"))
    )

    assert (result.created, result.opted_out) == (3, 3)
    rows = {(d.user_id, d.channel) for d in deliveries(db, org.id)}
    assert rows == {(org.admin, "email"), (org.users[1], "email"), (org.users[1], "sms")}


def _zone_where_it_is_noon(now: datetime) -> ZoneInfo:
    """A zone whose local time at ``now`` is 12:xx (POSIX signs: Etc/GMT-2 is UTC+2), so
    quiet hours of 11:00-14:00 there hold ``now`` whatever the hour of the run, and end the
    same local day.  Quiet hours across midnight and DST changes: test_quiet_hours.py."""
    offset = 12 - now.astimezone(UTC).hour  # -11 .. +12
    return ZoneInfo(f"Etc/GMT{-offset:+d}" if offset else "Etc/UTC")


def test_quiet_hours_hold_email_until_they_end_but_not_in_app_or_urgent(
    db: Database, org: Org, providers: Providers
) -> None:
    now = datetime.now(UTC)
    zone = _zone_where_it_is_noon(now)
    with db.tenant(org.id) as session:
        set_profile(session, org.admin, time_zone=zone.key, quiet_hours=("11:00", "14:00"))

    held = send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("Q", "quiet", channels=("in_app", "email")),
    )
    urgent = send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("U", "now", channels=("email",), urgent=True),
    )
    report = deliver_all(db, org.id)

    assert (held.deferred, urgent.deferred, report.sent) == (1, 0, 2)
    waiting = [d for d in deliveries(db, org.id) if d.status == "queued"]
    assert len(waiting) == 1 and waiting[0].channel == "email"
    quiet_end = now.astimezone(zone).replace(hour=14, minute=0, second=0, microsecond=0)
    assert waiting[0].due_at == quiet_end
    assert [m["Subject"] for m in providers.mailbox.messages] == ["U"]


def test_the_same_key_reaches_each_user_and_channel_once(
    db: Database, org: Org, providers: Providers
) -> None:
    content = Content("Once", "only once", channels=("in_app", "email"), key="welcome-2026")

    first = send(db, org.id, Audience(role="members"), content)
    again = send(db, org.id, Audience(role="members"), content)
    deliver_all(db, org.id)

    assert (first.created, again.created, again.duplicates) == (6, 0, 6)
    with db.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(Notification)) == 6
    assert len(providers.mailbox.messages) == 3


def test_an_expired_notification_is_never_sent(
    db: Database, org: Org, providers: Providers
) -> None:
    send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("Soon", "gone", channels=("email",), expires_at=utcnow() + timedelta(seconds=1)),
    )
    time.sleep(1.2)

    report = deliver_all(db, org.id)

    (delivery,) = deliveries(db, org.id)
    assert (report.expired, report.sent, delivery.status) == (1, 0, "expired")
    assert providers.mailbox.messages == []


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (Content("", "m"), "title"),
        (Content("t", "m", "urgent"), "unknown type"),
        (Content("t", "m", channels=("fax",)), "unknown channel"),
        (Content("t", "m", expires_at=datetime(2000, 1, 1, tzinfo=UTC)), "already expired"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message(
    db: Database, org: Org, providers: Providers, content: Content, error: str
) -> None:
    with pytest.raises(PlugsError, match=error):
        send(db, org.id, Audience(role="admins"), content)


def test_a_failing_integration_notifies_its_admins_once_per_incident(
    db: Database, org: Org, providers: Providers
) -> None:
    with db.tenant(org.id) as session:
        integration = Integration(provider="hubspot", integration_type="crm")
        session.add(integration)
        session.flush()
        runs = [
            IntegrationLog(
                integration_id=integration.id,
                operation="sync",
                status=status,
                started_at=utcnow() + timedelta(seconds=i),
                message=f"run {i}",
            )
            for i, status in enumerate(["failed", "failed", "success", "partial"])
        ]
        session.add_all(runs)
        session.flush()
        requests = [run_ended(session, run) for run in runs]

    for request in filter(None, requests):
        run_request(db, org.id, request)

    assert [r is not None for r in requests] == [True, False, False, True]
    with db.tenant(org.id) as session:
        titles = session.scalars(
            select(Notification.title).where(
                Notification.user_id == org.admin, Notification.channel == "in_app"
            )
        ).all()
    assert sorted(titles) == ["Sync failed", "Sync partial"]


def test_a_real_worker_delivers_a_fan_out(db: Database, org: Org, sync_worker: object) -> None:
    send(
        db,
        org.id,
        Audience(role="members"),
        Content("Worker", "through the queue", channels=("in_app",)),
    )

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        statuses = {d.status for d in deliveries(db, org.id)}
        if statuses == {"delivered"}:
            break
        time.sleep(0.2)

    assert statuses == {"delivered"}
    with db.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(NotificationDelivery)) == 3


def test_a_worker_killed_mid_batch_loses_nothing(
    db: Database, org: Org, providers: Providers, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while its relay holds two of three mails: once the claim's lease has run out
    the batch is sent again, all of it (the chunk was not recorded, so the one mail that went
    through before the kill is sent twice: the window is one chunk, RECORD_EVERY)."""
    monkeypatch.setenv("PLUGS_STALLED_AFTER", "2")  # the lease of a claim, in seconds
    services.reload_settings()
    db = get_database()  # the fixture's was disposed with the settings it was made for
    send(db, org.id, Audience(role="members"), Content("Kill", "mid-batch", channels=("email",)))
    with db.tenant(org.id) as session:
        batch = session.scalar(select(NotificationDelivery.batch_id))
    mailbox = providers.mailbox

    async def hold_all_but_the_first(server: object, session: object, envelope: Any) -> str:
        if mailbox.messages:
            await asyncio.sleep(3600)
        mailbox.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    mailbox.handle_DATA = hold_all_but_the_first  # type: ignore[method-assign]
    code = f"from notifications.delivery import deliver_batch; from models.session import get_database; import uuid; deliver_batch(get_database(), uuid.UUID('{org.id}'), uuid.UUID('{batch}'))"
    worker = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not mailbox.messages and worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # the other two are held by the relay
    finally:
        worker.kill()
        worker.wait()
    del mailbox.handle_DATA

    deadline = time.monotonic() + 30
    while not (again := deliver_all(db, org.id)).claimed and time.monotonic() < deadline:
        time.sleep(0.5)  # claimed by the killed worker until its lease runs out

    assert (again.claimed, again.sent) == (3, 3)
    assert {(d.status, d.attempts) for d in deliveries(db, org.id)} == {("sent", 2)}
    assert len(mailbox.messages) == 4 and len({m["To"] for m in mailbox.messages}) == 3
