"""The in-app feed over real HTTP (uvicorn): per-user tokens, listing, read marks and the
live server-sent event stream fed by Redis pub/sub (or database polling); a token of any
bytes is a 401, and a stream ends when its token expires."""

from __future__ import annotations

import base64
import json
import os
import socket
import threading
import time
import urllib.parse
import uuid
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Mount

from models.session import Database
from notifications import Audience, Content, send
from notifications.feed_tokens import InvalidToken, issue, verify
from tests import services
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


# --- tokens of any bytes ------------------------------------------------------------------


def test_a_valid_payload_with_a_non_ascii_signature_is_a_401(
    db: Database, org: Org, feed_url: str
) -> None:
    body = issue(org.id, org.admin).partition(".")[0]
    for signature in ("é", "sïgnature", "\u2603" * 43):
        token = f"{body}.{signature}"
        by_query = httpx.get(f"{feed_url}/unread-count", params={"token": token})
        by_header = httpx.get(
            f"{feed_url}/unread-count", headers={b"Authorization": f"Bearer {token}".encode()}
        )
        assert (by_query.status_code, by_header.status_code) == (401, 401)
        assert by_query.json() == {"error": "invalid feed token"}


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(token=st.one_of(st.text(), st.binary()))
def test_verify_refuses_any_text_or_bytes_with_invalid_token(
    providers: Providers, token: str | bytes
) -> None:
    with pytest.raises(InvalidToken):
        verify(token)


# Bytes a header value can carry (tab, visible ASCII and any byte over 0x7f; no edge
# whitespace, which HTTP trims).
_HEADER_BYTES = (
    st.lists(st.sampled_from([9, *range(32, 127), *range(128, 256)]), min_size=1, max_size=200)
    .map(bytes)
    .filter(lambda raw: raw == raw.strip(b" \t"))
)
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=100)  # no lone surrogates


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.filter_too_much],
)
@given(raw=_HEADER_BYTES, query=st.binary(max_size=200), text=_TEXT)
def test_a_token_of_any_bytes_is_a_401_never_a_5xx(
    feed_url: str, raw: bytes, query: bytes, text: str
) -> None:
    with httpx.Client(base_url=feed_url, timeout=10) as client:
        answers = [
            client.get("/unread-count", headers={b"Authorization": b"Bearer " + raw}),
            client.get("/", headers={b"Authorization": b"Bearer " + raw + b"." + raw}),
            client.get("/unread-count?token=" + urllib.parse.quote_from_bytes(query)),
            client.get("/unread-count", params={"token": text}),
            client.post("/read-all", headers={b"Authorization": b"Bearer e30." + raw}),
        ]
    assert [answer.status_code for answer in answers] == [401] * len(answers)
    assert all(answer.headers["www-authenticate"] == "Bearer" for answer in answers)


# --- a stream ends when its token expires ---------------------------------------------------


@pytest.fixture(params=["redis", "database"])
def stream_source(request: pytest.FixtureRequest, providers: Providers) -> Iterator[str]:
    """The live stream fed by Redis pub/sub, or (without PLUGS_REDIS_URL) by polling."""
    if request.param == "redis":
        yield request.param
        return
    saved = os.environ.pop("PLUGS_REDIS_URL", None)
    services.reload_settings()
    try:
        yield request.param
    finally:
        if saved is not None:
            os.environ["PLUGS_REDIS_URL"] = saved
        services.reload_settings()


TTL = 5


def test_an_open_stream_ends_when_its_token_expires_and_delivers_nothing_after(
    stream_source: str, db: Database, org: Org, feed_url: str
) -> None:
    token = issue(org.id, org.admin, ttl=TTL)
    payload = token.partition(".")[0]
    expires_at = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["e"]
    late_sent = threading.Event()

    def send_after_expiry() -> None:
        time.sleep(max(0.0, expires_at + 0.5 - time.time()))
        send(db, org.id, Audience(user_ids=(org.admin,)), Content("Too late", "expired"))
        deliver_all(db, org.id)
        late_sent.set()

    late = threading.Thread(target=send_after_expiry, daemon=True)
    lines: list[str] = []
    # Read timeout: with a stream that outlives its token, the next byte would be a
    # keep-alive 15 s later; a stream that ends on time never waits that long.
    timeout = httpx.Timeout(10, read=TTL + 5)
    try:
        with httpx.stream(
            "GET", f"{feed_url}/stream", params={"token": token}, timeout=timeout
        ) as response:
            assert response.status_code == 200
            for line in response.iter_lines():
                lines.append(line)
                if line.startswith(": connected"):
                    send(db, org.id, Audience(user_ids=(org.admin,)), Content("In time", "ok"))
                    deliver_all(db, org.id)
                    late.start()
    except httpx.ReadTimeout:
        pytest.fail(f"the stream stayed open after its token expired: {lines}")
    ended = time.time()
    late.join(30)

    events = [line for line in lines if line.startswith("event: ")]
    assert late_sent.is_set()
    assert events == ["event: notification", "event: expired"]
    assert any('"title": "In time"' in line for line in lines)
    assert not any("Too late" in line for line in lines)
    assert expires_at - 1 <= ended <= expires_at + 3
    # The same token cannot open the stream again.
    again = httpx.get(f"{feed_url}/stream", params={"token": token}, timeout=10)
    assert again.status_code == 401
