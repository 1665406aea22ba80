"""The console as an ASGI app, mounted at ``/console`` by :mod:`workers.http.app`.

Signed session cookies (``plugs_console``: HttpOnly, SameSite=Lax, path ``/console``,
8 hours), the pages of :mod:`workers.console.pages`, the live run stream of
:mod:`workers.console.live`, and htmx served from the package (``static/``: no CDN, no
build step).  Without ``PLUGS_CONSOLE_SECRET`` outside the embedded default every console
page answers 503 saying so; the rest of the HTTP app is unaffected.
"""

from __future__ import annotations

import logging
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp

from core.errors import ConfigError
from core.settings import get_settings
from workers.console import auth, live, pages

log = logging.getLogger(__name__)
COOKIE = "plugs_console"
#: Seconds a session lasts after sign-in.
SESSION_SECONDS = 8 * 3600


def create_console() -> ASGIApp:
    """The console app; a 503 app naming the missing setting when it cannot sign cookies."""
    try:
        secret = auth.console_secret()
    except ConfigError as exc:
        log.warning("the console is off: %s", exc)
        return _unavailable(str(exc))
    p = pages
    return Starlette(
        routes=[
            Route("/", p.home),
            Route("/sign-in", p.sign_in_page, methods=["GET"]),
            Route("/sign-in", p.sign_in, methods=["POST"]),
            Route("/sign-out", p.sign_out, methods=["POST"]),
            Route("/organizations", p.organizations, methods=["GET", "POST"]),
            Route("/integrations", p.integrations_page, methods=["GET"]),
            Route("/integrations", p.add_integration, methods=["POST"]),
            Route("/integrations/{integration_id}", p.integration_page, methods=["GET"]),
            Route("/integrations/{integration_id}/chart.svg", p.chart_svg, methods=["GET"]),
            Route("/integrations/{integration_id}/webhooks", p.webhooks_page, methods=["GET"]),
            Route(
                "/integrations/{integration_id}/{action}", p.integration_action, methods=["POST"]
            ),
            Route("/runs/{run_id}", p.run_page, methods=["GET"]),
            Route("/runs/{run_id}/events", live.run_events, methods=["GET"]),
            Route("/runs/{run_id}/{action}", p.run_action, methods=["POST"]),
            Route("/notifications", p.notifications_page, methods=["GET"]),
            Mount("/static", StaticFiles(directory=Path(__file__).parent / "static")),
        ],
        middleware=[
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie=COOKIE,
                max_age=SESSION_SECONDS,
                path="/console",
                same_site="lax",
                # Secure when the installation is reached over https (PLUGS_PUBLIC_BASE_URL)
                https_only=(get_settings().public_base_url or "").startswith("https://"),
            )
        ],
        exception_handlers={
            auth.Refused: _refused,
            pages.NotHere: _not_here,
            HTTPException: _http_error,
        },
    )


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, auth.Refused)
    if exc.status == 401 and request.method == "GET":
        return pages._redirect(request, "/sign-in")
    if exc.status == 409:
        return pages._redirect(request, "/organizations")
    return pages._render(request, "error.html", None, status=exc.status, message=exc.message)


async def _not_here(request: Request, exc: Exception) -> Response:
    return pages._render(request, "error.html", None, status=404, message="not found")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return pages._render(request, "error.html", None, status=exc.status_code, message=exc.detail)


def _unavailable(message: str) -> ASGIApp:
    async def answer(request: Request) -> Response:
        return PlainTextResponse(message, status_code=503)

    return Starlette(routes=[Route("/{path:path}", answer, methods=["GET", "POST"])])
