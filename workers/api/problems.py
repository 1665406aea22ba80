"""Errors as RFC 9457 problem documents (``application/problem+json``): a stable ``type``
per kind of error (:data:`PROBLEMS`), its ``title``, the ``status``, and a ``detail``
that says what to change.  Our exceptions, FastAPI's validation errors and Starlette's
404/405 all become one; anything unexpected is a 500 with no detail (it is logged)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException as StarletteHTTPException

from core.errors import (
    ConfigError,
    NotFoundError,
    PlatformConfigError,
    PlugsError,
    RateLimitedError,
    RetryableError,
    TenancyError,
)
from models.api_keys import IdempotencyConflict
from models.keyset import BadCursor

log = logging.getLogger(__name__)
MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "urn:plugs:problem:"

#: slug -> (status, title): the ``type`` of each problem is ``urn:plugs:problem:<slug>``.
PROBLEMS: dict[str, tuple[int, str]] = {
    "malformed-request": (400, "The request could not be read"),
    "unauthorized": (401, "A valid API key is needed"),
    "read-only-key": (403, "This API key may only read"),
    "not-found": (404, "Not found"),
    "method-not-allowed": (405, "Method not allowed"),
    "conflict": (409, "The operation is not possible in the resource's state"),
    "idempotency-key-in-use": (409, "A request with this Idempotency-Key is still running"),
    "idempotency-key-reused": (422, "This Idempotency-Key was used with another request"),
    "invalid-request": (422, "The request is not valid"),
    "credentials-refused": (422, "The vendor refused the credentials"),
    "rate-limited": (429, "Too many requests for this API key"),
    "internal-error": (500, "Internal error"),
    "unavailable": (503, "A service the platform needs is unavailable"),
}


class Problem(BaseModel):
    """An RFC 9457 problem document."""

    model_config = ConfigDict(extra="allow")

    type: str
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None


class ProblemError(Exception):
    """Raise to answer with the problem ``slug``."""

    def __init__(
        self,
        slug: str,
        detail: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or slug)
        self.slug = slug
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    slug: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    status, title = PROBLEMS[slug]
    body: dict[str, Any] = {"type": TYPE_BASE + slug, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]


def problem_of(exc: Exception) -> tuple[str, str | None, dict[str, str]]:
    """(slug, detail, headers) for one of our exceptions."""
    if isinstance(exc, ProblemError):
        return exc.slug, exc.detail, exc.headers
    if isinstance(exc, IdempotencyConflict):
        slug = "idempotency-key-in-use" if exc.in_progress else "idempotency-key-reused"
        return slug, str(exc), {}
    if isinstance(exc, RateLimitedError):
        wait = max(1, round(exc.retry_after or 1))
        return "rate-limited", _first_line(exc), {"Retry-After": str(wait)}
    if isinstance(exc, NotFoundError | LookupError):
        return "not-found", _first_line(exc), {}
    if isinstance(exc, PlatformConfigError | RetryableError):
        return "unavailable", _first_line(exc), {}
    if isinstance(exc, BadCursor | TenancyError):
        return "malformed-request", _first_line(exc), {}
    if isinstance(exc, ConfigError | ValueError):
        return "invalid-request", _first_line(exc), {}
    if isinstance(exc, PlugsError):
        return "conflict", _first_line(exc), {}
    return "internal-error", None, {}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    """Where and what, never the input (it may hold a credential)."""
    return [
        {"loc": [str(part) for part in error.get("loc", ())], "msg": str(error.get("msg", ""))}
        for error in exc.errors()
    ]


def install(app: FastAPI) -> None:
    """Answer every error of ``app`` with a problem document."""

    async def on_ours(request: Request, exc: Exception) -> JSONResponse:
        slug, detail, headers = problem_of(exc)
        extra = exc.extra if isinstance(exc, ProblemError) else {}
        if slug == "internal-error":
            log.error("api: %s %s failed", request.method, request.url.path, exc_info=exc)
        return problem_response(
            slug, detail, instance=request.url.path, headers=headers or None, **extra
        )

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors = _validation_errors(exc)
        if any(e.get("type") == "json_invalid" for e in exc.errors()):
            return problem_response(
                "malformed-request", "the body is not JSON", instance=request.url.path
            )
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)[:500]
        return problem_response("invalid-request", detail, instance=request.url.path, errors=errors)

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized"}.get(
            exc.status_code, "malformed-request"
        )
        headers = dict(exc.headers or {})
        return problem_response(
            slug, str(exc.detail), instance=request.url.path, headers=headers or None
        )

    async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
        # The database refused a value the models let through (a NUL byte, out of range).
        return problem_response(
            "invalid-request",
            "a value is not accepted by the database",
            instance=request.url.path,
        )

    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(DataError, on_data_error)
    app.add_exception_handler(ProblemError, on_ours)
    app.add_exception_handler(PlugsError, on_ours)
    app.add_exception_handler(LookupError, on_ours)
    app.add_exception_handler(ValueError, on_ours)
    app.add_exception_handler(Exception, on_ours)


#: The error answers every operation may give, for the OpenAPI document.
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": title}
    for status, title in {
        400: "Malformed request",
        401: "No valid API key",
        404: "Not found (or another organization's)",
        422: "Invalid request",
        429: "Rate limited (see Retry-After)",
    }.items()
}
#: And those of operations that change something.
WRITE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **RESPONSES,
    403: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": "Read-only API key"},
    409: {"model": Problem, "content": {MEDIA_TYPE: {}}, "description": "Conflict"},
}
