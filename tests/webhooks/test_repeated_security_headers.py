"""A delivery that carries a security header (its signature, timestamp, Authorization) or
Mailchimp's URL secret more than once is refused by the receiver before it is verified,
whichever copy is the good one, for each vendor; nothing of it is stored.  The same delivery
with each header once is accepted, so the refusals are the repetition's doing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from connectors.teams import subscriptions
from models import Integration, WebhookDelivery
from models.session import Database
from models.webhooks import WebhookSubscription
from tests.connectors.harness import Vendor, hubspot, mailchimp, teams, zoom
from workers.http import webhooks
from workers.http.app import create_app

BASE = "http://testserver"
HUBSPOT_SECRET = "5b0c7a2e-6f1d-4c3b-9e8a-7d6c5b4a3f21"
MAILCHIMP_SECRET = "url-secret-for-repeats"
Headers = list[tuple[str, str]]


@dataclass
class Signed:
    """A delivery signed as its vendor signs it, the receiver it goes to, and copies of it
    that repeat a security header (or parameter)."""

    vendor: Vendor
    client: TestClient
    path: str
    headers: Headers
    body: bytes
    accepted: int = 200
    repeats: dict[str, tuple[str, Headers, bytes]] = field(default_factory=dict)

    def repeat(self, name: str, *copies: str) -> None:
        """A copy whose header ``name`` comes once per value of ``copies``, in that order."""
        rest = [(k, v) for k, v in self.headers if k.lower() != name.lower()]
        given = dict(self.headers)
        named = ["good" if copy == given.get(name) else repr(copy) for copy in copies]
        label = f"{name}: {', '.join(named)}"
        assert label not in self.repeats
        self.repeats[label] = (self.path, [*[(name, c) for c in copies], *rest], self.body)

    def good(self, name: str) -> str:
        return next(v for k, v in self.headers if k.lower() == name.lower())

    def deliveries(self) -> list[WebhookDelivery]:
        with self.vendor.db.tenant(self.vendor.org_id) as session:
            rows = list(session.scalars(select(WebhookDelivery)))
            session.expunge_all()
        return rows

    def wait_processed(self, timeout: float = 60) -> list[WebhookDelivery]:
        """The deliveries once the worker is done with them (so none outlives the vendor)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.deliveries()
            if rows and all(row.status != "received" for row in rows):
                return rows
            assert time.monotonic() < deadline, f"deliveries not processed: {rows}"
            time.sleep(0.1)


def _signature_repeats(signed: Signed, signature: str, timestamp: str | None) -> None:
    good = signed.good(signature)
    bad = good[:-6] + ("000000" if not good.endswith("000000") else "111111")
    signed.repeat(signature, bad, good)
    signed.repeat(signature, good, good)
    signed.repeat(signature, good, bad)
    if timestamp is not None:
        signed.repeat(timestamp, signed.good(timestamp), signed.good(timestamp))
    signed.repeat("Authorization", "Bearer a", "Bearer b")


@contextmanager
def _hubspot(db: Database) -> Iterator[Signed]:
    credentials = {"private_app_token": "pat-na1-simulator", "client_secret": HUBSPOT_SECRET}
    with hubspot(db, credentials=credentials) as vendor:
        [contact] = vendor.sim.add_contacts(1)
        path = f"/webhooks/hubspot/{vendor.integration_id}"
        events = [vendor.sim.contact_event("creation", contact)]
        headers, body = vendor.sim.webhook_delivery(events, BASE + path, HUBSPOT_SECRET)
        with TestClient(create_app(), base_url=BASE) as client:
            signed = Signed(vendor, client, path, list(headers.items()), body)
            _signature_repeats(signed, "X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp")
            signed.repeat("X-HubSpot-Signature", signed.good("X-HubSpot-Signature"), "0" * 64)
            yield signed


@contextmanager
def _zoom(db: Database) -> Iterator[Signed]:
    with zoom(db) as vendor:
        meeting = vendor.sim.add_meeting("Repeats")
        participant = {"user_id": "1", "user_name": "Ada", "email": "ada@example.com"}
        obj = {"id": str(meeting.id), "uuid": meeting.uuid, "type": 2, "participant": participant}
        headers, body = vendor.sim.deliver("meeting.participant_joined", obj)
        path = f"/webhooks/zoom/{vendor.integration_id}"
        with TestClient(create_app(), base_url=BASE) as client:
            signed = Signed(vendor, client, path, list(headers.items()), body)
            _signature_repeats(signed, "x-zm-signature", "x-zm-request-timestamp")
            yield signed


@contextmanager
def _mailchimp(db: Database) -> Iterator[Signed]:
    credentials = {"api_key": "0123456789abcdef0123456789abcdef-us21"}
    with mailchimp(db, credentials={**credentials, "webhook_secret": MAILCHIMP_SECRET}) as vendor:
        member = vendor.sim.add_member("kim@example.test", merge_fields={"FNAME": "Kim"})
        headers, body = vendor.sim.webhook_delivery("subscribe", member)
        path = f"/webhooks/mailchimp/{vendor.integration_id}"
        with TestClient(create_app(), base_url=BASE) as client:
            query = f"?secret={MAILCHIMP_SECRET}"
            signed = Signed(vendor, client, path + query, list(headers.items()), body)
            for first, second in [("wrong", MAILCHIMP_SECRET), (MAILCHIMP_SECRET,) * 2]:
                signed.repeats[f"?secret={first}&secret={second}"] = (
                    f"{path}?secret={first}&secret={second}",
                    signed.headers,
                    body,
                )
            signed.repeat("Authorization", "Basic a", "Basic b")
            yield signed


@contextmanager
def _teams(db: Database) -> Iterator[Signed]:
    url = "https://plugs.test/webhooks/teams/x"
    with teams(db, notification_url=url) as vendor:
        subscriptions.renew_expiring(db)
        with db.tenant(vendor.org_id) as session:
            subscription = session.scalars(select(WebhookSubscription)).one().external_id
        body = vendor.sim.notification(subscription, "deleted", "AAMkAGI2-not-ours")
        path = f"/webhooks/teams/{vendor.integration_id}"
        with TestClient(create_app(), base_url=BASE) as client:
            headers = [("content-type", "application/json")]
            signed = Signed(vendor, client, path, headers, body, accepted=202)
            signed.repeat("Authorization", "Bearer a", "Bearer b")
            # Graph's secret rides in the body: a notification repeating its clientState.
            state = json.loads(body)["value"][0]["clientState"]
            item = body.decode()[len('{"value": [{') : -len("}]}")]
            for first, second in [("wrong", state), (state, state)]:
                twice = f'{{"value": [{{"clientState": "{first}", {item}}}]}}'
                # The copies are first and second; a JSON parser alone would keep the last.
                assert twice.count('"clientState"') == 2
                assert json.loads(twice)["value"][0]["clientState"] == second
                named = ["good" if copy == state else repr(copy) for copy in (first, second)]
                signed.repeats[f"clientState: {', '.join(named)}"] = (
                    path,
                    headers,
                    twice.encode(),
                )
            yield signed
        with db.tenant(vendor.org_id) as session:  # its simulator goes: stop following it
            session.get(Integration, vendor.integration_id).is_active = False


VENDORS: dict[str, Callable[[Database], AbstractContextManager[Signed]]] = {
    "hubspot": _hubspot,
    "zoom": _zoom,
    "mailchimp": _mailchimp,
    "teams": _teams,
}


@pytest.mark.parametrize("provider", sorted(VENDORS))
def test_a_repeated_security_header_is_refused_and_nothing_is_stored(
    provider: str, app_db: Database, sync_worker: Any
) -> None:
    webhooks.forget_cached()
    with VENDORS[provider](app_db) as signed:
        refused = {
            label: signed.client.post(path, content=body, headers=headers)
            for label, (path, headers, body) in signed.repeats.items()
        }
        stored_after_refusals = signed.deliveries()
        once = signed.client.post(signed.path, content=signed.body, headers=signed.headers)
        stored = signed.wait_processed()
    webhooks.forget_cached()

    answers = {label: (r.status_code, r.text) for label, r in refused.items()}
    assert len(answers) >= 3
    for label, (status, reason) in answers.items():
        assert status in (400, 401), (label, status, reason)
        if not label.startswith("clientState"):
            assert status == 400 and "repeated" in reason, (label, reason)
    assert stored_after_refusals == []
    assert once.status_code == signed.accepted
    assert len(stored) == 1
