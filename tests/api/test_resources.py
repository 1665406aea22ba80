"""Every resource of the API through the real server, a sync through a real worker, and
organization B's data out of reach of A's keys (404, and 0 rows through filters and
cursors)."""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
from sqlalchemy import select

from models import AuditLog, Integration
from models.session import get_database
from tests.api.conftest import Org, problem


def _wait_run(org: Org, run_id: str, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        run = org.api.get(f"/runs/{run_id}").json()
        if run["status"] != "running":
            return dict(run)
        assert time.monotonic() < deadline, run
        time.sleep(0.2)


def test_a_sync_started_through_the_api_runs_on_the_worker_and_is_listed(
    orgs: tuple[Org, Org], sync_worker: Any
) -> None:
    a, b = orgs
    ids = a.vendor.sim.add_contacts(10)
    a.vendor.sim.update_contact(ids[3], email="broken@@example.test")
    body = {"integration_id": str(a.integration_id), "streams": ["contacts"], "full_refresh": True}
    started = a.api.post("/runs", json=body)
    assert started.status_code == 202, started.text
    run = _wait_run(a, started.json()["run_id"])
    assert (run["status"], run["records_processed"], run["records_failed"]) == ("partial", 9, 1)
    assert run["trigger"] == "api"
    assert [(s["stream"], s["status"], s["succeeded"]) for s in run["streams"]] == [
        ("contacts", "done", 9)
    ]
    failures = a.api.get(f"/runs/{run['id']}/failures").json()
    assert failures["records_failed"] == 1
    [failure] = failures["items"]
    assert failure["record_id"] == ids[3] and failure["stream"] == "contacts" and failure["reason"]

    a.vendor.sim.update_contact(ids[3], email="fixed@example.test")
    replayed = a.api.post(f"/runs/{run['id']}/replay")
    assert replayed.status_code == 202, replayed.text
    replay = _wait_run(a, replayed.json()["run_id"])
    assert (replay["status"], replay["records_processed"]) == ("success", 1)
    assert replay["replay_of"] == run["id"]
    problem(a.api.post(f"/runs/{replay['id']}/replay"), 409, "conflict")  # nothing failed
    problem(a.api.post(f"/runs/{run['id']}/cancel"), 409, "conflict")  # already ended

    # pages of one at a time, filters
    first_page = a.api.get("/runs", params={"limit": 1}).json()
    assert [r["id"] for r in first_page["items"]] == [replay["id"]]
    rest = a.api.get("/runs", params={"limit": 1, "cursor": first_page["next_cursor"]}).json()
    assert [r["id"] for r in rest["items"]] == [run["id"]] and rest["next_cursor"] is None
    listed = a.api.get(
        "/runs", params={"integration_id": str(a.integration_id), "status": "partial"}
    ).json()
    assert [r["id"] for r in listed["items"]] == [run["id"]]
    assert a.api.get("/runs", params={"status": "failed"}).json()["items"] == []
    future = a.api.get("/runs", params={"since": "2999-01-01T00:00:00Z"}).json()
    assert future["items"] == []

    # organization B: nothing of A, by id, by filter or by A's cursor
    assert b.api.get("/runs").json()["items"] == []
    assert b.api.get("/runs", params={"integration_id": str(a.integration_id)}).json() == {
        "items": [],
        "next_cursor": None,
    }
    assert b.api.get("/runs", params={"cursor": first_page["next_cursor"]}).json()["items"] == []
    for path in (f"/runs/{run['id']}", f"/runs/{run['id']}/failures"):
        problem(b.api.get(path), 404, "not-found")
    for path in (f"/runs/{run['id']}/replay", f"/runs/{run['id']}/cancel"):
        problem(b.api.post(path), 404, "not-found")
    problem(b.api.post("/runs", json={"integration_id": str(a.integration_id)}), 404, "not-found")
    # the read-only key of A reads, never starts
    assert a.reader.get(f"/runs/{run['id']}").status_code == 200
    problem(
        a.reader.post("/runs", json={"integration_id": str(a.integration_id)}),
        403,
        "read-only-key",
    )


def test_integrations_connect_show_change_pause_test_and_remove(orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    base_url = a.vendor.base_url
    refused = a.api.post(
        "/integrations",
        json={
            "provider": "hubspot",
            "credentials": {"private_app_token": "wrong"},
            "settings": {"base_url": base_url},
        },
    )
    problem(refused, 422, "credentials-refused")
    made = a.api.post(
        "/integrations",
        json={
            "provider": "hubspot",
            "credentials": {"private_app_token": "pat-na1-simulator"},
            "settings": {"base_url": base_url},
            "name": "CRM",
        },
    )
    assert made.status_code == 201, made.text
    created = made.json()
    assert created["status"] == "connected" and created["name"] == "CRM"
    assert created["credential_fields"] == ["private_app_token"]
    assert "pat-na1-simulator" not in made.text
    new_id = created["id"]
    listed = [i["id"] for i in a.api.get("/integrations").json()["items"]]
    assert listed == [str(a.integration_id), new_id]  # the refused one was not kept
    assert str(a.integration_id) not in str(b.api.get("/integrations").json())

    changed = a.api.patch(f"/integrations/{new_id}", json={"name": "CRM 2"}).json()
    assert changed["changed"] == ["name"] and changed["integration"]["name"] == "CRM 2"
    assert a.api.post(f"/integrations/{new_id}/pause").json()["is_active"] is False
    resumed = a.api.post(f"/integrations/{new_id}/resume").json()
    assert resumed["integration"]["is_active"] is True
    tested = a.api.post(f"/integrations/{new_id}/test").json()
    assert tested["ok"] is True
    assert "hubspot" in a.api.get("/providers").json()

    # B's key: every one of A's integration operations is a 404, and nothing changed
    for method, path, body in (
        ("GET", f"/integrations/{new_id}", None),
        ("PATCH", f"/integrations/{new_id}", {"name": "mine"}),
        ("POST", f"/integrations/{new_id}/pause", None),
        ("POST", f"/integrations/{new_id}/resume", None),
        ("POST", f"/integrations/{new_id}/test", None),
        ("DELETE", f"/integrations/{new_id}", None),
        ("GET", f"/integrations/{new_id}/schedules", None),
        ("PUT", f"/integrations/{new_id}/schedules", {"every": "15m"}),
        ("DELETE", f"/integrations/{new_id}/schedules", None),
    ):
        problem(b.api.request(method, path, json=body), 404, "not-found")
    # A's read-only key: 403 for every change
    for method, path in (
        ("PATCH", f"/integrations/{new_id}"),
        ("POST", f"/integrations/{new_id}/pause"),
        ("DELETE", f"/integrations/{new_id}"),
    ):
        problem(a.reader.request(method, path, json={"name": "x"}), 403, "read-only-key")
    assert a.api.get(f"/integrations/{new_id}").json()["name"] == "CRM 2"

    removed = a.api.delete(f"/integrations/{new_id}").json()
    assert removed["id"] == new_id
    problem(a.api.get(f"/integrations/{new_id}"), 404, "not-found")

    # every change is in the audit trail with A's key as its actor
    with get_database().tenant(a.id) as session:
        rows = session.scalars(
            select(AuditLog).where(AuditLog.record_id == uuid.UUID(new_id))
        ).all()
        by_key = [
            r for r in rows if (r.metadata_ or {}).get("actor", {}).get("id") == str(a.key_id)
        ]
        requests = sorted(r.metadata_["request"].split()[0] for r in by_key)
        assert requests == ["DELETE", "PATCH", "POST", "POST", "POST", "POST"]
        assert session.get(Integration, uuid.UUID(new_id)) is None  # soft-deleted: hidden


def test_schedules_set_show_pause_resume_clear(orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    path = f"/integrations/{a.integration_id}/schedules"
    problem(a.api.put(path, json={"every": "soon"}), 422, "invalid-request")
    shown = a.api.put(path, json={"every": "15m"}).json()["items"]
    assert [s["schedule"] for s in shown] == ["every 15m"]
    assert a.api.get(path).json()["items"][0]["active"] is True
    assert a.api.post(f"{path}/pause").json() == {"active": False, "waiting_webhooks_enqueued": 0}
    assert a.api.get(path).json()["items"][0]["active"] is False
    assert a.api.post(f"{path}/resume").json()["active"] is True
    assert a.api.delete(path).json() == {"removed": 1}
    assert a.api.get(path).json()["items"] == []


def test_webhook_deliveries_list_and_replay(orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    assert a.api.get("/webhook-deliveries", params={"status": "failed"}).json()["items"] == []
    problem(a.api.get("/webhook-deliveries", params={"status": "lost"}), 422, "invalid-request")
    replay = {"integration_id": str(a.integration_id), "failed_only": True}
    assert a.api.post("/webhook-deliveries/replay", json=replay).json() == {"enqueued": 0}
    problem(b.api.post("/webhook-deliveries/replay", json=replay), 404, "not-found")


def test_notifications_are_sent_once_per_key_and_reach_the_feed(orgs: tuple[Org, Org]) -> None:
    a, b = orgs
    feed = f"/users/{a.user_id}/feed"
    unread = a.api.get(f"{feed}/unread-count").json()["unread"]  # a failed run's, maybe
    body = {"audience": {"role": "admins"}, "title": "Sync report", "message": "All good"}
    headers = {"idempotency-key": f"report-{uuid.uuid4()}"}
    first = a.api.post("/notifications", json=body, headers=headers)
    assert first.status_code == 202, first.text
    assert first.json()["created"] == 1
    again = a.api.post("/notifications", json=body, headers=headers)
    assert again.status_code == 202 and again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    problem(
        a.api.post("/notifications", json={**body, "title": "Other"}, headers=headers),
        422,
        "idempotency-key-reused",
    )
    key = headers["idempotency-key"]
    deliveries = a.api.get("/notifications/deliveries", params={"key": key}).json()["items"]
    assert [(d["channel"], d["user_id"], d["title"]) for d in deliveries] == [
        ("in_app", str(a.user_id), "Sync report")
    ]
    counts = a.api.get("/notifications/deliveries/counts", params={"key": key}).json()
    assert sum(counts["channels"]["in_app"].values()) == 1
    assert b.api.get("/notifications/deliveries", params={"key": key}).json()["items"] == []
    # the same key on B's side is B's own: nothing of A's is replayed to B
    b_sent = b.api.post("/notifications", json=body, headers=headers)
    assert b_sent.status_code == 202 and "idempotent-replayed" not in b_sent.headers

    shown = a.api.get(feed).json()
    assert shown["unread"] == unread + 1 and shown["items"][0]["title"] == "Sync report"
    assert a.reader.get(f"{feed}/unread-count").json() == {"unread": unread + 1}
    problem(a.reader.post(f"{feed}/read", json={}), 403, "read-only-key")
    problem(b.api.get(feed), 404, "not-found")
    problem(b.api.post(f"{feed}/read", json={}), 404, "not-found")
    marked = a.api.post(f"{feed}/read", json={"notification_id": shown["items"][0]["id"]})
    assert marked.json() == {"marked": 1, "unread": unread}
    problem(
        a.api.post(
            "/notifications",
            json={
                "audience": {"user_ids": [str(b.user_id)]},
                **{k: v for k, v in body.items() if k != "audience"},
            },
        ),
        404,
        "not-found",
    )


def test_bad_requests_are_problem_documents(orgs: tuple[Org, Org]) -> None:
    a, _ = orgs
    problem(a.api.get("/runs/not-a-uuid"), 422, "invalid-request")
    problem(a.api.get("/runs", params={"cursor": "bm90IGEgY3Vyc29y"}), 400, "malformed-request")
    problem(
        a.api.post("/runs", content=b"{", headers={"content-type": "application/json"}),
        400,
        "malformed-request",
    )
    problem(a.api.get("/nowhere"), 404, "not-found")
    problem(a.api.delete("/runs"), 405, "method-not-allowed")
    spec = httpx.get(f"{a.api.base_url}openapi.json").json()  # no key needed
    assert spec["openapi"].startswith("3.1") and "/runs" in spec["paths"]
    docs = httpx.get(f"{a.api.base_url}docs")
    assert docs.status_code == 200 and "/api/v1/openapi.json" in docs.text
