"""HubSpot webhook signatures and deliveries (docs/vendors/hubspot.md#webhook-signatures).

* v1: ``hex(sha256(client_secret + body))``
* v2: ``hex(sha256(client_secret + METHOD + URI + body))``
* v3: ``base64(HMAC-SHA256(client_secret, METHOD + URI + body + timestamp_ms))`` where the
  URI has only a fixed set of percent-escapes decoded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Sequence
from typing import Any

#: The only escapes v3 decodes in the URI before signing (docs/vendors/hubspot.md, step 2).
V3_DECODED = {
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
_V3_ESCAPE = re.compile("|".join(V3_DECODED), re.IGNORECASE)
#: Subscription types of contact events; a type's subscriptionId is 2001 + its position.
CONTACT_EVENTS = (
    "propertyChange",
    "creation",
    "deletion",
    "merge",
    "restore",
    "privacyDeletion",
    "associationChange",
)


def _bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else body


def v3_uri(uri: str) -> str:
    """``uri`` with only the escapes HubSpot's v3 scheme decodes, decoded (one pass)."""
    return _V3_ESCAPE.sub(lambda match: V3_DECODED[match.group(0).upper()], uri)


def sign_v1(secret: str, body: bytes | str) -> str:
    """The v1 signature: hex SHA-256 of the client secret followed by the raw body."""
    return hashlib.sha256(secret.encode("utf-8") + _bytes(body)).hexdigest()


def sign_v2(secret: str, method: str, uri: str, body: bytes | str = b"") -> str:
    """The v2 signature: hex SHA-256 of secret + METHOD + URI (as requested) + body."""
    prefix = f"{secret}{method.upper()}{uri}".encode()
    return hashlib.sha256(prefix + _bytes(body)).hexdigest()


def sign_v3(secret: str, method: str, uri: str, body: bytes | str, timestamp_ms: int) -> str:
    """The v3 signature: base64 HMAC-SHA256 of METHOD + decoded URI + body + timestamp."""
    message = f"{method.upper()}{v3_uri(uri)}".encode() + _bytes(body) + str(timestamp_ms).encode()
    digest = hmac.new(secret.encode("utf-8"), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def delivery(
    events: Sequence[dict[str, Any]], uri: str, client_secret: str, timestamp_ms: int
) -> tuple[dict[str, str], bytes]:
    """Headers and compact-JSON body of a POST of ``events`` to ``uri``, signed v3 and v1."""
    body = json.dumps(list(events), separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    headers = {
        "Content-Type": "application/json",
        "X-HubSpot-Signature-v3": sign_v3(client_secret, "POST", uri, body, timestamp_ms),
        "X-HubSpot-Request-Timestamp": str(timestamp_ms),
        "X-HubSpot-Signature": sign_v1(client_secret, body),
        "X-HubSpot-Signature-Version": "v1",
    }
    return headers, body


def subscription_type(kind: str) -> str:
    """``contact.<kind>`` for a short kind; a full ``object.kind`` passes through."""
    if "." in kind:
        return kind
    if kind not in CONTACT_EVENTS:
        raise ValueError(f"unknown contact event {kind!r}; use one of {CONTACT_EVENTS}")
    return f"contact.{kind}"
