"""Zoom webhook deliveries: signature and freshness, the URL validation challenge, parsing.

A delivery is ``{"event", "event_ts" (ms), "payload": {"account_id", "object"}}`` signed in
``x-zm-signature`` over ``v0:{x-zm-request-timestamp}:{raw body}`` (see
:mod:`connectors.zoom.signing`); one older than :data:`MAX_AGE` seconds (or that far in the
future) is refused as a possible replay.  Zoom retries a delivery with the same body, so the
delivery id is built from the event, its ``event_ts`` and the ids of its object.
Facts: docs/vendors/zoom.md#webhook-signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from connectors.base import JSONDict, WebhookEvent, WebhookReply, WebhookRequest
from connectors.zoom.signing import encrypted_token, signature
from core.errors import AuthError

#: Refuse deliveries whose timestamp is further than this from now (s); Zoom documents
#: no window (UNCONFIRMED), 5 minutes is common practice.
MAX_AGE = 300
VALIDATION = "endpoint.url_validation"
#: The headers that sign a delivery (and the validation challenge); each must come once.
SECURITY_HEADERS = ("x-zm-signature", "x-zm-request-timestamp")


def verify(request: WebhookRequest, secret: str, max_age: float = MAX_AGE) -> None:
    """Raise :class:`AuthError` unless the delivery is signed with ``secret`` and fresh."""
    timestamp = request.headers.get("x-zm-request-timestamp", "")
    given = request.headers.get("x-zm-signature", "")
    if not timestamp.isdigit():
        raise AuthError("missing or malformed x-zm-request-timestamp")
    if abs(request.received_at - int(timestamp)) > max_age:
        raise AuthError(f"webhook timestamp outside the {max_age:.0f}-second window (replay?)")
    expected = signature(secret, timestamp, request.body)
    if not hmac.compare_digest(expected.encode(), given.encode()):
        raise AuthError("webhook signature (x-zm-signature) does not match")


def _body(request: WebhookRequest) -> JSONDict:
    try:
        body = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"a Zoom delivery is a JSON object: {exc}") from None
    if not isinstance(body, dict) or not isinstance(body.get("event"), str):
        raise ValueError("a Zoom delivery is a JSON object with an event")
    return body


def handshake(
    request: WebhookRequest, secret: str, max_age: float = MAX_AGE
) -> WebhookReply | None:
    """The answer to ``endpoint.url_validation`` (verified like a delivery), else None."""
    try:
        body = json.loads(request.body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not isinstance(body, dict) or body.get("event") != VALIDATION:
        return None
    verify(request, secret, max_age)
    plain = (body.get("payload") or {}).get("plainToken")
    if not isinstance(plain, str) or not plain:
        raise ValueError("url_validation without a plainToken")
    answer = {"plainToken": plain, "encryptedToken": encrypted_token(secret, plain)}
    return WebhookReply(200, json.dumps(answer).encode(), "application/json")


def event_key(body: JSONDict) -> str:
    """Event + event_ts + the object's ids (meeting id and uuid, participant, registrant,
    join/leave time): the same for every retry of one event."""
    obj: dict[str, Any] = (body.get("payload") or {}).get("object") or {}
    person = obj.get("participant") or obj.get("registrant") or {}
    parts = [
        body.get("event"),
        body.get("event_ts"),
        obj.get("id"),
        obj.get("uuid"),
        person.get("participant_uuid") or person.get("user_id") or person.get("id"),
        person.get("join_time") or person.get("leave_time"),
    ]
    return ":".join("" if part is None else str(part) for part in parts)


def parse(request: WebhookRequest) -> list[WebhookEvent]:
    """A delivery carries one event."""
    body = _body(request)
    obj = (body.get("payload") or {}).get("object")
    if not isinstance(obj, dict):
        raise ValueError(f"{body['event']} delivery has no payload.object")
    ts = body.get("event_ts")
    return [
        WebhookEvent(
            event_id=event_key(body),
            kind=body["event"],
            object_id=str(obj["id"]) if obj.get("id") is not None else None,
            occurred_at=ts / 1000 if isinstance(ts, int | float) else None,
            payload=body,
        )
    ]


def delivery_id(events: list[WebhookEvent]) -> str:
    return hashlib.sha256("\n".join(e.event_id for e in events).encode()).hexdigest()
