"""Mailchimp audience webhooks: the URL secret, the form-encoded body, a stable delivery key.

Mailchimp signs nothing (docs/vendors/mailchimp.md#webhook-verification): it advises a
secret in the URL's query, which we check in constant time (``?secret=…``, the
``webhook_secret`` credential).  A delivery is
``application/x-www-form-urlencoded`` with PHP-style keys (``data[merges][FNAME]``) and
one event: ``type`` (subscribe, unsubscribe, profile, upemail, cleaned, campaign),
``fired_at`` (``YYYY-MM-DD HH:MM:SS``, UTC) and ``data``.  It carries no id, so the key
of a delivery is a hash of its fields in a canonical order: a retry of it (same bytes, or
the same fields reordered) is stored once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import urllib.parse
from typing import Any

from connectors.base import JSONDict, WebhookEvent, WebhookRequest
from connectors.mailchimp.mapping import parse_time, subscriber_hash
from core.errors import AuthError

KINDS = ("subscribe", "unsubscribe", "profile", "upemail", "cleaned", "campaign")
#: The query parameter holding the per-integration secret.
SECRET_PARAM = "secret"
_KEY = re.compile(r"^(?P<head>[^\[\]]+)(?P<rest>(?:\[[^\[\]]*\])*)$")


def url_secret(url: str) -> str:
    """The secret in a webhook URL's query ("" when there is none)."""
    values = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query).get(SECRET_PARAM)
    return values[-1] if values else ""


def verify(request: WebhookRequest, secret: str) -> None:
    """Raise :class:`AuthError` unless the URL carries ``secret`` (compared in constant time)."""
    given = url_secret(request.url)
    if not given:
        raise AuthError(f"webhook URL has no ?{SECRET_PARAM}= query parameter")
    if not hmac.compare_digest(given.encode("utf-8"), secret.encode("utf-8")):
        raise AuthError("webhook URL secret does not match")


def form_pairs(body: bytes) -> list[tuple[str, str]]:
    """The body's ``(key, value)`` pairs; ``ValueError`` when it is not a URL-encoded form."""
    try:
        text = body.decode("utf-8")
        return urllib.parse.parse_qsl(text, keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"a Mailchimp delivery is a URL-encoded form: {exc}") from None


def nest(pairs: list[tuple[str, str]]) -> JSONDict:
    """PHP-style keys as nested dicts: ``data[merges][FNAME]=Jane`` ->
    ``{"data": {"merges": {"FNAME": "Jane"}}}``."""
    tree: JSONDict = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise ValueError(f"malformed form key {key!r}")
        path = [match["head"], *re.findall(r"\[([^\[\]]*)\]", match["rest"])]
        node = tree
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"form key {key!r} conflicts with a value")
            node = child
        if isinstance(node.get(path[-1]), dict):
            raise ValueError(f"form key {key!r} conflicts with nested keys")
        node[path[-1]] = value
    return tree


def delivery_key(pairs: list[tuple[str, str]]) -> str:
    """A stable id of a delivery: SHA-256 of its fields in a canonical order."""
    canonical = urllib.parse.urlencode(sorted(pairs))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def parse(request: WebhookRequest) -> list[WebhookEvent]:
    """The one event of a delivery; ``ValueError`` when the body is malformed."""
    pairs = form_pairs(request.body)
    fields = nest(pairs)
    kind, data = fields.get("type"), fields.get("data")
    if not isinstance(kind, str) or not kind:
        raise ValueError("a Mailchimp delivery needs a type")
    if not isinstance(data, dict):
        raise ValueError(f"a Mailchimp {kind} delivery needs data[...] fields")
    try:
        fired = parse_time(fields.get("fired_at"))
    except ValueError:
        raise ValueError(f"fired_at {fields.get('fired_at')!r} is not a time") from None
    return [
        WebhookEvent(
            event_id=delivery_key(pairs),
            kind=kind,
            object_id=_object_id(kind, data),
            occurred_at=fired.timestamp() if fired else None,
            payload={"type": kind, "fired_at": fields.get("fired_at"), "data": data},
        )
    ]


def _object_id(kind: str, data: dict[str, Any]) -> str | None:
    if kind == "upemail":
        return str(data.get("new_id") or "") or None
    if kind == "campaign":
        return str(data.get("id") or "") or None
    email = data.get("email")
    return subscriber_hash(email) if isinstance(email, str) and email else None
