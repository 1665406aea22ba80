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

Nothing here calls a vendor.  Steps 4 to 7 run in threads of their own, as many as the
process has pooled database connections (``PLUGS_DATABASE_POOL_SIZE``): more threads would
only wait there for a connection, or open one that is closed again when returned.  The route
is served ahead of the rest of the app (:class:`ReceiverFirst`), and the integration lookup
is cached for :data:`CACHE_SECONDS`, refreshed in the background shortly before it expires.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from threading import Lock

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

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
#: One lookup of a key at a time: the others wait for its answer, not do it again.
_lookup_locks: dict[tuple[str, str], Lock] = {}
#: Bumped by forget_cached(): a lookup begun before is not cached.
_generation = [0]
#: Keys whose lookup is refreshed ahead of its expiry right now.
_refreshing: set[tuple[str, str]] = set()
#: A cached lookup this close to its expiry is looked up again in the background by the
#: next request, which still uses the one in hand: requests never all miss the cache at
#: once, and no answer rests on a lookup older than CACHE_SECONDS.
REFRESH_AHEAD = 1.0
#: The threads that do steps 4 to 7, as many as the process has pooled connections: a
#: plain executor (a request waits in its queue), lighter per request than anyio's threads.
_store_pool: list[ThreadPoolExecutor] = []


def _store_threads() -> ThreadPoolExecutor:
    if not _store_pool:
        with _cache_lock:
            if not _store_pool:
                workers = get_settings().database_pool_size
                _store_pool.append(ThreadPoolExecutor(workers, thread_name_prefix="webhook"))
    return _store_pool[0]


def _fresh(key: tuple[str, str]) -> _Known | None:
    known = _cache.get(key)
    return known if known is not None and known.expires >= time.monotonic() else None


def _cached(provider: str, integration_id: str) -> Connector | None:
    """The connector when a fresh lookup of it is cached (no thread needed), else None.
    Starts the background refresh of a lookup about to expire."""
    key = (provider, integration_id)
    known = _fresh(key)
    if known is None:
        return None
    if known.expires - time.monotonic() < REFRESH_AHEAD and key not in _refreshing:
        with _cache_lock:
            if key in _refreshing:
                return known.connector
            _refreshing.add(key)
        threading.Thread(target=_refresh, args=(key,), name="webhook-lookup", daemon=True).start()
    return known.connector


def _refresh(key: tuple[str, str]) -> None:
    """Look ``key`` up again before its cached lookup expires (in a thread of its own)."""
    started, generation = time.monotonic(), _generation[0]
    try:
        _remember(key, _lookup(*key), started, generation)
    except Exception as exc:  # noqa: BLE001 - the request at expiry looks up and answers
        reason = _reason(exc) if isinstance(exc, SQLAlchemyError) else type(exc).__name__
        log.warning("webhook receiver: could not refresh integration %s: %s", key[1], reason)
    finally:
        with _cache_lock:
            _refreshing.discard(key)


def _remember(
    key: tuple[str, str], found: Connector | None, started: float, generation: int
) -> _Known:
    """Cache a lookup begun at ``started``, unless the cache was emptied since."""
    known = _Known(found, started + CACHE_SECONDS)
    with _cache_lock:
        if generation != _generation[0]:
            return known
        if len(_cache) > 10_000:
            _cache.clear()
            _lookup_locks.clear()
        _cache[key] = known
    return known


def _connector(provider: str, integration_id: str) -> Connector:
    """The integration's connector (cached briefly), or 404 for anything not receivable."""
    key = (provider, integration_id)
    known = _fresh(key)
    if known is None:
        with _cache_lock:
            lock = _lookup_locks.setdefault(key, Lock())
        with lock:  # the requests that missed together wait for one lookup
            known = _fresh(key)
            if known is None:
                started, generation = time.monotonic(), _generation[0]
                try:
                    found = _lookup(provider, integration_id)
                except PlatformConfigError as exc:  # not cached: fixed keys take effect at once
                    log.error("integration %s cannot receive webhooks: %s", integration_id, exc)
                    raise _Refused(503, "unavailable, retry later", "our_configuration") from None
                known = _remember(key, found, started, generation)
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
        _generation[0] += 1
        _cache.clear()
        _lookup_locks.clear()


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
    """The route's endpoint (what :class:`ReceiverFirst` does not take first)."""
    provider = str(request.path_params["provider"])
    integration_id = str(request.path_params["integration_id"])
    return await _answer(request, provider, integration_id)


async def _answer(request: Request, provider: str, integration_id: str) -> Response:
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
        response, stored = await asyncio.get_running_loop().run_in_executor(
            _store_threads(), _receive, connector, vendor_request
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


class ReceiverFirst:
    """The HTTP app with the receiver's route taken first, as a plain ASGI endpoint: a
    GET or POST to ``/webhooks/{provider}/{integration_id}`` goes straight to the receiver,
    without the app's middleware and router layers; anything else, other methods on that
    path included, goes to ``app``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(PREFIX) and not scope.get("root_path"):
            provider, _, integration_id = path[len(PREFIX) :].partition("/")
            if (
                provider
                and integration_id
                and "/" not in integration_id
                and scope["method"] in ("GET", "POST")
            ):
                response = await _answer(Request(scope, receive), provider, integration_id)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)


PREFIX = "/webhooks/"
routes = [
    Route(
        "/webhooks/{provider}/{integration_id}",
        receive,
        methods=["GET", "POST"],
    )
]

__all__ = ["ReceiverFirst", "forget_cached", "receive", "routes"]
