"""``Idempotency-Key`` on POSTs: the first answer to a key is stored (per API key, in the
database: :mod:`models.api_keys`) and a repeat of the same request gets it back, marked
``Idempotent-Replayed: true``, without doing anything again.  The same key with another
request is a 422, a repeat while the first is still answered a 409.  An answer of 5xx or
429 is not kept: the request may be made again.
"""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models.api_keys import (
    StoredResponse,
    claim_idempotency_key,
    fingerprint,
    store_response,
)
from models.session import get_database
from workers.api.auth import identify_async
from workers.api.problems import problem_of, problem_response

HEADER = "idempotency-key"
#: Response headers kept with a stored answer.
_KEPT = ("content-type", "location")


class IdempotencyMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        key = Headers(scope=scope).get(HEADER)
        if key is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        if not 0 < len(key) <= 255 or not key.isprintable():
            await problem_response(
                "malformed-request",
                "an Idempotency-Key has 1 to 255 printable characters",
                instance=request.url.path,
            )(scope, receive, send)
            return
        db = get_database()
        body = await request.body()
        try:
            identity = await identify_async(request)
            stored = await run_in_threadpool(
                claim_idempotency_key,
                db,
                identity,
                key,
                fingerprint("POST", request.url.path + "?" + request.url.query, body),
            )
        except Exception as exc:  # a problem document, as the app would answer
            slug, detail, headers = problem_of(exc)
            if slug == "internal-error":
                raise
            await problem_response(
                slug, detail, instance=request.url.path, headers=headers or None
            )(scope, receive, send)
            return
        if stored is not None:
            replayed = Response(
                stored.body,
                status_code=stored.status_code,
                headers={**stored.headers, "idempotent-replayed": "true"},
            )
            await replayed(scope, receive, send)
            return

        sent_body = False

        async def replay_body() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        status = 500
        kept_headers: dict[str, str] = {}
        chunks: list[bytes] = []
        kept = False

        async def capture(message: Message) -> None:
            nonlocal status, kept
            if message["type"] == "http.response.start":
                status = int(message["status"])
                for name, value in message.get("headers", []):
                    if name.decode("latin-1").lower() in _KEPT:
                        kept_headers[name.decode("latin-1").lower()] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    # kept before the client has the answer, so a repeat finds it
                    keep = status < 500 and status != 429
                    answer = (
                        StoredResponse(status, kept_headers, b"".join(chunks)) if keep else None
                    )
                    await run_in_threadpool(store_response, db, identity, key, answer)
                    kept = True
            await send(message)

        try:
            await self.app(scope, replay_body, capture)
        finally:
            if not kept:
                await run_in_threadpool(store_response, db, identity, key, None)
