"""Fan-out: preferences, quiet hours, idempotency keys, expiry, producers, a real worker."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from core.errors import PlugsError
from models import Integration, IntegrationLog, Notification
from models.base import utcnow
from models.notification_delivery import NotificationDelivery
from models.organizations import Organization
from models.session import Database
from notifications import Audience, Content, send
from notifications.fanout import run_request
from notifications.preferences import set_preference, set_profile
from notifications.producers import run_ended
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
