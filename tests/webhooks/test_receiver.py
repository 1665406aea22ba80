"""The receiver (in-process) and the inbox (processed by a real worker): what each kind of
request is answered with, what is stored, and what the events change."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

from sqlalchemy import select

from connectors import loading
from connectors.base import WebhookRequest
from models import Contact, Integration, IntegrationLog, WebhookDelivery
from models.session import Database
from runs import inbox
from tests.webhooks.conftest import Hooked


def _deliveries(db: Database, hooked: Hooked) -> list[WebhookDelivery]:
    with db.tenant(hooked.vendor.org_id) as session:
        return list(session.scalars(select(WebhookDelivery)))


def test_a_signed_delivery_is_stored_once_and_updates_the_contact(
    hooked: Hooked, app_db: Database
) -> None:
    [contact_id] = hooked.sim.add_contacts(1)
    hooked.vendor.sync()
    hooked.sim.update_contact(contact_id, firstname="Renamed", email="renamed@example.test")
    event = hooked.sim.contact_event("propertyChange", contact_id)

    first = hooked.post([event])
    retried = hooked.post([event | {"attemptNumber": 1}])  # HubSpot's retry of the same event

    assert (first.status_code, retried.status_code) == (200, 200)
    [stored] = hooked.wait_processed()
    assert stored.status == "processed" and stored.event_count == 1 and stored.attempts == 1
    assert "authorization" not in stored.headers
    again = inbox.process(app_db, hooked.vendor.org_id, stored.id)

    assert again.state == "already"
    with app_db.tenant(hooked.vendor.org_id) as session:
        contact = session.scalars(select(Contact)).one()
        assert (contact.first_name, contact.email) == ("Renamed", "renamed@example.test")
        run = session.get(IntegrationLog, stored.run_id)
        assert (run.operation, run.status, run.records_processed, run.records_failed) == (
            "webhook",
            "success",
            1,
            0,
        )


def test_a_deletion_soft_deletes_and_a_second_application_changes_nothing(
    hooked: Hooked, app_db: Database
) -> None:
    [contact_id] = hooked.sim.add_contacts(1)
    hooked.vendor.sync()
    assert hooked.post([hooked.sim.contact_event("deletion", contact_id)]).status_code == 200
    [first] = hooked.wait_processed()
    audit_after_first = hooked.vendor.audit_rows()

    assert inbox.replay(app_db, hooked.vendor.org_id, hooked.vendor.integration_id) == 1
    [replayed] = hooked.wait_processed()

    assert replayed.run_id != first.run_id
    assert hooked.vendor.count(Contact) == 0
    assert hooked.vendor.count(Contact, include_deleted=True) == 1
    assert hooked.vendor.audit_rows() == audit_after_first


def test_per_event_failures_are_counted_with_their_reasons(
    hooked: Hooked, app_db: Database
) -> None:
    good, bad = hooked.sim.add_contacts(2)
    hooked.sim.update_contact(bad, email="broken@@example.test")
    events = [hooked.sim.contact_event("creation", c) for c in (good, bad)]
    assert hooked.post(events).status_code == 200
    [stored] = hooked.wait_processed()

    with app_db.tenant(hooked.vendor.org_id) as session:
        run = session.get(IntegrationLog, stored.run_id)
        assert (run.status, run.records_processed, run.records_failed) == ("partial", 2, 1)
        [failure] = run.error_details["failures"]
        assert failure["record_id"] == str(bad) and "invalid email" in failure["reason"]


def test_unknown_removed_or_mistyped_integrations_are_404(hooked: Hooked, app_db: Database) -> None:
    headers, body = hooked.signed([hooked.sim.contact_event("creation", 1)])
    other = hooked.client.post(f"/webhooks/hubspot/{uuid.uuid4()}", content=body, headers=headers)
    garbage = hooked.client.post("/webhooks/hubspot/not-an-id", content=body, headers=headers)
    wrong_provider = hooked.client.post(
        f"/webhooks/zoom/{hooked.vendor.integration_id}", content=body, headers=headers
    )
    with app_db.tenant(hooked.vendor.org_id) as session:  # removed (a paused one stores)
        session.get_one(Integration, hooked.vendor.integration_id).soft_delete()
    from workers.http import webhooks

    webhooks.forget_cached()
    removed = hooked.client.post(hooked.path, content=body, headers=headers)

    assert [r.status_code for r in (other, garbage, wrong_provider, removed)] == [404] * 4
    assert len({r.text for r in (other, garbage, wrong_provider, removed)}) == 1
    assert _deliveries(app_db, hooked) == []


def test_bad_signatures_stale_timestamps_and_malformed_bodies_are_refused(
    hooked: Hooked, app_db: Database
) -> None:
    event = hooked.sim.contact_event("creation", 1)
    headers, body = hooked.signed([event])
    tampered = hooked.client.post(hooked.path, content=body.replace(b"1", b"2"), headers=headers)
    reserialised = hooked.client.post(
        hooked.path, content=json.dumps(json.loads(body), indent=1).encode(), headers=headers
    )
    stale_headers, stale_body = hooked.signed([event], timestamp_ms=1_000)
    stale = hooked.client.post(hooked.path, content=stale_body, headers=stale_headers)
    unsigned = hooked.client.post(hooked.path, content=body)
    not_json_headers, not_json = hooked.sim.webhook_delivery(
        [], "http://testserver" + hooked.path, hooked.secret
    )
    garbage = b"{not json"
    garbage_headers = dict(not_json_headers)
    from simulators.hubspot.webhooks import sign_v3

    garbage_headers["X-HubSpot-Signature-v3"] = sign_v3(
        hooked.secret,
        "POST",
        "http://testserver" + hooked.path,
        garbage,
        int(garbage_headers["X-HubSpot-Request-Timestamp"]),
    )
    malformed = hooked.client.post(hooked.path, content=garbage, headers=garbage_headers)
    oversized = hooked.client.post(hooked.path, content=b"[" + b" " * (2 << 20) + b"]")

    assert [r.status_code for r in (tampered, reserialised, stale, unsigned)] == [401] * 4
    assert malformed.status_code == 400 and "malformed" in malformed.json()["error"]
    assert oversized.status_code == 413
    assert _deliveries(app_db, hooked) == []


def test_get_on_a_hubspot_endpoint_is_not_a_delivery(hooked: Hooked) -> None:
    assert hooked.client.get(hooked.path).status_code == 405


def test_the_sweeper_enqueues_only_old_unprocessed_deliveries(
    hooked: Hooked, app_db: Database
) -> None:
    [contact_id] = hooked.sim.add_contacts(1)
    with app_db.tenant(hooked.vendor.org_id) as session:
        connector = loading.open_connector(session.get(Integration, hooked.vendor.integration_id))
    stored = inbox.store(  # as if the enqueue was lost
        app_db,
        connector,
        WebhookRequest("POST", "http://testserver/x", {}, _body(hooked, contact_id), 0.0),
        "lost-delivery",
        1,
    )
    assert inbox.sweep(app_db, after=timedelta(days=36500)) == 0

    assert inbox.sweep(app_db, after=timedelta(seconds=-1)) >= 1
    [delivery] = hooked.wait_processed()

    assert delivery.id == stored.delivery_id and delivery.status == "processed"
    assert hooked.vendor.count(Contact) == 1


def _body(hooked: Hooked, contact_id: str) -> bytes:
    return json.dumps([hooked.sim.contact_event("creation", contact_id)]).encode()
