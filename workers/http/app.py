"""The HTTP app: ``create_app()`` assembles the webhook receiver, the in-app feed, health
checks, metrics and the JSON API (``/api/v1``) into one Starlette application (the webhook
receiver's route taken ahead of it: ``webhooks.ReceiverFirst``), served by
uvicorn (``plugs webhooks``).
"""

from __future__ import annotations

import gc

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from models import session
from workers.api.app import PREFIX as API_PREFIX
from workers.api.app import create_api

# The Celery app: what the HTTP app writes to the outbox is published through it.
from workers.app import app as _celery_app  # noqa: F401
from workers.app import refuse_without_usable_keys
from workers.console.app import create_console
from workers.http import feed, health, metrics, webhooks


def serve() -> webhooks.ReceiverFirst:
    """The app as `plugs webhooks` serves it (uvicorn's factory, in each server process):
    short waits on the database, so a silent database gets a 503 in seconds, not a hang.

    What the start-up made (modules, models, routes: some 200,000 objects) lives as long as
    the process, so the garbage collector stops scanning it (``gc.freeze``): a full
    collection over it stalls every request in flight for tens of milliseconds."""
    session.use_profile("http")
    app = create_app()
    gc.freeze()
    return app


def create_app() -> webhooks.ReceiverFirst:
    # Like the worker and beat: without usable credential keys, one line and no start.
    refuse_without_usable_keys("the HTTP app")
    routes: list[BaseRoute] = [
        *webhooks.routes,
        *health.routes,
        *metrics.routes,
        # /feed itself lists the feed (no redirect to /feed/ that drops a client's POST)
        Route("/feed", feed.list_feed, methods=["GET"]),
        Mount("/feed", routes=feed.routes),
        Mount("/console", app=create_console()),  # the web console (workers/console)
        # the JSON API (workers/api): OpenAPI at /api/v1/openapi.json, docs at /api/v1/docs
        Mount(API_PREFIX, app=create_api()),
    ]
    return webhooks.ReceiverFirst(Starlette(routes=routes))  # the hot route first
