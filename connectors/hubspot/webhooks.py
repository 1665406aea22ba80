"""HubSpot webhook signatures (v3, and v1/v2 when allowed) and event parsing.

v3: ``base64(HMAC_SHA256(client_secret, METHOD + URI + body + timestamp))`` in
``X-HubSpot-Signature-v3``, ``X-HubSpot-Request-Timestamp`` in epoch milliseconds, rejected
when older than 5 minutes.  In the URI only ``%3A %2F %3F %40 %21 %24 %27 %28 %29 %2A %2C
%3B`` are decoded.  v1: ``hex(sha256(client_secret + body))``; v2 adds METHOD + URI.
Facts and worked examples: docs/vendors/hubspot.md#webhook-signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re

from connectors.base import WebhookEvent, WebhookRequest
from core.errors import AuthError

MAX_AGE_MS = 300_000
#: The headers that sign a delivery (v3 and the legacy v1/v2); each must come once.
SECURITY_HEADERS = (
    "x-hubspot-signature-v3",
    "x-hubspot-request-timestamp",
    "x-hubspot-signature",
    "x-hubspot-signature-version",
)
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def signing_uri(url: str) -> str:
    """The URI as HubSpot signs it: only the listed escapes decoded."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], url)


def v3_signature(secret: str, method: str, url: str, body: bytes, timestamp: str) -> str:
    message = method.upper().encode() + signing_uri(url).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def v1_signature(secret: str, body: bytes) -> str:
    return hashlib.sha256(secret.encode() + body).hexdigest()


def v2_signature(secret: str, method: str, url: str, body: bytes) -> str:
    return hashlib.sha256(
        secret.encode() + method.upper().encode() + url.encode() + body
    ).hexdigest()


def verify(request: WebhookRequest, secret: str, *, allow_legacy: bool = False) -> None:
    """Raise :class:`AuthError` unless the delivery is signed with ``secret`` and fresh."""
    headers = request.headers
    signature = headers.get("x-hubspot-signature-v3")
    if signature is not None:
        timestamp = headers.get("x-hubspot-request-timestamp", "")
        if not timestamp.isdigit():
            raise AuthError("missing or malformed X-HubSpot-Request-Timestamp")
        if abs(request.received_at * 1000 - int(timestamp)) > MAX_AGE_MS:
            raise AuthError("webhook timestamp outside the 5-minute window (replay?)")
        expected = v3_signature(secret, request.method, request.url, request.body, timestamp)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise AuthError("webhook signature (v3) does not match")
        return
    legacy = headers.get("x-hubspot-signature")
    version = headers.get("x-hubspot-signature-version", "").lower()
    if legacy is None or not allow_legacy or version not in ("v1", "v2"):
        raise AuthError("webhook is not signed with X-HubSpot-Signature-v3")
    if version == "v1":
        expected = v1_signature(secret, request.body)
    else:
        expected = v2_signature(secret, request.method, request.url, request.body)
    if not hmac.compare_digest(expected.encode(), legacy.encode()):
        raise AuthError(f"webhook signature ({version}) does not match")


def parse(request: WebhookRequest) -> list[WebhookEvent]:
    """HubSpot posts a JSON array of up to 100 events; ``subscriptionType`` (or the older
    ``eventType``) names each; ``eventId`` is not unique alone, so the key includes more."""
    events = json.loads(request.body)
    if not isinstance(events, list):
        raise ValueError("a HubSpot delivery is a JSON array of events")
    parsed = []
    for event in events:
        if not isinstance(event, dict) or "eventId" not in event:
            raise ValueError("a HubSpot event needs an eventId")
        kind = str(event.get("subscriptionType") or event.get("eventType") or "")
        if not kind:
            raise ValueError(f"event {event['eventId']} has no subscriptionType")
        key = f"{event.get('portalId')}:{event.get('subscriptionId')}:{event['eventId']}:{event.get('occurredAt')}"
        occurred = event.get("occurredAt")
        parsed.append(
            WebhookEvent(
                event_id=key,
                kind=kind,
                object_id=str(event["objectId"]) if event.get("objectId") is not None else None,
                occurred_at=occurred / 1000 if isinstance(occurred, int | float) else None,
                payload=event,
            )
        )
    return parsed
