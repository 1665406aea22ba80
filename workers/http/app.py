"""The HTTP app: ``create_app()`` assembles the webhook receiver, the in-app feed, health
checks and metrics into one Starlette application, served by uvicorn (``plugs webhooks``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount, Route

from models import session

# The Celery app: what the HTTP app writes to the outbox is published through it.
from workers.app import app as _celery_app  # noqa: F401
from workers.app import refuse_without_usable_keys
from workers.http import feed, health, metrics, webhooks


def serve() -> Starlette:
    """The app as `plugs webhooks` serves it (uvicorn's factory, in each server process):
    short waits on the database, so a silent database gets a 503 in seconds, not a hang."""
    session.use_profile("http")
    return create_app()


def create_app() -> Starlette:
    # Like the worker and beat: without usable credential keys, one line and no start.
    refuse_without_usable_keys("the HTTP app")
    routes: list[BaseRoute] = [
        *webhooks.routes,
        *health.routes,
        *metrics.routes,
        # /feed itself lists the feed (no redirect to /feed/ that drops a client's POST)
        Route("/feed", feed.list_feed, methods=["GET"]),
        Mount("/feed", routes=feed.routes),
    ]
    return Starlette(routes=routes)
