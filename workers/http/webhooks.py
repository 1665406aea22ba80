"""The webhook receiver: ``/webhooks/{provider}/{integration_id}`` for every connector.

Order of work for every request (docs/architecture.md#the-life-of-a-webhook-delivery):

1. refuse a body over the size limit with 413 before reading it whole (Content-Length
   first, then while streaming);
2. find the integration: unknown, deleted (removed) or of another provider -> 404, the
   same answer for all of them; credentials our keys cannot open -> 503 (our fault: the
   vendor retries).  A paused integration's deliveries are verified and stored as usual
   but not handed to the workers: they wait in the inbox until it resumes;
3. refuse a request that repeats a security header or parameter the connector declares
   (``webhook_security_headers``/``webhook_security_params``: its signature, timestamp,
   Authorization, URL secret) with 400 before anything is verified: the copy we would
   check need not be the copy a proxy or another reader checked;
4. a vendor handshake (Mailchimp's GET, Zoom's url_validation, Graph's validationToken)
   is answered by the connector;
5. verify the signature on the raw bytes with the integration's secret -> 401;
6. parse the events (malformed -> 400 with a short reason);
7. store the delivery in the inbox (``ON CONFLICT DO NOTHING`` on the vendor's delivery
   id) and commit; if that fails the answer is 503, never 2xx;
8. answer 2xx, and hand the delivery to the workers in a batch (:mod:`workers.http.handoff`;
   a lost message is re-enqueued by the inbox sweeper: the stored row is the record, the
   broker only a transport).

Nothing here calls a vendor.  Steps 4 to 7 run in the thread pool, at most as many at once
as the process has pooled database connections (``PLUGS_DATABASE_POOL_SIZE``): more threads
would only wait there for a connection, or open one that is closed again when returned.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
import weakref
from dataclasses import dataclass
from threading import Lock

import anyio
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from connectors import loading
from connectors.base import Connector, WebhookRequest
from core.errors import AuthError, ConfigError, PlatformConfigError, PlugsError
from core.settings import get_settings
from models.integrations import Integration
from models.session import get_database
from runs import inbox
from workers.http.handoff import handoff
from workers.metrics import WEBHOOK_DELIVERIES

log = logging.getLogger(__name__)
#: How long a looked-up integration (and its decrypted credentials) is reused.
CACHE_SECONDS = 5.0


class _Refused(Exception):
    """A request answered with ``status`` and a short public ``reason``."""

    def __init__(self, status: int, reason: str, metric: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.metric = status, reason, metric


@dataclass(frozen=True)
class _Known:
    connector: Connector | None  # None: no such (active) integration
    expires: float


_cache: dict[tuple[str, str], _Known] = {}
_cache_lock = Lock()
#: Per event loop (tests run several): the threads that may do steps 4 to 7 at once.
_store_threads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
    weakref.WeakKeyDictionary()
)


def _store_limiter() -> anyio.CapacityLimiter:
    loop = asyncio.get_running_loop()
    limiter = _store_threads.get(loop)
    if limiter is None:
        limiter = anyio.CapacityLimiter(get_settings().database_pool_size)
        _store_threads[loop] = limiter
    return limiter


def _fresh(provider: str, integration_id: str) -> _Known | None:
    known = _cache.get((provider, integration_id))
    return known if known is not None and known.expires >= time.monotonic() else None


def _cached(provider: str, integration_id: str) -> Connector | None:
    """The connector when a fresh lookup of it is cached (no thread needed), else None."""
    known = _fresh(provider, integration_id)
    return known.connector if known is not None else None


def _connector(provider: str, integration_id: str) -> Connector:
    """The integration's connector (cached briefly), or 404 for anything not receivable."""
    known = _fresh(provider, integration_id)
    if known is None:
        try:
            found = _lookup(provider, integration_id)
        except PlatformConfigError as exc:  # not cached: fixing the keys takes effect at once
            log.error("integration %s cannot receive webhooks: %s", integration_id, exc)
            raise _Refused(503, "unavailable, retry later", "our_configuration") from None
        known = _Known(found, time.monotonic() + CACHE_SECONDS)
        with _cache_lock:
            if len(_cache) > 10_000:
                _cache.clear()
            _cache[(provider, integration_id)] = known
    if known.connector is None:
        raise _Refused(404, "not found", "unknown_integration")
    return known.connector


def _lookup(provider: str, integration_id: str) -> Connector | None:
    try:
        wanted = uuid.UUID(integration_id)
    except ValueError:
        return None
    with get_database().system("webhook receiver: find the integration") as session:
        integration = session.scalar(select(Integration).where(Integration.id == wanted))
        if integration is None or integration.provider != provider:
            return None
        session.expunge(integration)
    try:
        return loading.open_connector(integration)
    except PlatformConfigError:
        raise
    except PlugsError as exc:  # no such connector installed
        log.warning("integration %s cannot receive webhooks: %s", integration_id, exc)
        return None


def forget_cached() -> None:
    """Drop looked-up integrations (tests and credential changes)."""
    with _cache_lock:
        _cache.clear()


async def _read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise _Refused(400, "bad Content-Length", "malformed")
        if int(declared) > limit:
            raise _Refused(413, "body too large", "too_large")
    body = bytearray()
    try:
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise _Refused(413, "body too large", "too_large")
    except ClientDisconnect:
        raise _Refused(400, "client went away", "disconnected") from None
    return bytes(body)


def _refuse_repeated(connector: Connector, request: Request) -> None:
    """400 when a security header or parameter of the connector comes more than once."""
    for name in connector.webhook_security_headers:
        if len(request.headers.getlist(name)) > 1:
            raise _Refused(400, f"header {name} repeated", "repeated_security_header")
    for name in connector.webhook_security_params:
        if len(request.query_params.getlist(name)) > 1:
            raise _Refused(400, f"query parameter {name} repeated", "repeated_security_header")


def _webhook_request(request: Request, body: bytes, received_at: float) -> WebhookRequest:
    return WebhookRequest(
        method=request.method,
        url=str(request.url),
        headers={k.lower(): v for k, v in request.headers.items()},
        body=body,
        received_at=received_at,
    )


def _receive(connector: Connector, request: WebhookRequest) -> tuple[Response, inbox.Stored | None]:
    """Steps 4 to 7, in the thread pool."""
    provider = connector.provider
    try:
        reply = connector.webhook_handshake(request)
    except AuthError:
        raise _Refused(401, "signature does not verify", "bad_signature") from None
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        raise _Refused(400, "malformed handshake", "malformed") from None
    if reply is not None:
        WEBHOOK_DELIVERIES.labels(provider, "accepted", "handshake").inc()
        return Response(reply.body, reply.status, media_type=reply.media_type), None
    if request.method != "POST":
        raise _Refused(405, "method not allowed", "method")
    try:
        connector.verify_webhook(request)
    except (AuthError, ConfigError, ValueError):  # a header that does not even parse, too
        raise _Refused(401, "signature does not verify", "bad_signature") from None
    try:
        events = connector.parse_webhook(request)
        key = connector.webhook_delivery_id(request, events)
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = f"malformed delivery: {type(exc).__name__}"
        raise _Refused(400, reason, "malformed") from None
    try:
        stored = inbox.store(get_database(), connector, request, key, len(events))
    except SQLAlchemyError as exc:
        log.error("webhook inbox unavailable: %s", _reason(exc))
        raise _Refused(503, "inbox unavailable, retry later", "inbox_unavailable") from None
    WEBHOOK_DELIVERIES.labels(provider, "accepted", "stored" if stored.new else "duplicate").inc()
    status = connector.webhook_ack_status
    return Response(status_code=status), stored


def _reason(exc: SQLAlchemyError) -> str:
    """The database's own first line (the log filter removes any secret in it)."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


async def receive(request: Request) -> Response:
    provider = str(request.path_params["provider"])
    integration_id = str(request.path_params["integration_id"])
    received_at = time.time()
    label = provider if len(provider) <= 32 and provider.isidentifier() else "unknown"
    try:
        limit = get_settings().webhook_max_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _Refused(413, "body too large", "too_large")
        connector = _cached(provider, integration_id)
        if connector is None:
            connector = await run_in_threadpool(_connector, provider, integration_id)
        label = connector.provider
        _refuse_repeated(connector, request)
        body = await _read_body(request, min(limit, connector.webhook_max_bytes))
        vendor_request = _webhook_request(request, body, received_at)
        response, stored = await anyio.to_thread.run_sync(
            _receive, connector, vendor_request, limiter=_store_limiter()
        )
    except _Refused as refused:
        WEBHOOK_DELIVERIES.labels(label, "rejected", refused.metric).inc()
        return JSONResponse({"error": refused.reason}, refused.status)
    except SQLAlchemyError as exc:  # the integration lookup itself could not run
        log.error("webhook receiver: database unavailable: %s", _reason(exc))
        WEBHOOK_DELIVERIES.labels(label, "rejected", "inbox_unavailable").inc()
        return JSONResponse({"error": "unavailable, retry later"}, 503)
    if stored is not None and stored.new and connector.integration.is_active:
        handoff().put(stored.organization_id, stored.delivery_id)
    return response


routes = [
    Route(
        "/webhooks/{provider}/{integration_id}",
        receive,
        methods=["GET", "POST"],
    )
]

__all__ = ["forget_cached", "receive", "routes"]
