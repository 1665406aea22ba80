"""``GET /metrics``: the Prometheus exposition of this process's registry, with the
platform's scrape-time gauges (:class:`workers.metrics.PlatformCollector`).

``routes`` are mounted at the root by :mod:`workers.http.app`.  The text format by default,
OpenMetrics when the scraper asks for it (``Accept: application/openmetrics-text``).
"""

from __future__ import annotations

from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from workers.metrics import register

register(REGISTRY)


async def metrics(request: Request) -> Response:
    """Every metric of the registry; the database and broker are read in a thread."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    body = await run_in_threadpool(encoder, REGISTRY)
    return Response(body, media_type=content_type)


routes: list[BaseRoute] = [Route("/metrics", metrics, methods=["GET"])]
