"""Per-user tokens of the in-app feed: ``<payload>.<signature>``, both base64url, the
payload ``{"o": organization, "u": user, "e": expiry}`` signed with HMAC-SHA256 under
``PLUGS_FEED_SECRET``.  The application that signs users in issues them
(:func:`issue`, or ``plugs notify token``); the feed only verifies them.

:func:`verify` compares bytes, so a token of any characters or bytes is either valid or
:class:`InvalidToken`, never another error; the viewer it returns carries the expiry, which
an open stream honours too."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from dataclasses import dataclass

from core.errors import ConfigError, PlugsError
from core.settings import get_settings

DEFAULT_TTL = 3600


class InvalidToken(PlugsError):
    """A feed token that is malformed, forged or expired."""


@dataclass(frozen=True)
class Viewer:
    """Whose feed a token opens."""

    organization_id: uuid.UUID
    user_id: uuid.UUID
    #: When the token stops opening the feed (Unix time, seconds).
    expires_at: int


def _key() -> bytes:
    secret = get_settings().feed_secret
    if secret is None or len(secret.get_secret_value()) < 16:
        raise ConfigError("the feed needs PLUGS_FEED_SECRET (16 characters or more)")
    return secret.get_secret_value().encode()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def issue(organization_id: uuid.UUID, user_id: uuid.UUID, *, ttl: int = DEFAULT_TTL) -> str:
    """A token that opens ``user_id``'s feed for ``ttl`` seconds."""
    payload = json.dumps(
        {"o": str(organization_id), "u": str(user_id), "e": int(time.time()) + ttl}
    )
    body = _b64(payload.encode())
    return f"{body}.{_b64(hmac.new(_key(), body.encode(), hashlib.sha256).digest())}"


def verify(token: str | bytes) -> Viewer:
    """The viewer of a valid token; :class:`InvalidToken` otherwise (for any input)."""
    raw = token if isinstance(token, bytes) else token.encode("utf-8", "surrogatepass")
    body, _, signature = raw.partition(b".")
    expected = _b64(hmac.new(_key(), body, hashlib.sha256).digest()).encode()
    if not signature or not hmac.compare_digest(signature, expected):
        raise InvalidToken("invalid feed token")
    try:
        payload = json.loads(_unb64(body))
        viewer = Viewer(uuid.UUID(payload["o"]), uuid.UUID(payload["u"]), int(payload["e"]))
    except (ValueError, KeyError, TypeError, AttributeError):
        raise InvalidToken("invalid feed token") from None
    if viewer.expires_at < time.time():
        raise InvalidToken("the feed token has expired")
    return viewer
