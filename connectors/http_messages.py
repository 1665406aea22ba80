"""Short, scrubbed descriptions of failed vendor calls, safe for operators and logs.

A description names the method, the path (never the query string), the status and the
vendor's own error code and message when the body is JSON.  It goes through the one
scrubber (:mod:`core.redaction`) with the request's secrets: every value of its credential
headers, query string and secret-named form fields, so a secret a vendor echoes back is cut
out in any case or encoding, as is anything shaped like a secret.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Final
from urllib.parse import parse_qsl

import httpx

from connectors.http_rate_headers import json_body
from core.redaction import SECRET_HEADERS, is_secret_name, redact

#: Longest vendor detail kept in a message.
MAX_DETAIL: Final = 300
#: Longest vendor detail read (and scrubbed) before it is cut to :data:`MAX_DETAIL`.
MAX_SCRUBBED: Final = 64 * 1024


def describe(request: httpx.Request, outcome: str, body: dict[str, Any] | None = None) -> str:
    """``"GET /crm/v3/objects/contacts -> 400: VALIDATION_ERROR: ..."``, scrubbed."""
    text = f"{request.method} {request.url.path} -> {outcome}"
    # Scrubbed whole, then cut: a cut first could leave the start of a secret behind.
    detail = scrub(vendor_detail(body or {})[:MAX_SCRUBBED], request)[:MAX_DETAIL]
    if detail:
        text = f"{text}: {detail}"
    return scrub(text, request)


def describe_response(response: httpx.Response) -> str:
    """The description of a response with an unwanted status."""
    return describe(response.request, str(response.status_code), json_body(response))


def vendor_detail(body: dict[str, Any]) -> str:
    """The vendor's error code and message from the usual JSON shapes (HubSpot ``category``
    and ``message``, Mailchimp ``title`` and ``detail``, Zoom ``code`` and ``message``,
    Graph ``error.code`` and ``error.message``, OAuth ``error`` and ``error_description``),
    whole: :func:`describe` scrubs it, then cuts it."""
    if isinstance(body.get("error"), dict):
        body = body["error"]
    code = _first(body, "category", "code", "title", "error")
    message = _first(body, "message", "detail", "error_description")
    return ": ".join(part for part in (code, message) if part)


def _first(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return " ".join(str(value).split())
    return ""


def scrub(text: str, request: httpx.Request) -> str:
    """``text`` without the request's secrets (in any case or encoding) or anything shaped
    like one."""
    return redact(text, secrets_of(request))


def secrets_of(request: httpx.Request) -> set[str]:
    """The values a message must not contain: credential headers (and their parts, a Basic
    pair decoded), every query-string value and the secret-named fields of a form body."""
    found: set[str] = set()
    for name in SECRET_HEADERS:
        for value in request.headers.get_list(name):
            found.add(value)
            scheme, _, credential = value.partition(" ")
            found.add(credential.strip())
            if scheme.lower() == "basic":
                found.update(_basic_parts(credential.strip()))
    found.update(value for _, value in request.url.params.multi_items())
    found.update(value for name, value in _form_fields(request) if is_secret_name(name))
    return {value for value in found if value}


def _form_fields(request: httpx.Request) -> list[tuple[str, str]]:
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return []
    try:
        return parse_qsl(request.content.decode("utf-8", "replace"), keep_blank_values=True)
    except httpx.RequestNotRead:
        return []


def _basic_parts(token: str) -> list[str]:
    try:
        return base64.b64decode(token, validate=True).decode("utf-8").split(":", 1)
    except (binascii.Error, UnicodeDecodeError):
        return []
