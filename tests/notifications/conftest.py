"""Real providers for the notification tests: an SMTP server (aiosmtpd) in this process,
the SMS and push simulators over loopback HTTP, and the settings that point at them."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from models.accounts import create_organization, create_user
from models.notification_delivery import NotificationDelivery
from models.session import Database
from notifications.delivery import DeliveryReport, deliver_batch
from simulators.notifications import FcmSimulator, TwilioSimulator
from simulators.server import serve
from tests import services


class Mailbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Providers:
    mailbox: Mailbox
    smtp_port: int
    sms: TwilioSimulator
    sms_backup: TwilioSimulator
    push: FcmSimulator


@pytest.fixture
def providers(platform_env: dict[str, str], request: pytest.FixtureRequest) -> Iterator[Providers]:
    """SMTP, two SMS providers (primary and fallback) and a push provider, and settings
    naming them; retries are due at once so a test can run them straight away.

    A test that runs the deliveries itself publishes its tasks to an in-memory broker that
    no worker consumes: the session's shared worker (started by other tests, with other
    settings) must not deliver them first."""
    mailbox, port = Mailbox(), _free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    sms, backup, push = (
        TwilioSimulator(),
        TwilioSimulator(account_sid="AC" + "1" * 32),
        FcmSimulator(),
    )
    with serve(sms) as sms_server, serve(backup) as backup_server, serve(push) as push_server:
        env = {
            "PLUGS_SMTP_SERVERS": json.dumps(
                [{"host": "127.0.0.1", "port": port, "starttls": False}]
            ),
            "PLUGS_SMS_PROVIDERS": json.dumps(
                [
                    {
                        "name": "primary",
                        "base_url": sms_server.base_url,
                        "account_sid": sms.account_sid,
                        "auth_token": sms.auth_token,
                        "from_number": "+15550000001",
                    },
                    {
                        "name": "backup",
                        "base_url": backup_server.base_url,
                        "account_sid": backup.account_sid,
                        "auth_token": backup.auth_token,
                        "from_number": "+15550000002",
                    },
                ]
            ),
            "PLUGS_PUSH_PROVIDERS": json.dumps(
                [
                    {
                        "base_url": push_server.base_url,
                        "project_id": push.project_id,
                        "access_token": push.access_token,
                    }
                ]
            ),
            "PLUGS_FEED_SECRET": "feed-secret-for-tests-only",
            "PLUGS_NOTIFICATION_RETRY_SECONDS": "0",
        }
        if "sync_worker" not in request.fixturenames:
            env["PLUGS_BROKER_URL"] = "memory://"
        saved = {k: os.environ.get(k) for k in env}
        os.environ.update(env)
        services.reload_settings()
        try:
            yield Providers(mailbox, port, sms, backup, push)
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            services.reload_settings()
            controller.stop()


@dataclass
class Org:
    id: uuid.UUID
    admin: uuid.UUID
    users: list[uuid.UUID]


@pytest.fixture
def db(providers: Providers) -> Database:
    """The process-wide database once the providers' settings are in force."""
    from models.session import get_database

    return get_database()


@pytest.fixture
def org(db: Database) -> Org:
    """An organization with an admin (who has a phone) and two members."""
    org = create_organization(db, f"Notify {uuid.uuid4().hex[:6]}")
    admin = create_user(
        db,
        org.id,
        f"admin-{uuid.uuid4().hex[:6]}@example.test",
        first_name="Ada",
        is_admin=True,
        phone="+15551230001",
    )
    users = [
        create_user(
            db,
            org.id,
            f"user{i}-{uuid.uuid4().hex[:6]}@example.test",
            first_name=f"U{i}",
            phone=f"+1555123000{i + 2}",
        ).id
        for i in range(2)
    ]
    return Org(org.id, admin.id, users)


def deliver_all(db: Database, org_id: uuid.UUID) -> DeliveryReport:
    """Run every batch of the organization once, as the delivery task would."""
    total = DeliveryReport()
    with db.tenant(org_id) as session:
        batches = sorted(set(session.scalars(select(NotificationDelivery.batch_id))))
    for batch in batches:
        report = deliver_batch(db, org_id, batch)
        for name in ("claimed", "sent", "failed", "retrying", "expired"):
            setattr(total, name, getattr(total, name) + getattr(report, name))
    return total


def deliveries(db: Database, org_id: uuid.UUID) -> list[NotificationDelivery]:
    with db.tenant(org_id) as session:
        return list(
            session.scalars(select(NotificationDelivery).order_by(NotificationDelivery.channel))
        )
