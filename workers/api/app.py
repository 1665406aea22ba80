"""``create_api()``: the FastAPI application mounted at ``/api/v1`` by
:func:`workers.http.app.create_app` -- its OpenAPI 3.1 document at
``/api/v1/openapi.json``, a docs page at ``/api/v1/docs``.

Resources add their router to :data:`ROUTERS`.
"""

from __future__ import annotations

import asyncio
import weakref

import anyio
from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from core.settings import get_settings
from workers.api import events, integrations, notifications, problems, runs, schedules, webhooks
from workers.api.idempotency import IdempotencyMiddleware

VERSION = "1.0.0"
PREFIX = "/api/v1"

#: Every resource's router, in the order the docs show them.
ROUTERS: list[APIRouter] = [
    integrations.router,
    schedules.router,
    runs.router,
    webhooks.router,
    notifications.router,
    events.router,
]

DESCRIPTION = """The Plugs' API for the product that embeds it: an organization's
integrations, their runs and schedules, webhook deliveries and notifications.

Authenticate with an API key of the organization (`plugs api-keys create`):
`Authorization: Bearer plugs_sk_...`.  A key sees only its organization: anything else
is a 404.  A read-only key gets 403 for every change.  Keys are rate limited (429 with
`Retry-After`).  POSTs accept an `Idempotency-Key` header: a repeat gets the first
answer.  Errors are RFC 9457 problem documents (`application/problem+json`) whose
`type` names the error (`urn:plugs:problem:<name>`)."""


class OneRequestPerConnection:
    """At most ``PLUGS_DATABASE_POOL_SIZE`` requests of the API at once per event loop (the
    others wait, holding no thread): an operation may open a second unit of work while its
    first still holds a connection (the outbox publishes after commit), so more requests at
    once than pooled connections could all wait for a second one that never comes."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._limiters: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, anyio.CapacityLimiter
        ] = weakref.WeakKeyDictionary()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = anyio.CapacityLimiter(get_settings().database_pool_size)
            self._limiters[loop] = limiter
        async with limiter:
            await self.app(scope, receive, send)


def create_api() -> FastAPI:
    api = FastAPI(
        title="The Plugs API",
        version=VERSION,
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        servers=[{"url": PREFIX}],
        root_path_in_servers=False,
    )
    problems.install(api)
    api.add_middleware(IdempotencyMiddleware)
    api.add_middleware(OneRequestPerConnection)  # added last: the outermost
    for router in ROUTERS:
        api.include_router(router)
    return api
