"""The HubSpot simulator behaves like HubSpot over HTTP (docs/vendors/hubspot.md).

Signature expectations are copied verbatim from the worked examples in
docs/vendors/hubspot.md#worked-examples.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.hubspot.server import HubSpotSimulator, sign_v1, sign_v2, sign_v3
from simulators.server import serve

TOKEN = "pat-na1-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CONTACTS = "/crm/v3/objects/contacts"
SEARCH = f"{CONTACTS}/search"
ROOT = Path(__file__).resolve().parents[2]

# docs/vendors/hubspot.md#worked-examples (exact bytes).
SECRET_D = "yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy"
SECRET_O = "8a2f5c1e-3b7d-4e9a-b6c0-1d2e3f4a5b6c"
BODY_D = (
    '[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,'
    '"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,'
    '"changeSource":"CRM","changeFlag":"NEW","appId":54321}]'
)
BODY_O = (
    '[{"eventId":100,"subscriptionId":2001,"portalId":62515,"appId":54321,'
    '"occurredAt":1700000000000,"subscriptionType":"contact.propertyChange","attemptNumber":0,'
    '"objectId":123,"propertyName":"email","propertyValue":"jane@example.com",'
    '"changeSource":"CRM_UI"}]'
)
URI_DOCS = "https://www.example.com/webhook_uri"
URI_O = "https://hooks.example.com/hubspot/webhook?tenant=acme"
URI_D = "https://hooks.example.com/hubspot%3Awebhook?ids=1%2C2"
TS = 1700000000123


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sim(clock: FakeClock) -> HubSpotSimulator:
    return HubSpotSimulator(private_app_token=TOKEN, clock=clock)


@pytest.fixture
def http(sim: HubSpotSimulator) -> Iterator[httpx.Client]:
    """A real HTTP client talking to the simulator over loopback."""
    with serve(sim) as server, httpx.Client(base_url=server.base_url, headers=AUTH) as client:
        yield client


@pytest.fixture
def local(sim: HubSpotSimulator) -> Iterator[httpx.Client]:
    """The same simulator in-process through httpx.MockTransport."""
    transport = httpx.MockTransport(sim)
    base = "https://api.hubapi.com"
    with httpx.Client(transport=transport, base_url=base, headers=AUTH) as client:
        yield client


def _search_body(after: int = 0, limit: int = 200, **filters: Any) -> dict[str, Any]:
    value = filters.get("value", "0")
    return {
        "filterGroups": [
            {"filters": [{"propertyName": "lastmodifieddate", "operator": "GTE", "value": value}]}
        ],
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
        "properties": ["email"],
        "limit": limit,
        "after": str(after),
    }


# --------------------------------------------------------------------------- listing


def test_listing_pages_through_every_contact_over_real_http_in_id_order(
    sim: HubSpotSimulator, http: httpx.Client
) -> None:
    seeded = sim.add_contacts(250)
    seen: list[str] = []
    params: dict[str, str] = {"limit": "100", "properties": "email,phone"}
    while True:
        page = http.get(CONTACTS, params=params).json()
        seen += [record["id"] for record in page["results"]]
        if "paging" not in page:
            break
        assert page["paging"]["next"]["link"].startswith(str(http.base_url))
        params["after"] = page["paging"]["next"]["after"]
    assert seen == seeded
    first = page["results"][0]
    assert set(first["properties"]) == {
        "email",
        "phone",
        "hs_object_id",
        "createdate",
        "lastmodifieddate",
    }
    assert first["archived"] is False and first["updatedAt"].endswith("Z")


def test_listing_defaults_to_ten_and_rejects_a_limit_above_100(
    sim: HubSpotSimulator, local: httpx.Client
) -> None:
    sim.add_contacts(30)
    assert len(local.get(CONTACTS).json()["results"]) == 10
    response = local.get(CONTACTS, params={"limit": 101})
    assert response.status_code == 400
    assert response.json()["category"] == "VALIDATION_ERROR"


def test_archived_contacts_are_listed_only_with_archived_true(
    sim: HubSpotSimulator, local: httpx.Client
) -> None:
    ids = sim.add_contacts(3)
    sim.archive_contact(ids[1])
    live = [r["id"] for r in local.get(CONTACTS).json()["results"]]
    archived = local.get(CONTACTS, params={"archived": "true"}).json()["results"]
    assert live == [ids[0], ids[2]]
    assert [r["id"] for r in archived] == [ids[1]] and archived[0]["archivedAt"]
    assert local.get(f"{CONTACTS}/{ids[1]}").status_code == 404


def test_a_contact_is_found_by_id_or_by_email_and_a_missing_one_is_object_not_found(
    sim: HubSpotSimulator, local: httpx.Client
) -> None:
    contact_id = sim.add_contacts(1)[0]
    email = f"contact{contact_id}@example.com"
    by_email = local.get(f"{CONTACTS}/{email}", params={"idProperty": "email"}).json()
    assert by_email["id"] == contact_id
    assert local.get(f"{CONTACTS}/{contact_id}").json()["properties"]["email"] == email
    missing = local.get(f"{CONTACTS}/999999")
    assert missing.status_code == 404 and missing.json()["category"] == "OBJECT_NOT_FOUND"


# ---------------------------------------------------------------------------- search


def test_search_on_lastmodifieddate_compares_epoch_ms_and_iso_values_as_instants(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ids = sim.add_contacts(10, modified_from=start, step=timedelta(minutes=1))
    since = start + timedelta(minutes=7)
    for value in (str(int(since.timestamp() * 1000)), "2024-05-01T12:07:00.000Z"):
        page = local.post(SEARCH, json=_search_body(value=value)).json()
        assert [r["id"] for r in page["results"]] == ids[7:]
        assert page["total"] == 3 and "paging" not in page
        clock.advance(1)


def test_search_stops_with_a_400_when_paging_reaches_10000_results(
    sim: HubSpotSimulator, http: httpx.Client, clock: FakeClock
) -> None:
    sim.add_contacts(10_050)
    seen: list[str] = []
    after = 0
    while True:
        response = http.post(SEARCH, json=_search_body(after=after))
        clock.advance(0.25)  # stay under 5 searches per second
        if response.status_code == 400:
            break
        page = response.json()
        assert page["total"] == 10_050
        seen += [record["id"] for record in page["results"]]
        after = int(page["paging"]["next"]["after"])
    assert after == 10_000
    assert response.json()["category"] == "VALIDATION_ERROR"
    assert len(seen) == len(set(seen)) == 10_000


def test_search_sorts_descending_hides_archived_and_rejects_a_limit_above_200(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    ids = sim.add_contacts(4)
    sim.archive_contact(ids[3])
    body = _search_body(limit=10)
    body["sorts"] = [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}]
    page = local.post(SEARCH, json=body).json()
    assert [r["id"] for r in page["results"]] == [ids[2], ids[1], ids[0]]
    assert local.post(SEARCH, json=_search_body(limit=201)).status_code == 400


def test_search_supports_in_between_neq_and_has_property(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    ids = sim.add_contacts(6)
    sim.update_contact(ids[0], phone=None)
    filters = [
        {
            "propertyName": "email",
            "operator": "IN",
            "values": [f"CONTACT{i}@example.com" for i in ids],
        },
        {
            "propertyName": "hs_object_id",
            "operator": "BETWEEN",
            "value": ids[0],
            "highValue": ids[4],
        },
        {"propertyName": "hs_object_id", "operator": "NEQ", "value": ids[2]},
        {"propertyName": "phone", "operator": "HAS_PROPERTY"},
    ]
    page = local.post(SEARCH, json={"filterGroups": [{"filters": filters}]}).json()
    assert [r["id"] for r in page["results"]] == [ids[1], ids[3], ids[4]]


def test_more_than_five_searches_a_second_get_a_secondly_429_without_limit_headers(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    sim.add_contacts(3)
    answers = [local.post(SEARCH, json=_search_body()) for _ in range(6)]
    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert answers[5].json()["policyName"] == "SECONDLY"
    assert answers[5].json()["message"] == "You have reached your secondly limit."
    assert not any(h.startswith("x-hubspot-ratelimit") for r in answers for h in r.headers)
    clock.advance(1)
    assert local.post(SEARCH, json=_search_body()).status_code == 200


# -------------------------------------------------------------------------- batches


def test_batch_upsert_with_an_invalid_email_is_a_207_that_applies_the_valid_inputs(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    existing = sim.add_contacts(1)[0]
    clock.advance(60)
    inputs = [
        {
            "id": f"contact{existing}@example.com",
            "idProperty": "email",
            "properties": {"phone": "+15550100"},
        },
        {"id": "new@example.com", "idProperty": "email", "properties": {"firstname": "New"}},
        {
            "id": "bad@@x",
            "idProperty": "email",
            "properties": {"email": "bad@@x"},
            "objectWriteTraceId": "row-2",
        },
    ]
    response = local.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})
    body = response.json()
    assert response.status_code == 207 and body["status"] == "COMPLETE"
    assert sorted(r["new"] for r in body["results"]) == [False, True]
    assert body["numErrors"] == 1
    error = body["errors"][0]
    assert error["category"] == "VALIDATION_ERROR" and "bad@@x" in error["message"]
    assert error["context"] == {"objectWriteTraceId": ["row-2"]}
    updated = sim.get_contact(existing)
    assert updated is not None and updated["phone"] == "+15550100"
    assert updated["lastmodifieddate"] == "2023-11-14T22:14:20.000Z"  # the clock's now
    assert sim.get_contact("new@example.com") is not None


def test_batch_upsert_of_valid_inputs_is_200_and_more_than_100_inputs_is_400(
    local: httpx.Client,
) -> None:
    inputs = [
        {"id": f"p{i}@example.com", "idProperty": "email", "properties": {}} for i in range(3)
    ]
    ok = local.post(f"{CONTACTS}/batch/upsert", json={"inputs": inputs})
    assert ok.status_code == 200 and ok.json()["status"] == "COMPLETE"
    assert all(r["new"] for r in ok.json()["results"]) and "errors" not in ok.json()
    many = [{"id": f"p{i}@example.com", "idProperty": "email"} for i in range(101)]
    assert local.post(f"{CONTACTS}/batch/upsert", json={"inputs": many}).status_code == 400


def test_batch_read_reports_missing_ids_and_batch_archive_answers_204(
    sim: HubSpotSimulator, local: httpx.Client
) -> None:
    ids = sim.add_contacts(2)
    read = local.post(
        f"{CONTACTS}/batch/read",
        json={"inputs": [{"id": ids[0]}, {"id": "424242"}], "properties": ["phone"]},
    )
    assert read.status_code == 207
    assert read.json()["results"][0]["properties"]["phone"] is not None
    assert read.json()["errors"][0]["context"] == {"ids": ["424242"]}
    archive = local.post(f"{CONTACTS}/batch/archive", json={"inputs": [{"id": ids[1]}]})
    assert archive.status_code == 204 and sim.get_contact(ids[1]) is None


# ---------------------------------------------------------------------- engagements


def test_engagements_list_their_contact_associations_and_search_by_hs_lastmodifieddate(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    contact = sim.add_contacts(1)[0]
    old_note = sim.add_engagement("notes", contact, hs_note_body="first")
    clock.advance(3600)
    new_note = sim.add_engagement("note", contact)
    meeting = sim.add_engagement("meetings", contact, hs_meeting_title="Kickoff")
    page = local.get(
        "/crm/v3/objects/notes",
        params={"associations": "contacts", "properties": "hs_note_body"},
    ).json()
    assert [r["id"] for r in page["results"]] == [old_note, new_note]
    assert page["results"][0]["properties"]["hs_note_body"] == "first"
    links = page["results"][0]["associations"]["contacts"]["results"]
    assert links == [{"id": contact, "type": "note_to_contact"}]
    since = str(int(clock.now * 1000))
    filters = [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": since}]
    found = local.post(
        "/crm/v3/objects/notes/search", json={"filterGroups": [{"filters": filters}]}
    )
    assert [r["id"] for r in found.json()["results"]] == [new_note]
    meetings = local.get("/crm/v3/objects/meetings", params={"properties": "hs_meeting_title"})
    assert meetings.json()["results"][0]["properties"]["hs_meeting_title"] == "Kickoff"
    assert meeting == meetings.json()["results"][0]["id"]


# -------------------------------------------------------------------------- auth


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer pat-na1-wrong"}])
def test_requests_without_or_with_a_wrong_token_get_401(
    local: httpx.Client, headers: dict[str, str]
) -> None:
    local.headers.pop("Authorization")
    response = local.get(CONTACTS, headers=headers)
    assert response.status_code == 401
    body = response.json()
    assert body["status"] == "error" and body["category"] == "INVALID_AUTHENTICATION"
    assert body["correlationId"] and body["message"]


def _refresh(client: httpx.Client, refresh_token: str) -> httpx.Response:
    form = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        "client_id": "sim-client-id",
        "client_secret": "sim-client-secret",
    }
    return client.post("/oauth/v1/token", data=form)


def test_an_oauth_refresh_gives_a_working_token_and_the_refresh_token_stays_valid(
    sim: HubSpotSimulator, http: httpx.Client
) -> None:
    first = _refresh(http, "sim-refresh-token").json()
    assert first["token_type"] == "bearer" and first["expires_in"] == 1800
    assert first["refresh_token"] == "sim-refresh-token"
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert http.get(CONTACTS, headers=bearer).status_code == 200
    second = _refresh(http, first["refresh_token"])
    assert second.status_code == 200 and second.json()["access_token"] != first["access_token"]
    wrong = _refresh(http, "not-a-refresh-token")
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"
    assert wrong.json()["status"] == "BAD_REFRESH_TOKEN"
    assert sim.token_refreshes == 2


def test_an_expired_or_revoked_access_token_is_refused(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    access = _refresh(local, "sim-refresh-token").json()["access_token"]
    bearer = {"Authorization": f"Bearer {access}"}
    clock.advance(1801)
    expired = local.get(CONTACTS, headers=bearer)
    assert expired.status_code == 401
    assert expired.json()["category"] == "EXPIRED_AUTHENTICATION"
    sim.revoke_tokens()
    assert local.get(CONTACTS).status_code == 401
    assert _refresh(local, "sim-refresh-token").json()["error"] == "invalid_grant"


# ---------------------------------------------------------------------- rate limits


def test_the_101st_request_in_ten_seconds_is_a_429_until_the_window_rolls(
    sim: HubSpotSimulator, local: httpx.Client, clock: FakeClock
) -> None:
    answers = [local.get(CONTACTS, params={"limit": 1}) for _ in range(100)]
    assert {r.status_code for r in answers} == {200}
    assert answers[0].headers["X-HubSpot-RateLimit-Max"] == "100"
    assert answers[0].headers["X-HubSpot-RateLimit-Interval-Milliseconds"] == "10000"
    assert answers[-1].headers["X-HubSpot-RateLimit-Remaining"] == "0"
    assert answers[0].headers["X-HubSpot-RateLimit-Daily"] == "250000"
    refused = local.get(CONTACTS)
    assert refused.status_code == 429
    body = refused.json()
    assert body["status"] == "error" and body["errorType"] == "RATE_LIMIT"
    assert body["policyName"] == "TEN_SECONDLY_ROLLING" and body["correlationId"]
    assert body["message"] == "You have reached your ten_secondly_rolling limit."
    assert sim.max_requests_in_window() == 101
    clock.advance(10)
    assert local.get(CONTACTS).status_code == 200


def test_professional_accounts_get_190_requests_and_oauth_calls_get_no_daily_headers(
    clock: FakeClock,
) -> None:
    sim = HubSpotSimulator(private_app_token=TOKEN, tier="professional", clock=clock)
    with httpx.Client(transport=httpx.MockTransport(sim), base_url="https://h") as client:
        assert client.get(CONTACTS, headers=AUTH).headers["X-HubSpot-RateLimit-Max"] == "190"
        access = _refresh(client, "sim-refresh-token").json()["access_token"]
        oauth = client.get(CONTACTS, headers={"Authorization": f"Bearer {access}"})
    assert oauth.status_code == 200 and "X-HubSpot-RateLimit-Daily" not in oauth.headers


def test_injected_failures_and_throttles_answer_only_the_next_requests(
    sim: HubSpotSimulator, local: httpx.Client
) -> None:
    sim.fail_next(2, status=503)
    sim.fail_next(status=429, retry_after=3)
    statuses = [local.get(CONTACTS).status_code for _ in range(4)]
    assert statuses == [503, 503, 429, 200]
    assert [entry.status for entry in sim.requests] == statuses
    throttled = sim.requests.where(status=429)
    assert throttled[0].path == CONTACTS
    sim.fail_next(status=429, retry_after=3)
    response = local.get(CONTACTS)
    assert response.headers["Retry-After"] == "3"
    assert response.json()["policyName"] == "TEN_SECONDLY_ROLLING"


# -------------------------------------------------------------------------- webhooks


@pytest.mark.parametrize(
    ("secret", "body", "expected"),
    [
        (SECRET_D, BODY_D, "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"),
        (SECRET_O, BODY_O, "2b31f349ca149055859d64d4fc932a579ff5faf4a092aa0554b4643a3b865674"),
    ],
    ids=["v1-docs", "v1-own"],
)
def test_v1_signatures_match_the_vendor_doc(secret: str, body: str, expected: str) -> None:
    assert sign_v1(secret, body.encode()) == expected


@pytest.mark.parametrize(
    ("secret", "method", "uri", "body", "expected"),
    [
        (
            SECRET_D,
            "GET",
            URI_DOCS,
            "",
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e",
        ),
        (
            SECRET_D,
            "POST",
            URI_DOCS,
            '{"example_field":"example_value"}',
            "9569219f8ba981ffa6f6f16aa0f48637d35d728c7e4d93d0d52efaa512af7900",
        ),
        (
            SECRET_O,
            "POST",
            URI_O,
            BODY_O,
            "01f72d441e51c0ff1f29829bbdf5470bb9b02e569ee6e2be0e512a8c2dfe4ef6",
        ),
    ],
    ids=["v2-docs", "v2-post", "v2-own"],
)
def test_v2_signatures_match_the_vendor_doc(
    secret: str, method: str, uri: str, body: str, expected: str
) -> None:
    assert sign_v2(secret, method, uri, body.encode()) == expected


def test_v3_signature_of_our_example_matches_the_vendor_doc() -> None:
    expected = "4cTJxITM+29AqUJKb4lWv5JREh24InOzpaIoCg8qkxQ="
    assert sign_v3(SECRET_O, "POST", URI_O, BODY_O.encode(), TS) == expected


def _hmac_b64(secret: str, message: str) -> str:
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def test_v3_decodes_only_the_listed_escapes_before_signing() -> None:
    decoded = "PoXc/ORRBUs8rDiku+98UPMl2iHXBouVOcXF1sxHPwU="
    undecoded = "ysxYH8ljDtrTsqqbSbKYbwCc94ONyn40bmdSd9Wu8sY="
    assert sign_v3(SECRET_O, "GET", URI_D, b"", TS) == decoded
    plain = "https://hooks.example.com/hubspot:webhook?ids=1,2"
    assert sign_v3(SECRET_O, "GET", plain, b"", TS) == decoded
    assert _hmac_b64(SECRET_O, f"GET{URI_D}{TS}") == undecoded != decoded
    untouched = "https://hooks.example.com/a%20b%253A"  # %20 and %25 are not on the list
    assert sign_v3(SECRET_O, "GET", untouched, b"", TS) == _hmac_b64(
        SECRET_O, f"GET{untouched}{TS}"
    )


def test_a_webhook_delivery_reproduces_the_vendor_doc_example(
    sim: HubSpotSimulator, clock: FakeClock
) -> None:
    event = sim.contact_event("propertyChange", 123, propertyValue="jane@example.com")
    headers, body = sim.webhook_delivery([event], URI_O, SECRET_O, timestamp_ms=TS)
    assert body == BODY_O.encode()
    assert headers == {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": "4cTJxITM+29AqUJKb4lWv5JREh24InOzpaIoCg8qkxQ=",
        "X-HubSpot-Request-Timestamp": "1700000000123",
        "X-HubSpot-Signature": "2b31f349ca149055859d64d4fc932a579ff5faf4a092aa0554b4643a3b865674",
        "X-HubSpot-Signature-Version": "v1",
    }


def test_contact_events_carry_the_current_property_value_and_the_clock_time(
    sim: HubSpotSimulator, clock: FakeClock
) -> None:
    contact = sim.add_contacts(1)[0]
    sim.update_contact(contact, firstname="Ada")
    event = sim.contact_event("propertyChange", contact, propertyName="firstname")
    assert event["propertyValue"] == "Ada" and event["occurredAt"] == int(clock.now * 1000)
    assert event["subscriptionType"] == "contact.propertyChange" and event["attemptNumber"] == 0
    deletion = sim.contact_event("deletion", contact, changeSource="API")
    assert deletion["eventId"] == event["eventId"] + 1 and deletion["changeSource"] == "API"
    assert "propertyName" not in deletion


# --------------------------------------------------------------------- server & scale


def test_the_server_answers_concurrent_keep_alive_clients() -> None:
    sim = HubSpotSimulator(private_app_token=TOKEN, enforce_limits=False)
    sim.add_contacts(5)
    statuses: list[int] = []

    def work(base_url: str) -> None:
        with httpx.Client(base_url=base_url, headers=AUTH) as client:
            statuses.extend(client.get(f"{CONTACTS}/1").status_code for _ in range(50))

    with serve(sim) as server:
        threads = [threading.Thread(target=work, args=(server.base_url,)) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert statuses == [200] * 200
    assert sim.max_requests_in_window() == 200


def test_seeding_100000_contacts_takes_a_few_seconds(sim: HubSpotSimulator) -> None:
    started = time.perf_counter()
    ids = sim.add_contacts(100_000)
    assert time.perf_counter() - started < 10
    assert len(set(ids)) == 100_000 and ids == sorted(ids, key=int)
    assert sim.get_contact(ids[-1]) is not None


def test_the_command_line_serves_a_seeded_simulator_until_stopped() -> None:
    command = [sys.executable, "-m", "simulators.hubspot.server", "--port", "0"]
    command += ["--contacts", "3", "--token", "T"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().split()[3]
        page = httpx.get(f"{base_url}{CONTACTS}", headers={"Authorization": "Bearer T"})
        assert len(page.json()["results"]) == 3
    finally:
        process.terminate()
        out, _ = process.communicate(timeout=10)
    assert "stopped" in out
