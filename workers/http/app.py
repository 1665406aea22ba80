"""The HTTP app: ``create_app()`` assembles the webhook receiver, the in-app feed, health
checks and metrics into one Starlette application, served by uvicorn (``plugs webhooks``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

# The Celery app: what the HTTP app writes to the outbox is published through it.
from workers.app import app as _celery_app  # noqa: F401
from workers.http import feed, health, metrics, webhooks


def create_app() -> Starlette:
    routes: list[BaseRoute] = [
        *webhooks.routes,
        *health.routes,
        *metrics.routes,
        # /feed itself lists the feed (no redirect to /feed/ that drops a client's POST)
        Route("/feed", feed.list_feed, methods=["GET"]),
        Mount("/feed", routes=feed.routes),
    ]
    return Starlette(routes=routes)
