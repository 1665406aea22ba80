"""The events resources of the HTTP API, through a real server: endpoints made, shown,
changed, rotated and removed, events and deliveries listed, replays; organization B's key
never reaches A's; a read-only key changes nothing; a private URL is a 422 problem."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from models.accounts import create_organization
from models.api_keys import create_api_key
from models.host_events import emit
from models.session import Database
from tests import services
from tests.api.conftest import client, problem


@pytest.fixture(scope="module")
def api(platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    handle = services.start_http(platform_env, tmp_path_factory.mktemp("events-api"))
    yield handle.env["base_url"] + "/api/v1"
    handle.stop()


def _keys(stack: ExitStack, db: Database, api: str) -> tuple[uuid.UUID, httpx.Client, httpx.Client]:
    org = create_organization(db, f"Api {uuid.uuid4().hex[:6]}")
    _, secret = create_api_key(db, org.id, "host", rate_limit=100_000)
    _, read = create_api_key(db, org.id, "reader", read_only=True)
    return (
        org.id,
        stack.enter_context(client(api, secret)),
        stack.enter_context(client(api, read)),
    )


def test_endpoints_events_and_replays_through_the_api(app_db: Database, api: str) -> None:
    with ExitStack() as stack:
        a_org, a, a_reader = _keys(stack, app_db, api)
        _, b, _ = _keys(stack, app_db, api)
        _exercise(app_db, a_org, a, a_reader, b)


def _exercise(
    app_db: Database, a_org: uuid.UUID, a: httpx.Client, a_reader: httpx.Client, b: httpx.Client
) -> None:
    made = a.post(
        "/event-endpoints",
        json={"url": "http://127.0.0.1:9/a", "event_types": ["webhook.failed"]},  # no DNS
    )
    assert made.status_code == 201, made.text
    endpoint = made.json()
    assert endpoint["secret"].startswith("whsec_") and endpoint["enabled"] is True
    path = f"/event-endpoints/{endpoint['id']}"
    assert "secret" not in a.get(path).json()
    assert [e["id"] for e in a.get("/event-endpoints").json()["items"]] == [endpoint["id"]]
    changed = a.patch(path, json={"enabled": False, "description": "paused"}).json()
    assert (changed["enabled"], changed["description"]) == (False, "paused")
    assert a.patch(path, json={"enabled": True}).json()["enabled"] is True
    rotated = a.post(f"{path}/rotate-secret").json()["secret"]
    assert rotated.startswith("whsec_") and rotated != endpoint["secret"]

    with app_db.tenant(a_org) as session:
        event_id = emit(session, a_org, "webhook.failed", {"reason": "test"})
    events = a.get("/events", params={"type": "webhook.failed"}).json()["items"]
    assert [(e["id"], e["data"]) for e in events] == [(str(event_id), {"reason": "test"})]
    [delivery] = events[0]["deliveries"]
    assert delivery["endpoint_id"] == endpoint["id"]
    listed = a.get("/event-deliveries", params={"endpoint_id": endpoint["id"]}).json()
    assert [d["id"] for d in listed["items"]] == [delivery["id"]]
    assert a.get(f"/event-deliveries/{delivery['id']}/attempts").status_code == 200
    replayed = a.post("/events/replay-failed", json={"since": "2026-01-01T00:00:00Z"})
    assert replayed.status_code == 202 and replayed.json() == {"enqueued": 0}

    # B's key: A's endpoint, event and delivery are not there
    for method, url in (
        ("GET", path),
        ("PATCH", path),
        ("DELETE", path),
        ("POST", f"{path}/rotate-secret"),
        ("POST", f"/events/{event_id}/replay"),
        ("GET", f"/event-deliveries/{delivery['id']}/attempts"),
    ):
        body = {"description": "mine"} if method == "PATCH" else None
        problem(b.request(method, url, json=body), 404, "not-found")
    assert b.get("/events").json()["items"] == []
    assert b.get("/event-deliveries").json()["items"] == []
    assert b.get("/event-endpoints").json()["items"] == []

    problem(a_reader.delete(path), 403, "read-only-key")
    bad = a.post("/event-endpoints", json={"url": "ftp://x", "event_types": ["run.failed"]})
    problem(bad, 422, "invalid-request")
    assert a.delete(path).status_code == 204
    problem(a.get(path), 404, "not-found")
