"""The HTTP app: ``create_app()`` assembles the webhook receiver, the in-app feed, health
checks and metrics into one Starlette application, served by uvicorn (``plugs webhooks``).
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from workers.http import feed, webhooks


def _optional_routes(module: str) -> list[BaseRoute]:
    """Routes of a part that may not be installed in a slim build (health, metrics)."""
    from importlib import import_module

    try:
        return list(import_module(module).routes)
    except ImportError:
        return []


def create_app() -> Starlette:
    routes: list[BaseRoute] = [
        *webhooks.routes,
        *_optional_routes("workers.http.health"),
        *_optional_routes("workers.http.metrics"),
        Mount("/feed", routes=feed.routes),
    ]
    return Starlette(routes=routes)
