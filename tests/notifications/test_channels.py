"""Delivery through each channel for real: mail read back from an SMTP server, SMS and
push requests received by the simulators over HTTP."""

from __future__ import annotations

from models.notification_delivery import PushDevice
from models.organizations import User
from models.session import Database
from notifications import Audience, Content, send
from simulators.base import UNTIL_CLEARED
from tests.notifications.conftest import Org, Providers, deliver_all, deliveries


def _register_device(db: Database, org: Org, token: str) -> None:
    with db.tenant(org.id) as session:
        session.add(PushDevice(user_id=org.admin, token=token, platform="android"))


def test_one_call_delivers_on_every_channel(db: Database, org: Org, providers: Providers) -> None:
    _register_device(db, org, "device-token-admin-1")
    content = Content(
        "Sync failed",
        "HubSpot <contacts> failed: 3 records",
        channels=("in_app", "email", "sms", "push"),
    )

    result = send(db, org.id, Audience(user_ids=(org.admin,)), content)
    report = deliver_all(db, org.id)

    assert (result.created, report.sent, report.failed) == (4, 4, 0)
    statuses = {d.channel: (d.status, d.attempts) for d in deliveries(db, org.id)}
    assert statuses == {
        "in_app": ("delivered", 1),
        "email": ("sent", 1),
        "sms": ("sent", 1),
        "push": ("sent", 1),
    }
    (mail,) = providers.mailbox.messages
    assert mail["Subject"] == "Sync failed"
    assert mail.get_body(("plain",)).get_content().startswith("Hello Ada,")
    assert "HubSpot &lt;contacts&gt; failed" in mail.get_body(("html",)).get_content()
    (sms,) = providers.sms.messages
    assert sms["To"] == "+15551230001" and sms["Body"].startswith("Sync failed: HubSpot")
    (push,) = providers.push.messages
    assert push["token"] == "device-token-admin-1"
    assert push["notification"]["title"] == "Sync failed"


def test_a_redelivered_task_sends_nothing_twice(
    db: Database, org: Org, providers: Providers
) -> None:
    send(db, org.id, Audience(role="members"), Content("Hello", "Welcome", channels=("email",)))

    first, again = deliver_all(db, org.id), deliver_all(db, org.id)

    assert (first.sent, again.claimed, again.sent) == (3, 0, 0)
    assert len(providers.mailbox.messages) == 3


def test_a_provider_that_is_down_hands_over_to_the_fallback(
    db: Database, org: Org, providers: Providers
) -> None:
    providers.sms.fail_next(UNTIL_CLEARED, status=503)
    send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("Down", "Primary is down", channels=("sms",)),
    )

    deliver_all(db, org.id)

    (delivery,) = deliveries(db, org.id)
    assert (delivery.status, delivery.provider, delivery.attempts) == ("sent", "backup", 1)
    assert providers.sms.messages == [] and len(providers.sms_backup.messages) == 1


def test_a_failed_send_is_retried_then_succeeds(
    db: Database, org: Org, providers: Providers
) -> None:
    for sms in (providers.sms, providers.sms_backup):
        sms.fail_next(UNTIL_CLEARED, status=503)
    send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("Retry", "Both down", channels=("sms",)),
    )

    first = deliver_all(db, org.id)
    (waiting,) = deliveries(db, org.id)
    providers.sms.clear_faults()
    providers.sms_backup.clear_faults()
    deliver_all(db, org.id)

    assert first.retrying == 1
    assert waiting.status == "queued" and "every provider failed" in (waiting.reason or "")
    (delivery,) = deliveries(db, org.id)
    assert (delivery.status, delivery.attempts, delivery.provider) == ("sent", 2, "primary")


def test_a_send_that_keeps_failing_gives_up_with_the_reason(
    db: Database, org: Org, providers: Providers
) -> None:
    for sms in (providers.sms, providers.sms_backup):
        sms.fail_next(UNTIL_CLEARED, status=503)
    send(
        db,
        org.id,
        Audience(user_ids=(org.admin,)),
        Content("Fail", "Always down", channels=("sms",)),
    )

    for _ in range(5):  # PLUGS_NOTIFICATION_MAX_ATTEMPTS
        deliver_all(db, org.id)

    (delivery,) = deliveries(db, org.id)
    assert (delivery.status, delivery.attempts) == ("failed", 5)
    assert (delivery.reason or "").startswith("gave up after 5 attempts")


def test_an_unregistered_push_token_is_disabled_not_retried(
    db: Database, org: Org, providers: Providers
) -> None:
    _register_device(db, org, "device-token-uninstalled")
    providers.push.unregistered.add("device-token-uninstalled")
    send(db, org.id, Audience(user_ids=(org.admin,)), Content("Push", "Gone", channels=("push",)))

    report = deliver_all(db, org.id)

    (delivery,) = deliveries(db, org.id)
    assert (report.failed, delivery.status, delivery.attempts) == (1, "failed", 1)
    assert "UNREGISTERED" in (delivery.reason or "")
    with db.tenant(org.id) as session:
        (device,) = session.query(PushDevice).all()
        assert (device.is_active, device.disabled_reason) == (
            False,
            "provider reported UNREGISTERED",
        )
    second = send(
        db, org.id, Audience(user_ids=(org.admin,)), Content("Push", "Again", channels=("push",))
    )
    assert (second.created, second.unreachable) == (0, 1)


def test_a_name_or_title_cannot_add_a_header_to_an_email(
    db: Database, org: Org, providers: Providers
) -> None:
    with db.tenant(org.id) as session:
        session.get(User, org.admin).first_name = "Zoë\r\nBcc: eve@example.test"
    title = "Réunion à 10h\nX-Forged: yes"

    send(db, org.id, Audience(user_ids=(org.admin,)), Content(title, "M", channels=("email",)))
    report = deliver_all(db, org.id)

    (mail,) = providers.mailbox.messages
    assert report.sent == 1 and mail["Bcc"] is None and mail["X-Forged"] is None
    assert mail["Subject"] == "Réunion à 10h X-Forged: yes"
    assert mail["To"].addresses[0].display_name == "Zoë Bcc: eve@example.test"
    assert mail.get_body(("plain",)).get_content().startswith("Hello Zoë")
