"""A run's page, live: a server-sent event stream of its progress.

``GET /console/runs/{id}/events`` sends ``event: progress`` with the page's progress table
(HTML, swapped in by htmx's SSE extension) whenever it changes, every half second at most,
and ``event: finished`` once the run has ended, then closes.  It reads what `plugs runs
watch` reads (:func:`runs.progress.run_progress`), in the organization's tenant session.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from models.session import Database
from workers.console import pages

#: Seconds between two reads of the run's progress.
POLL_SECONDS = 0.5
#: A comment this often keeps proxies from closing a quiet stream.
KEEPALIVE_SECONDS = 15.0
#: A stream ends after this long (the browser opens a new one).
LONGEST_SECONDS = 3600.0


def _event(name: str, html: str) -> str:
    data = "".join(f"data: {line}\n" for line in html.splitlines() or [""])
    return f"event: {name}\n{data}\n"


async def run_events(request: Request) -> Response:
    db, _viewer, org_id = await pages._viewer(request)
    run_id = pages._uuid(request, "run_id")
    first = await pages._blocking(pages.progress_context, db, org_id, run_id)  # 404 first
    return StreamingResponse(
        _stream(request, db, org_id, run_id, first),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def _stream(
    request: Request,
    db: Database,
    org_id: uuid.UUID,
    run_id: uuid.UUID,
    context: dict[str, object],
) -> AsyncIterator[str]:
    template = pages.templates.get_template("progress.html")
    started = quiet = time.monotonic()
    shown = None
    while time.monotonic() - started < LONGEST_SECONDS:
        html = template.render(**context)
        if html != shown:
            shown, quiet = html, time.monotonic()
            yield _event("progress", html)
        elif time.monotonic() - quiet > KEEPALIVE_SECONDS:
            quiet = time.monotonic()
            yield ": keep-alive\n\n"
        progress = context["progress"]
        if getattr(progress, "finished", False):
            yield _event("finished", "")
            return
        if await request.is_disconnected():
            return
        await asyncio.sleep(POLL_SECONDS)
        context = await pages._blocking(pages.progress_context, db, org_id, run_id)
