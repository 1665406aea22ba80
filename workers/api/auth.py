"""Who is calling: ``Authorization: Bearer plugs_sk_...``, checked against the
organization's API keys (:func:`models.api_keys.authenticate`), then the key's rate
limit (requests per minute, shared through Redis when ``PLUGS_REDIS_URL`` is set).

:func:`current_key` is the dependency of every operation; :func:`writable_key` of every
one that changes something (a read-only key gets 403).  The key is the actor of the
audit rows the request's changes write (:mod:`models.audit_trail`).  A request is identified once:
the idempotency middleware and the dependency share the answer (``request.state``).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from connectors.ratelimit import Limit, limiter_from_settings
from core.settings import get_settings
from models.api_keys import ApiKeyIdentity, authenticate
from models.audit_trail import act_as
from models.session import get_database
from workers.api.problems import ProblemError

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ApiKey",
    description="An API key of the organization: `Authorization: Bearer plugs_sk_...` "
    "(`plugs api-keys create`).",
)
_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="plugs"'}


def _presented(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def identify(request: Request) -> ApiKeyIdentity:
    """The key of the request, rate limit taken (blocking: call from a thread)."""
    known = getattr(request.state, "api_key", None)
    if isinstance(known, ApiKeyIdentity):
        return known
    presented = _presented(request)
    if presented is None:
        raise ProblemError(
            "unauthorized",
            "send an API key: Authorization: Bearer plugs_sk_...",
            headers=_UNAUTHORIZED,
        )
    identity = authenticate(get_database(), presented)
    if identity is None:
        raise ProblemError(
            "unauthorized",
            "the API key is not valid (unknown, revoked or malformed)",
            headers=_UNAUTHORIZED,
        )
    limiter = limiter_from_settings(get_settings())
    limiter.acquire(f"api-key:{identity.id}", Limit(identity.rate_limit, 60.0), max_wait=0)
    request.state.api_key = identity
    return identity


async def identify_async(request: Request) -> ApiKeyIdentity:
    known = getattr(request.state, "api_key", None)
    if isinstance(known, ApiKeyIdentity):
        return known
    return await run_in_threadpool(identify, request)


async def current_key(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> ApiKeyIdentity:
    """The calling key (401 problem without a valid one, 429 over its rate limit); the
    actor of the audit rows of the request's changes (set in the request's context, which
    the operation's thread inherits)."""
    key = await identify_async(request)
    act_as(key.actor(f"{request.method} {request.url.path}"))
    return key


async def writable_key(key: Annotated[ApiKeyIdentity, Depends(current_key)]) -> ApiKeyIdentity:
    """The calling key, if it may change things (403 problem for a read-only key)."""
    if key.read_only:
        raise ProblemError("read-only-key", f"the API key {key.name!r} is read-only")
    return key
