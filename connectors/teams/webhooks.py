"""Graph change notifications: the validation handshake, clientState checks, parsing.

* Validation (docs/vendors/teams.md#webhook-verification): Graph calls
  ``{notificationUrl}?validationToken=<opaque>`` when a subscription is created (and the
  lifecycle URL too) and wants, within 10 s, 200 ``text/plain`` with the URL-decoded token
  as the whole body.
* Deliveries are JSON ``{"value": [...]}``; every item carries the ``clientState`` we gave
  the subscription.  A delivery with any item whose clientState is not ours is refused.
* Change items name ``subscriptionId, changeType, resource, resourceData.id``; lifecycle
  items name ``lifecycleEvent`` instead (``reauthorizationRequired``,
  ``subscriptionRemoved``, ``missed``).
* The clientState is a secret that rides in the body: the inbox keeps the body with every
  clientState replaced by :data:`REDACTED` (:func:`stored_body`).
"""

from __future__ import annotations

import hmac
import json
from typing import Any

import httpx

from connectors.base import WebhookEvent, WebhookReply, WebhookRequest
from core.errors import AuthError
from core.redaction import REDACTED

LIFECYCLE = "lifecycle."


def handshake(request: WebhookRequest) -> WebhookReply | None:
    """The reply to Graph's validation request, or None for a delivery."""
    token = httpx.URL(request.url).params.get("validationToken")
    if token is None:
        return None
    return WebhookReply(status=200, body=token.encode(), media_type="text/plain")


def verify(request: WebhookRequest, client_state: str) -> None:
    """Raise :class:`AuthError` unless every item carries ``client_state``."""
    try:
        items = _items(request)
    except ValueError:
        raise AuthError("not a Graph notification delivery") from None
    expected = client_state.encode()
    for item in items:
        given = str(item.get("clientState") or "").encode()
        if not hmac.compare_digest(expected, given):
            raise AuthError("a notification's clientState does not match this integration's")


def parse(request: WebhookRequest) -> list[WebhookEvent]:
    """One event per notification; the event id is what makes a change unique (so a
    delivery Graph retries is stored once, see :meth:`Connector.webhook_delivery_id`)."""
    events = []
    for item in _items(request):
        subscription = str(item.get("subscriptionId") or "")
        if not subscription:
            raise ValueError("a Graph notification needs a subscriptionId")
        payload = {k: v for k, v in item.items() if k != "clientState"}  # a secret
        if item.get("lifecycleEvent"):
            lifecycle = str(item["lifecycleEvent"])
            expiry = item.get("subscriptionExpirationDateTime")
            key = f"{subscription}:{lifecycle}:{expiry}"
            events.append(WebhookEvent(key, LIFECYCLE + lifecycle, subscription, None, payload))
            continue
        data: dict[str, Any] = item.get("resourceData") or {}
        change, resource = item.get("changeType"), item.get("resource")
        if not change or not resource or not data.get("id"):
            raise ValueError(
                "a Graph change notification needs changeType, resource and resourceData.id"
            )
        key = f"{subscription}:{resource}:{change}:{data['id']}:{data.get('@odata.etag', '')}"
        events.append(WebhookEvent(key, str(change), str(data["id"]), None, payload))
    return events


def stored_body(request: WebhookRequest) -> bytes:
    """The delivery as JSON again with every ``clientState`` value replaced by
    :data:`REDACTED` (:func:`parse` ignores it; only :func:`verify` reads it)."""
    return json.dumps(_redact(json.loads(request.body))).encode()


def _client_state_once(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object, refused when it repeats ``clientState`` (which copy would we check?)."""
    if sum(1 for key, _ in pairs if key == "clientState") > 1:
        raise ValueError("a notification repeats its clientState")
    return dict(pairs)


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if k == "clientState" else _redact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item) for item in value]
    return value


def _items(request: WebhookRequest) -> list[dict[str, Any]]:
    body = json.loads(request.body, object_pairs_hook=_client_state_once)
    items = body.get("value") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise ValueError('a Graph notification delivery is {"value": [...]}')
    return items
