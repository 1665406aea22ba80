"""At least 1,000 generated bad requests against the receiver: wrong, missing or truncated
signatures, another integration's secret, timestamps just outside the tolerance,
re-serialised JSON, oversized, non-UTF-8 and deeply nested bodies.  None is accepted, none
is a 5xx, and the receiver's memory stays bounded."""

from __future__ import annotations

import base64
import json
import resource
import time
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from models import WebhookDelivery
from models.session import Database
from simulators.hubspot.webhooks import sign_v3
from tests.webhooks.conftest import BASE, Hooked

REFUSALS = {400, 401, 404, 405, 413}
SEEN: dict[int, int] = {}


def _event(contact_id: int) -> dict[str, Any]:
    return {
        "eventId": contact_id,
        "subscriptionId": 2001,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.creation",
        "attemptNumber": 0,
        "objectId": contact_id,
    }


def _signed(hooked: Hooked, body: bytes, *, secret: str | None = None, ts: int | None = None):
    stamp = int(time.time() * 1000) if ts is None else ts
    signature = sign_v3(secret or hooked.secret, "POST", BASE + hooked.path, body, stamp)
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": str(stamp)}


MUTATIONS = st.sampled_from(
    [
        "wrong_signature",
        "missing_signature",
        "truncated_signature",
        "other_secret",
        "stale",
        "future",
        "reserialised",
        "non_utf8",
        "deep_json",
        "not_json",
        "tampered_body",
        "not_a_list",
        "missing_event_id",
        "bad_timestamp_header",
        "wrong_method",
        "unknown_integration",
    ]
)


def _bad_request(hooked: Hooked, mutation: str, data: st.DataObject) -> dict[str, Any]:
    contact_id = data.draw(st.integers(1, 10**9))
    body = json.dumps([_event(contact_id)], separators=(",", ":")).encode()
    headers = _signed(hooked, body)
    path, method = hooked.path, "POST"
    if mutation == "wrong_signature":
        raw = data.draw(st.binary(min_size=32, max_size=32))
        headers["X-HubSpot-Signature-v3"] = base64.b64encode(raw).decode()
    elif mutation == "missing_signature":
        del headers["X-HubSpot-Signature-v3"]
    elif mutation == "truncated_signature":
        cut = data.draw(st.integers(0, 43))
        headers["X-HubSpot-Signature-v3"] = headers["X-HubSpot-Signature-v3"][:cut]
    elif mutation == "other_secret":
        headers = _signed(hooked, body, secret=data.draw(st.text(min_size=1, max_size=40)))
    elif mutation in ("stale", "future"):
        # just outside the 5 minutes, allowing for this request's own latency
        outside = 300_000 + 1_000 + data.draw(st.integers(0, 10**7))
        now = int(time.time() * 1000)
        headers = _signed(hooked, body, ts=now - outside if mutation == "stale" else now + outside)
    elif mutation == "reserialised":
        body = json.dumps(json.loads(body), indent=data.draw(st.integers(1, 4))).encode()
    elif mutation == "non_utf8":
        body = b"[" + data.draw(st.binary(min_size=1, max_size=64)) + b"\xff\xfe]"
        headers = _signed(hooked, body)
    elif mutation == "deep_json":
        depth = data.draw(st.integers(2_000, 200_000))
        body = b"[" * depth + b"]" * depth
        headers = _signed(hooked, body)
    elif mutation == "not_json":
        body = data.draw(st.binary(max_size=256))
        headers = _signed(hooked, body)
    elif mutation == "tampered_body":
        body = body.replace(b'"eventId":', b'"eventId":9')
    elif mutation == "not_a_list":
        body = json.dumps(data.draw(st.dictionaries(st.text(max_size=5), st.integers()))).encode()
        headers = _signed(hooked, body)
    elif mutation == "missing_event_id":
        event = _event(contact_id)
        del event["eventId"]
        body = json.dumps([event]).encode()
        headers = _signed(hooked, body)
    elif mutation == "bad_timestamp_header":
        printable = st.characters(min_codepoint=33, max_codepoint=126)
        headers["X-HubSpot-Request-Timestamp"] = data.draw(st.text(printable, max_size=20))
    elif mutation == "wrong_method":
        method = data.draw(st.sampled_from(["GET", "PUT", "DELETE", "PATCH"]))
    elif mutation == "unknown_integration":
        path = f"/webhooks/hubspot/{data.draw(st.uuids())}"
    return {"method": method, "url": path, "content": body, "headers": headers}


def test_a_thousand_bad_requests_are_refused_without_a_5xx(
    hooked: Hooked, app_db: Database
) -> None:
    warmed: list[int] = []  # the peak RSS once 100 requests were answered

    @settings(
        max_examples=1100,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )
    @given(mutation=MUTATIONS, data=st.data())
    def send(mutation: str, data: st.DataObject) -> None:
        request = _bad_request(hooked, mutation, data)
        response = hooked.client.request(**request)
        SEEN[response.status_code] = SEEN.get(response.status_code, 0) + 1
        if sum(SEEN.values()) == 100:
            warmed.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        assert response.status_code in REFUSALS, (mutation, response.status_code, response.text)

    send()
    oversized = hooked.client.post(hooked.path, content=b"[" + b"0," * (1 << 20) + b"0]")
    SEEN[oversized.status_code] = SEEN.get(oversized.status_code, 0) + 1

    assert oversized.status_code == 413
    assert sum(SEEN.values()) >= 1000
    with app_db.tenant(hooked.vendor.org_id) as session:
        assert session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    # bounded: the next 1,000 requests (the deep and oversized ones included) do not make
    # the process grow with their number
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - warmed[0]) / 1024
    assert grown_mib < 64, f"the receiver's process grew by {grown_mib:.0f} MiB"
