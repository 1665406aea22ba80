"""The Mailchimp simulator behaves like Mailchimp (docs/vendors/mailchimp.md): offset paging with
total_items, problem+json errors, auth, member upserts and the connection limit."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest

from connectors.mailchimp.mapping import subscriber_hash
from simulators.mailchimp.server import MailchimpSimulator
from tests.connectors.test_mailchimp_webhooks import DOC_BODY

MEMBERS = "/3.0/lists/a6b5da1054/members"


@pytest.fixture
def sim() -> MailchimpSimulator:
    return MailchimpSimulator()


@pytest.fixture
def client(sim: MailchimpSimulator) -> Iterator[httpx.Client]:
    auth = httpx.BasicAuth("anystring", sim.api_key)
    with httpx.Client(
        base_url="https://us21.api.mailchimp.com", auth=auth, transport=httpx.MockTransport(sim)
    ) as http:
        yield http


def test_members_page_by_offset_and_count_until_total_items(
    sim: MailchimpSimulator, client: httpx.Client
) -> None:
    sim.add_members(25)
    seen: list[str] = []
    offset = 0
    while True:
        body = client.get(MEMBERS, params={"count": 10, "offset": offset}).json()
        seen += [m["id"] for m in body["members"]]
        assert body["total_items"] == 25 and body["list_id"] == "a6b5da1054"
        offset += 10
        if offset >= body["total_items"]:
            break
    assert len(seen) == len(set(seen)) == 25
    assert all(s == subscriber_hash(sim.member(s)["email_address"]) for s in seen)


def test_since_last_changed_and_count_limits(sim: MailchimpSimulator, client: httpx.Client) -> None:
    ids = sim.add_members(5, changed_from=1_700_000_000)
    body = client.get(
        MEMBERS, params={"since_last_changed": "2023-11-14T22:13:22+00:00", "count": 10}
    ).json()
    assert [m["id"] for m in body["members"]] == ids[2:]
    refused = client.get(MEMBERS, params={"count": 1001})
    assert refused.status_code == 400
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert set(refused.json()) >= {"type", "title", "status", "detail", "instance"}


def test_a_wrong_or_missing_key_is_a_401_problem(sim: MailchimpSimulator) -> None:
    for auth in (httpx.BasicAuth("x", "ffff-us21"), None):
        with httpx.Client(transport=httpx.MockTransport(sim), auth=auth) as http:
            answer = http.get("https://us21.api.mailchimp.com" + MEMBERS)
        assert answer.status_code == 401 and answer.json()["title"].startswith("API Key")


def test_put_creates_with_status_if_new_and_never_changes_status_without_status(
    sim: MailchimpSimulator, client: httpx.Client
) -> None:
    url = f"{MEMBERS}/{subscriber_hash('a@example.test')}"
    body = {"email_address": "a@example.test", "status_if_new": "pending", "tags": ["x"]}
    assert client.put(url, json=body).json()["status"] == "pending"
    sim.update_member("a@example.test", status="unsubscribed")
    again = client.put(url, json=body | {"merge_fields": {"FNAME": "A"}}).json()
    assert (again["status"], again["merge_fields"]["FNAME"]) == ("unsubscribed", "A")
    invalid = client.put(f"{MEMBERS}/{subscriber_hash('b@@x')}", json={"email_address": "b@@x"})
    assert invalid.status_code == 400 and invalid.json()["errors"][0]["field"] == "email_address"


def test_more_than_ten_requests_in_flight_get_429(sim: MailchimpSimulator) -> None:
    sim.latency = 0.5
    statuses: list[int] = []
    start = threading.Barrier(14)
    auth = httpx.BasicAuth("x", sim.api_key)

    def call() -> None:
        request = httpx.Request("GET", "https://us21.api.mailchimp.com" + MEMBERS)
        request = next(auth.auth_flow(request))
        start.wait()
        statuses.append(sim(request).status_code)

    threads = [threading.Thread(target=call) for _ in range(14)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert set(statuses) == {200, 429} and statuses.count(200) >= 10
    assert sim.max_in_flight > 10
    assert sim(httpx.Request("GET", "https://x" + MEMBERS)).status_code == 401  # all released


def test_injected_throttles_carry_retry_after_only_when_asked(
    sim: MailchimpSimulator, client: httpx.Client
) -> None:
    sim.fail_next(status=429)
    sim.fail_next(status=429, retry_after=2)
    plain, timed = client.get(MEMBERS), client.get(MEMBERS)
    assert (plain.status_code, "retry-after" in plain.headers) == (429, False)
    assert (timed.status_code, timed.headers["retry-after"]) == (429, "2")
    assert client.get(MEMBERS).status_code == 200


def test_a_subscribe_delivery_is_byte_for_byte_the_documented_one() -> None:
    fired = datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC).timestamp()
    sim = MailchimpSimulator(clock=lambda: fired)
    sim.add_member(
        "jane.doe@example.com", web_id=123456789, merge_fields={"FNAME": "Jane", "LNAME": "Doe"}
    )
    headers, body = sim.webhook_delivery("subscribe", "jane.doe@example.com")
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert body == DOC_BODY
