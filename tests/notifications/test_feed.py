"""The in-app feed over real HTTP (uvicorn): per-user tokens, listing, read marks and the
live server-sent event stream fed by Redis pub/sub."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.routing import Mount

from models.session import Database
from notifications import Audience, Content, send
from notifications.feed_tokens import issue
from tests.notifications.conftest import Org, Providers, deliver_all
from workers.http import feed


@pytest.fixture
def feed_url(providers: Providers) -> Iterator[str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Starlette(routes=[Mount("/feed", routes=feed.routes)])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}/feed"
    server.should_exit = True
    thread.join(10)


def test_the_feed_lists_counts_and_marks_read_for_its_user_only(
    db: Database, org: Org, feed_url: str
) -> None:
    send(db, org.id, Audience(user_ids=(org.admin,)), Content("One", "first"))
    send(db, org.id, Audience(user_ids=(org.admin,)), Content("Two", "second"))
    send(db, org.id, Audience(user_ids=(org.users[0],)), Content("Other", "not yours"))
    auth = {"Authorization": f"Bearer {issue(org.id, org.admin)}"}

    with httpx.Client(base_url=feed_url, headers=auth) as client:
        listed = client.get("/").json()["notifications"]
        before = client.get("/unread-count").json()
        marked = client.post(f"/{listed[0]['id']}/read").json()
        after = client.get("/unread-count").json()
        all_read = client.post("/read-all").json()
        foreign = client.post(f"/{uuid.uuid4()}/read")

    assert [n["title"] for n in listed] == ["Two", "One"]
    assert (before, marked, after, all_read) == (
        {"unread": 2},
        {"marked": 1},
        {"unread": 1},
        {"marked": 1},
    )
    assert foreign.status_code == 404


@pytest.mark.parametrize("token", ["", "not-a-token", "e30.c2lnbmF0dXJl"])
def test_the_feed_refuses_requests_without_a_valid_token(feed_url: str, token: str) -> None:
    response = httpx.get(
        f"{feed_url}/", headers={"Authorization": f"Bearer {token}"} if token else {}
    )

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_an_expired_token_is_refused(db: Database, org: Org, feed_url: str) -> None:
    token = issue(org.id, org.admin, ttl=-1)

    assert httpx.get(f"{feed_url}/unread-count", params={"token": token}).status_code == 401


def test_a_delivered_in_app_notification_arrives_on_the_live_stream(
    db: Database, org: Org, feed_url: str
) -> None:
    token = issue(org.id, org.admin)
    with httpx.stream("GET", f"{feed_url}/stream", params={"token": token}, timeout=30) as response:
        lines = response.iter_lines()
        assert next(lines).startswith(": connected")
        send(db, org.id, Audience(user_ids=(org.admin,)), Content("Live", "right now", "success"))
        deliver_all(db, org.id)
        received = [line for line in (next(lines) for _ in range(4)) if line]

    assert received[0].startswith("id: ") and received[1] == "event: notification"
    assert '"title": "Live"' in received[2] and '"type": "success"' in received[2]
