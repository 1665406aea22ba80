"""The in-app notification feed over HTTP; ``routes`` are mounted at ``/feed`` by
:mod:`workers.http.app`.

Every request is one user's: a feed token (:mod:`notifications.feed_tokens`) in
``Authorization: Bearer <token>``, or ``?token=<token>`` for ``EventSource`` clients, which
cannot set headers.  Routes:

* ``GET /feed`` -- newest first (``limit``, ``unread=1``);
* ``GET /feed/unread-count`` -- ``{"unread": n}``;
* ``POST /feed/{id}/read``, ``POST /feed/read-all`` -- mark read;
* ``GET /feed/stream`` -- server-sent events (``event: notification``), live from Redis
  pub/sub, or from polling the database every few seconds without Redis.  The stream ends
  when its token expires: a last ``event: expired``, then the server closes it (the client
  opens a new one with a fresh token).

A token that does not verify, whatever its bytes, is answered 401.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import datetime

import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from core.errors import ConfigError, NotFoundError
from models.base import utcnow
from models.session import get_database
from notifications import feed, live
from notifications.feed_tokens import InvalidToken, Viewer, verify

#: Seconds between keep-alive comments on the stream (and database polls without Redis).
KEEPALIVE_SECONDS = 15.0
POLL_SECONDS = 2.0


class _Refused(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def _viewer(request: Request) -> Viewer:
    header = request.headers.get("authorization", "")
    token = (
        header[7:].strip()
        if header.lower().startswith("bearer ")
        else request.query_params.get("token", "")
    )
    if not token:
        raise _Refused(_error(401, "a feed token is required (Authorization: Bearer <token>)"))
    try:
        return verify(token)
    except ConfigError as exc:
        raise _Refused(_error(503, str(exc))) from None
    except InvalidToken as exc:
        raise _Refused(_error(401, str(exc))) from None


def _error(status: int, message: str) -> JSONResponse:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"error": message}, status_code=status, headers=headers)


async def list_feed(request: Request) -> Response:
    try:
        viewer = _viewer(request)
        limit = int(request.query_params.get("limit", "50"))
    except _Refused as refused:
        return refused.response
    except ValueError:
        return _error(400, "limit must be a number")
    unread = request.query_params.get("unread", "") in ("1", "true", "yes")
    items = await run_in_threadpool(
        feed.page, get_database(), viewer, limit=limit, unread_only=unread
    )
    return JSONResponse({"notifications": items})


async def unread_count(request: Request) -> Response:
    try:
        viewer = _viewer(request)
    except _Refused as refused:
        return refused.response
    return JSONResponse(
        {"unread": await run_in_threadpool(feed.unread_count, get_database(), viewer)}
    )


async def mark_read(request: Request) -> Response:
    try:
        viewer = _viewer(request)
        notification_id = uuid.UUID(request.path_params["notification_id"])
    except _Refused as refused:
        return refused.response
    except ValueError:
        return _error(404, "no such notification")
    try:
        changed = await run_in_threadpool(feed.mark_read, get_database(), viewer, notification_id)
    except NotFoundError as exc:
        return _error(404, str(exc))
    return JSONResponse({"marked": changed})


async def mark_all_read(request: Request) -> Response:
    try:
        viewer = _viewer(request)
    except _Refused as refused:
        return refused.response
    return JSONResponse(
        {"marked": await run_in_threadpool(feed.mark_read, get_database(), viewer, None)}
    )


async def stream(request: Request) -> Response:
    try:
        viewer = _viewer(request)
    except _Refused as refused:
        return refused.response
    url = live.redis_url()
    events = _from_redis(url, viewer) if url else _from_database(viewer)
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _sse(event: dict[str, object]) -> str:
    return f"id: {event['id']}\nevent: notification\ndata: {json.dumps(event)}\n\n"


#: The last event of a stream whose token has expired.
EXPIRED = 'event: expired\ndata: {"error": "the feed token has expired"}\n\n'


def _left(viewer: Viewer) -> float:
    """Seconds until the viewer's token expires (0 once it has)."""
    return max(0.0, viewer.expires_at - time.time())


async def _from_redis(url: str, viewer: Viewer) -> AsyncIterator[str]:
    client = aioredis.Redis.from_url(url)
    pubsub = client.pubsub()
    await pubsub.subscribe(live.topic(viewer.organization_id, viewer.user_id))
    try:
        yield ": connected\n\n"
        quiet_since = time.monotonic()
        while _left(viewer) > 0:
            message = await pubsub.get_message(
                ignore_subscribe_messages=True, timeout=min(1.0, _left(viewer))
            )
            if message is not None and _left(viewer) > 0:
                quiet_since = time.monotonic()
                yield _sse(json.loads(message["data"]))
            elif time.monotonic() - quiet_since >= KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield ": keep-alive\n\n"
        yield EXPIRED
    finally:
        await pubsub.aclose()
        await client.aclose()


async def _from_database(viewer: Viewer) -> AsyncIterator[str]:
    since: datetime = utcnow()
    yield ": connected (polling)\n\n"
    idle = 0.0
    while _left(viewer) > 0:
        items = await run_in_threadpool(feed.page, get_database(), viewer, after=since)
        if _left(viewer) <= 0:
            break
        for item in items:
            since = max(since, datetime.fromisoformat(str(item["created_at"])))
            yield _sse(item)
        idle = 0.0 if items else idle + POLL_SECONDS
        if idle >= KEEPALIVE_SECONDS:
            idle = 0.0
            yield ": keep-alive\n\n"
        await asyncio.sleep(min(POLL_SECONDS, _left(viewer)))
    yield EXPIRED


routes: list[BaseRoute] = [
    Route("/", list_feed, methods=["GET"]),
    Route("/unread-count", unread_count, methods=["GET"]),
    Route("/read-all", mark_all_read, methods=["POST"]),
    Route("/stream", stream, methods=["GET"]),
    Route("/{notification_id}/read", mark_read, methods=["POST"]),
]
