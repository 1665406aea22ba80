"""Short, scrubbed descriptions of failed vendor calls, safe for operators and logs.

A description names the method, the path (never the query string), the status and the
vendor's own error code and message when the body is JSON.  Every value of the request's
credential headers and query string is cut out of it, as are ``Bearer ...`` and
``token=...`` shapes, in case a vendor echoes a secret back.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any, Final

import httpx

from connectors.http_rate_headers import json_body

#: Request headers whose values are secrets.
SECRET_HEADERS: Final = (
    "authorization",
    "proxy-authorization",
    "cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
)
#: Longest vendor detail kept in a message.
MAX_DETAIL: Final = 300
REDACTED: Final = "[redacted]"
_SECRET_SHAPES: Final = (
    re.compile(r"(?i)\b(bearer|basic|token)\s+[\w\-.~+/]+=*"),
    re.compile(r"(?i)\b([\w-]*(?:key|token|secret|password|signature)[\w-]*)=([^&\s\"']+)"),
)
_MIN_SECRET: Final = 4


def describe(request: httpx.Request, outcome: str, body: dict[str, Any] | None = None) -> str:
    """``"GET /crm/v3/objects/contacts -> 400: VALIDATION_ERROR: ..."``, scrubbed."""
    text = f"{request.method} {request.url.path} -> {outcome}"
    detail = vendor_detail(body or {})
    if detail:
        text = f"{text}: {detail}"
    return scrub(text, request)


def describe_response(response: httpx.Response) -> str:
    """The description of a response with an unwanted status."""
    return describe(response.request, str(response.status_code), json_body(response))


def vendor_detail(body: dict[str, Any]) -> str:
    """The vendor's error code and message from the usual JSON shapes (HubSpot ``category``
    and ``message``, Mailchimp ``title`` and ``detail``, Zoom ``code`` and ``message``,
    Graph ``error.code`` and ``error.message``, OAuth ``error`` and ``error_description``)."""
    if isinstance(body.get("error"), dict):
        body = body["error"]
    code = _first(body, "category", "code", "title", "error")
    message = _first(body, "message", "detail", "error_description")
    detail = ": ".join(part for part in (code, message) if part)
    return detail[:MAX_DETAIL]


def _first(body: dict[str, Any], *names: str) -> str:
    for name in names:
        value = body.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
            return " ".join(str(value).split())
    return ""


def scrub(text: str, request: httpx.Request) -> str:
    """``text`` without the request's secrets or anything shaped like one."""
    for secret in sorted(secrets_of(request), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    text = _SECRET_SHAPES[0].sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _SECRET_SHAPES[1].sub(lambda m: f"{m.group(1)}={REDACTED}", text)


def secrets_of(request: httpx.Request) -> set[str]:
    """The values a message must not contain: credential headers (and their parts, a Basic
    pair decoded) and every query-string value."""
    found: set[str] = set()
    for name in SECRET_HEADERS:
        value = request.headers.get(name)
        if value:
            found.add(value)
            found.update(value.split())
            found.update(_basic_parts(value))
    found.update(value for _, value in request.url.params.multi_items())
    return {value for value in found if len(value) >= _MIN_SECRET}


def _basic_parts(value: str) -> list[str]:
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "basic":
        return []
    try:
        return base64.b64decode(token, validate=True).decode("utf-8").split(":", 1)
    except (binascii.Error, UnicodeDecodeError):
        return []
