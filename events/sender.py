"""One signed POST of an event to an endpoint, by the Standard Webhooks specification.

Headers ``webhook-id`` (the event's id: the same on every attempt and every replay, so a
receiver deduplicates by it), ``webhook-timestamp`` (seconds, this attempt's) and
``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``, made by the
``standardwebhooks`` package).  The request goes out through our HTTP client and its
guard (:class:`connectors.http.VendorClient`, :mod:`connectors.egress`): never to a
non-public address (unless ``PLUGS_ALLOW_PRIVATE_URLS``), no redirect followed, one
attempt (retries are the delivery's, hours apart).  Any 2xx is a success.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType

from standardwebhooks import Webhook

from connectors.http import Action, VendorClient
from core.errors import PlugsError
from core.redaction import redact

#: Every status is returned to us: we log it and decide.
_EVERY_STATUS = MappingProxyType(dict.fromkeys(range(100, 600), Action.OK))
#: How much of an answer the attempt log keeps.
SNIPPET = 500


@dataclass(frozen=True)
class Sent:
    """What one attempt got: ``ok`` for a 2xx; the status (None without an answer), how
    long it took, and the start of the answer or why there was none, secrets removed."""

    ok: bool
    status_code: int | None
    duration_ms: int
    response: str


def signed_headers(secret: str, message_id: str, body: bytes, at: datetime) -> dict[str, str]:
    """The Standard Webhooks headers of ``body`` sent at ``at``."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(message_id, at, body),
        "content-type": "application/json",
    }


def send(url: str, secret: str, message_id: str, body: bytes, at: datetime) -> Sent:
    """POST ``body`` to ``url`` signed with ``secret``; never raises for the endpoint's
    failures (they are in the result)."""
    headers = signed_headers(secret, message_id, body, at)
    started = time.monotonic()
    try:
        with VendorClient(
            name="event endpoint", max_attempts=1, status_actions=_EVERY_STATUS
        ) as client:
            response = client.request("POST", url, content=body, headers=headers)
    except PlugsError as exc:  # unreachable, refused by the guard, timed out
        return Sent(False, None, _since(started), _clean(str(exc), secret))
    answer = f"{response.status_code} {response.reason_phrase}: {response.text[:SNIPPET]}"
    return Sent(
        200 <= response.status_code < 300,
        response.status_code,
        _since(started),
        _clean(answer, secret),
    )


def _since(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _clean(text: str, secret: str) -> str:
    return redact(" ".join(text.split()), [secret])[:SNIPPET]
