"""Health checks: ``GET /healthz`` (liveness) and ``GET /readyz`` (readiness).

``/healthz`` answers as long as the process serves requests and touches nothing else, so
a slow database never gets a healthy process restarted.  ``/readyz`` checks what a request
needs: the database answers, the schema is at the migrations' head, the broker accepts a
connection; it answers 503 with a JSON body naming each check that failed::

    {"status": "unavailable",
     "checks": {"database": {"ok": false, "detail": "OperationalError: connection ..."},
                "migrations": {"ok": false, "detail": "not checked: database unreachable"},
                "broker": {"ok": true, "detail": "reachable"}}}

Each check runs in a thread with a deadline; details are redacted like log records.
``routes`` are mounted at the root by :mod:`workers.http.app`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Final

import anyio
from sqlalchemy import text
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from core.redaction import Redactor
from core.settings import get_settings
from models import migrate
from models.session import get_database

#: Seconds each readiness check may take before it counts as failed.
CHECK_TIMEOUT: Final = 5.0


@dataclass(frozen=True)
class Check:
    """The outcome of one readiness check."""

    ok: bool
    detail: str


def check_database() -> dict[str, Check]:
    """The database answers, and its schema is the one this code expects."""
    try:
        with get_database().engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            at_head = migrate.is_at_head(connection)
            current = migrate.current_revision(connection)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {
            "database": Check(False, _describe(exc)),
            "migrations": Check(False, "not checked: database unreachable"),
        }
    migrations = (
        Check(True, f"at head {current}")
        if at_head
        else Check(False, f"at {current or 'no revision'}, head is {migrate.head_revision()}")
    )
    return {"database": Check(True, "reachable"), "migrations": migrations}


def check_broker() -> dict[str, Check]:
    """The broker accepts a connection (one try, short timeout)."""
    from workers.app import app

    try:
        with app.connection_for_write(connect_timeout=CHECK_TIMEOUT) as connection:
            connection.ensure_connection(max_retries=1, timeout=CHECK_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return {"broker": Check(False, _describe(exc))}
    return {"broker": Check(True, "reachable")}


def _describe(exc: BaseException) -> str:
    first = (str(exc).strip() or "no detail").splitlines()[0]
    return Redactor.from_settings(get_settings())(f"{type(exc).__name__}: {first}")[:300]


async def _run(check: Callable[[], dict[str, Check]], names: tuple[str, ...]) -> dict[str, Check]:
    with anyio.move_on_after(CHECK_TIMEOUT):
        return await anyio.to_thread.run_sync(check, abandon_on_cancel=True)
    return {name: Check(False, f"no answer within {CHECK_TIMEOUT:g}s") for name in names}


async def readiness() -> dict[str, Check]:
    """Every readiness check, by name."""
    return {
        **await _run(check_database, ("database", "migrations")),
        **await _run(check_broker, ("broker",)),
    }


async def healthz(request: Request) -> JSONResponse:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def readyz(request: Request) -> JSONResponse:
    """Readiness: 200 when every check passes, else 503 naming the failed ones."""
    checks = await readiness()
    ready = all(check.ok for check in checks.values())
    body = {
        "status": "ready" if ready else "unavailable",
        "failed": sorted(name for name, check in checks.items() if not check.ok),
        "checks": {name: asdict(check) for name, check in checks.items()},
    }
    return JSONResponse(body, status_code=200 if ready else 503)


routes: list[BaseRoute] = [
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
]
