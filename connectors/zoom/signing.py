"""Zoom's webhook signatures, as the connector verifies them (the simulator signs on its own).

``x-zm-signature = "v0=" + hex(HMAC_SHA256(secret, "v0:" + x-zm-request-timestamp + ":" +
raw body))``; the ``endpoint.url_validation`` answer is ``hex(HMAC_SHA256(secret,
plainToken))``.  Facts and worked examples: docs/vendors/zoom.md#webhook-signatures.
"""

from __future__ import annotations

import hashlib
import hmac


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """The ``x-zm-signature`` value of ``body`` sent at ``timestamp`` (epoch seconds)."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def encrypted_token(secret: str, plain_token: str) -> str:
    """The ``encryptedToken`` that answers a URL validation challenge."""
    return hmac.new(secret.encode(), plain_token.encode(), hashlib.sha256).hexdigest()
