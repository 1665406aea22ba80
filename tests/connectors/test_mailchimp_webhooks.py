"""Mailchimp webhooks: the URL secret, the validation GET, parsing form deliveries
(docs/vendors/mailchimp.md#webhooks), stable delivery ids, and events applied idempotently
to contacts."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from connectors.base import WebhookEvent, WebhookRequest
from connectors.loading import open_connector
from connectors.mailchimp.connector import Mailchimp
from connectors.mailchimp.mapping import subscriber_hash
from core.errors import AuthError, ConfigError, SkippableRecordError
from models import AuditLog, Contact, ExternalId, Integration
from models.session import Database
from tests.connectors.harness import Vendor, mailchimp

SECRET = "s3cr3t-url-token"
URL = f"https://hooks.example.com/mailchimp?secret={SECRET}"
#: The subscribe delivery of docs/vendors/mailchimp.md#webhook-verification, exact bytes.
DOC_BODY = (
    b"type=subscribe&fired_at=2024-05-01+12%3A34%3A56&data%5Bid%5D=0cba00ca3da1b283a57287bcceb17e35"
    b"&data%5Blist_id%5D=a6b5da1054&data%5Bemail%5D=jane.doe%40example.com&data%5Bemail_type%5D=html"
    b"&data%5Bweb_id%5D=123456789&data%5Bip_opt%5D=203.0.113.7&data%5Bip_signup%5D=203.0.113.7"
    b"&data%5Bmerges%5D%5BEMAIL%5D=jane.doe%40example.com&data%5Bmerges%5D%5BFNAME%5D=Jane"
    b"&data%5Bmerges%5D%5BLNAME%5D=Doe"
)
FORM = {"content-type": "application/x-www-form-urlencoded", "user-agent": "MailChimp.com"}


def request(body: bytes = DOC_BODY, *, url: str = URL, method: str = "POST") -> WebhookRequest:
    return WebhookRequest(method, url, dict(FORM), body, time.time())


@pytest.fixture
def vendor(app_db: Database) -> Iterator[Vendor]:
    with mailchimp(app_db) as running:
        yield running


def connector_of(vendor: Vendor) -> Mailchimp:
    with vendor.db.tenant(vendor.org_id) as session:
        integration = session.get(Integration, vendor.integration_id)
        session.expunge(integration)
    conn = open_connector(integration)
    assert isinstance(conn, Mailchimp)
    return conn


def apply(vendor: Vendor, body: bytes) -> None:
    conn = connector_of(vendor)
    [event] = conn.parse_webhook(request(body))
    with vendor.db.tenant(vendor.org_id) as session:
        conn.apply_webhook_event(session, event)


def contacts(vendor: Vendor) -> list[Contact]:
    with vendor.db.tenant(vendor.org_id) as session:
        return list(session.scalars(select(Contact).order_by(Contact.created_at)))


def audit_rows(vendor: Vendor) -> int:
    with vendor.db.tenant(vendor.org_id) as session:
        query = select(func.count()).where(AuditLog.table_name == "contacts")
        return session.scalar(query) or 0


# --- verification and the validation GET -----------------------------------------------


def test_a_delivery_with_the_url_secret_verifies(vendor: Vendor) -> None:
    connector_of(vendor).verify_webhook(request())


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("https://hooks.example.com/mailchimp", "no \\?secret="),
        ("https://hooks.example.com/mailchimp?secret=guess", "does not match"),
        (f"https://hooks.example.com/mailchimp?other={SECRET}", "no \\?secret="),
    ],
)
def test_a_delivery_without_the_right_secret_is_refused(
    vendor: Vendor, url: str, message: str
) -> None:
    with pytest.raises(AuthError, match=message) as caught:
        connector_of(vendor).verify_webhook(request(url=url))
    assert SECRET not in str(caught.value)


def test_without_a_configured_secret_every_delivery_is_refused(app_db: Database) -> None:
    with mailchimp(app_db, credentials={"api_key": "0-us21"}) as vendor:
        with pytest.raises(ConfigError, match="webhook_secret"):
            connector_of(vendor).verify_webhook(request())


def test_the_validation_get_is_answered_200_and_a_delivery_is_not_a_handshake(
    vendor: Vendor,
) -> None:
    conn = connector_of(vendor)
    headers = vendor.sim.validation_request_headers()
    get = WebhookRequest("GET", URL, {k.lower(): v for k, v in headers.items()}, b"", time.time())
    reply = conn.webhook_handshake(get)
    assert reply is not None and reply.status == 200
    assert conn.webhook_handshake(request()) is None
    with pytest.raises(AuthError):
        conn.webhook_handshake(WebhookRequest("GET", URL + "x", {}, b"", time.time()))


# --- parsing ----------------------------------------------------------------------------


def test_the_documented_subscribe_delivery_parses_into_one_event(vendor: Vendor) -> None:
    [event] = connector_of(vendor).parse_webhook(request())
    assert (event.kind, event.object_id) == ("subscribe", "0cba00ca3da1b283a57287bcceb17e35")
    assert event.occurred_at == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC).timestamp()
    data = event.payload["data"]
    assert data["merges"] == {"EMAIL": "jane.doe@example.com", "FNAME": "Jane", "LNAME": "Doe"}
    assert (data["email"], data["web_id"], data["list_id"]) == (
        "jane.doe@example.com",
        "123456789",
        "a6b5da1054",
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "subscribe"}',
        b"fired_at=2024-05-01+12%3A34%3A56&data%5Bemail%5D=a%40b.c",
        b"type=subscribe&fired_at=2024-05-01",
        b"type=subscribe&fired_at=yesterday&data%5Bemail%5D=a%40b.c",
        b"type=subscribe&data%5Bemail%5D=x&data%5Bemail%5D%5Bdeep%5D=y",
        b"\xff\xfe",
    ],
)
def test_a_malformed_delivery_is_a_value_error(vendor: Vendor, body: bytes) -> None:
    with pytest.raises(ValueError):
        connector_of(vendor).parse_webhook(request(body))


def test_the_delivery_id_is_stable_for_a_retry_and_differs_between_deliveries(
    vendor: Vendor,
) -> None:
    conn = connector_of(vendor)
    first = request()
    reordered = request(b"&".join(reversed(DOC_BODY.split(b"&"))))
    later = request(DOC_BODY.replace(b"12%3A34%3A56", b"12%3A35%3A00"))

    def key(req: WebhookRequest) -> str:
        return conn.webhook_delivery_id(req, conn.parse_webhook(req))

    assert key(first) == key(request()) == key(reordered)
    assert key(later) != key(first)
    assert len(key(first)) <= 255


# --- applying ---------------------------------------------------------------------------


def test_a_subscribe_creates_the_contact_once(vendor: Vendor) -> None:
    apply(vendor, DOC_BODY)
    [jane] = contacts(vendor)
    assert (jane.email, jane.first_name, jane.last_name) == ("jane.doe@example.com", "Jane", "Doe")
    assert jane.metadata_["mailchimp"]["status"] == "subscribed"
    assert jane.metadata_["mailchimp"]["web_id"] == 123456789
    audits = audit_rows(vendor)
    apply(vendor, DOC_BODY)  # a redelivery changes nothing
    assert len(contacts(vendor)) == 1 and audit_rows(vendor) == audits


def test_unsubscribe_profile_and_cleaned_update_the_contact_and_keep_the_rest(
    vendor: Vendor,
) -> None:
    sim = vendor.sim
    member = sim.add_member(
        "ann@example.test", merge_fields={"FNAME": "Ann", "LNAME": "Lee", "PHONE": "+1555"}
    )
    apply(vendor, sim.webhook_delivery("subscribe", member)[1])
    sim.update_member(member, merge_fields={"FNAME": "Anna"})
    apply(vendor, sim.webhook_delivery("profile", member)[1])
    [ann] = contacts(vendor)
    assert (ann.first_name, ann.last_name, ann.phone) == ("Anna", "Lee", "+1555")
    sim.update_member(member, status="unsubscribed")
    apply(vendor, sim.webhook_delivery("unsubscribe", member)[1])
    [ann] = contacts(vendor)
    assert ann.metadata_["mailchimp"]["status"] == "unsubscribed"
    assert (ann.first_name, ann.phone) == ("Anna", "+1555")
    apply(vendor, sim.webhook_delivery("cleaned", member)[1])
    [ann] = contacts(vendor)
    assert ann.metadata_["mailchimp"]["status"] == "cleaned"


def test_an_address_change_moves_the_same_contact_to_the_new_member_id(vendor: Vendor) -> None:
    sim = vendor.sim
    member = sim.add_member("old@example.test", merge_fields={"FNAME": "Olga"})
    apply(vendor, sim.webhook_delivery("subscribe", member)[1])
    sim.update_member(member, email_address="new@example.test")
    body = sim.webhook_delivery("upemail", "new@example.test", old_email="old@example.test")[1]
    apply(vendor, body)
    apply(vendor, body)  # idempotent
    [olga] = contacts(vendor)
    assert (olga.email, olga.first_name) == ("new@example.test", "Olga")
    with vendor.db.tenant(vendor.org_id) as session:
        links = session.scalars(select(ExternalId.external_id)).all()
    assert links == [subscriber_hash("new@example.test")]


def test_campaign_events_change_no_contact_and_other_audiences_are_refused(
    vendor: Vendor,
) -> None:
    sim = vendor.sim
    member = sim.add_member("cam@example.test")
    campaign = sim.send_campaign("Spring news", ["cam@example.test"])
    apply(vendor, sim.webhook_delivery("campaign", campaign)[1])
    assert contacts(vendor) == []
    foreign = sim.webhook_delivery("subscribe", member, list_id="ffffffffff")[1]
    with pytest.raises(SkippableRecordError, match="audience ffffffffff"):
        apply(vendor, foreign)
    event = WebhookEvent(str(uuid.uuid4()), "subscribe", None, None, {"data": {}})
    with vendor.db.tenant(vendor.org_id) as session, pytest.raises(SkippableRecordError):
        connector_of(vendor).apply_webhook_event(session, event)
