"""A stateful Zoom API v2 simulator that behaves like Zoom over HTTP.

Connector tests talk to it instead of zoom.us / api.zoom.us, either in-process
(``httpx.MockTransport(sim)``) or over a socket (``with sim:``, see :mod:`simulators.base`;
the same server answers the OAuth host and the API host).  It issues Server-to-Server
OAuth tokens that expire, keeps meetings, registrants, past participants and recordings,
pages lists with ``page_size`` + ``next_page_token``, answers errors with Zoom's
``{"code", "message"}`` bodies (injected 429s with Zoom's rate headers too), and builds
signed webhook deliveries as Zoom sends them.  Vendor facts: docs/vendors/zoom.md (the
behaviours it leaves unconfirmed are options here).

Run it standalone: ``python -m simulators.zoom --port 8767``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx

from simulators.base import Simulator
from simulators.zoom.store import Meeting, PageError, ZoomStore, iso

__all__ = ["ZoomSimulator"]

#: What ``PUT .../registrants/status`` actions leave a registrant as (a cancelled
#: registration is listed with the denied ones).
ACTIONS = {"approve": "approved", "deny": "denied", "cancel": "denied"}
REGISTRANT_STATUSES = ("pending", "approved", "denied")
MEETING_OVER = (
    "Meeting is over, you can not register now. "
    "If you have any questions, please contact the Meeting host."
)
QPS_MESSAGE = "You have reached the maximum per-second rate limit for this API. Try again later."
_ROUTES: tuple[tuple[str, re.Pattern[str], str, str], ...] = (
    ("GET", re.compile(r"^/v2/users/me$"), "get_me", "Light"),
    ("GET", re.compile(r"^/v2/users/[^/]+/meetings$"), "list_meetings", "Medium"),
    ("POST", re.compile(r"^/v2/users/[^/]+/meetings$"), "create_meeting", "Medium"),
    ("GET", re.compile(r"^/v2/meetings/(\d+)$"), "get_meeting", "Light"),
    ("PATCH", re.compile(r"^/v2/meetings/(\d+)$"), "update_meeting", "Light"),
    ("DELETE", re.compile(r"^/v2/meetings/(\d+)$"), "delete_meeting", "Light"),
    ("GET", re.compile(r"^/v2/meetings/(\d+)/registrants$"), "list_registrants", "Medium"),
    ("POST", re.compile(r"^/v2/meetings/(\d+)/registrants$"), "add_registrant", "Light"),
    (
        "PUT",
        re.compile(r"^/v2/meetings/(\d+)/registrants/status$"),
        "registrant_status",
        "Medium",
    ),
    ("GET", re.compile(r"^/v2/meetings/(\d+)/registrants/([^/]+)$"), "get_registrant", "Light"),
    ("GET", re.compile(r"^/v2/past_meetings/([^/]+)/participants$"), "participants", "Medium"),
    ("GET", re.compile(r"^/v2/report/meetings/([^/]+)/participants$"), "participants", "Heavy"),
)


class ApiError(Exception):
    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error(status: int, code: int, message: str, **headers: str) -> httpx.Response:
    return httpx.Response(status, json={"code": code, "message": message}, headers=headers)


class ZoomSimulator(Simulator):
    """Zoom's S2S OAuth, meetings, registrants, participants, recordings and webhooks.

    ``invalidate_old_tokens`` makes a new token revoke the previous one (seen on old
    forum threads, UNCONFIRMED); ``clock`` drives token expiry and timestamps.  Injected
    faults (``fail_next``) apply to ``/v2/`` unless given a ``path_prefix``.
    """

    name = "Zoom"

    def __init__(
        self,
        *,
        account_id: str = "AcCt_0001",
        client_id: str = "sim-client-id",
        client_secret: str = "sim-client-secret",
        webhook_secret: str = "zmWebhookSecret_Test123",
        token_ttl: int = 3600,
        invalidate_old_tokens: bool = False,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(clock=clock)
        self.account_id, self.client_id, self.client_secret = account_id, client_id, client_secret
        self.webhook_secret, self.token_ttl = webhook_secret, token_ttl
        self.invalidate_old_tokens = invalidate_old_tokens
        self.store = ZoomStore()
        self.tokens: dict[str, float] = {}

    # ----------------------------------------------------------------- HTTP

    def handle(self, request: httpx.Request) -> httpx.Response:
        with self._lock:
            return self._respond(request)

    def is_api_call(self, request: httpx.Request) -> bool:
        return request.url.path.startswith("/v2/")

    def fault_response(self, status: int) -> httpx.Response:
        if status != 429:
            return error(status, status, "Internal server error (injected).")
        headers = {"X-RateLimit-Category": "Medium", "X-RateLimit-Type": "QPS"}
        headers |= {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "0"}
        return error(429, 429, QPS_MESSAGE, **headers)

    def _respond(self, request: httpx.Request) -> httpx.Response:
        path = unquote(request.url.raw_path.split(b"?")[0].decode())  # Zoom decodes once
        if path == "/oauth/token" and request.method == "POST":
            return self._token(request)
        if not self._authorized(request):
            return error(401, 124, "Invalid access token.")
        for method, pattern, name, label in _ROUTES:
            match = pattern.match(path)
            if match and method == request.method:
                args = [unquote(part) for part in match.groups()]  # ... and then once more
                try:
                    response: httpx.Response = getattr(self, f"_{name}")(request, *args)
                except ApiError as exc:
                    response = error(exc.status, exc.code, exc.message)
                except PageError as exc:
                    response = error(400, 300, str(exc))
                response.headers["X-RateLimit-Category"] = label
                return response
        return error(404, 404, f"No route for {request.method} {path}")

    def _token(self, request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        if request.content:
            params |= dict(httpx.QueryParams(request.content.decode()))
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            pair = base64.b64decode(encoded).decode() if scheme == "Basic" else ""
        except (ValueError, UnicodeDecodeError):
            pair = ""
        if pair != f"{self.client_id}:{self.client_secret}":
            refusal = {"reason": "Invalid client_id or client_secret", "error": "invalid_client"}
            return httpx.Response(401, json=refusal)
        if params.get("grant_type") != "account_credentials":
            return httpx.Response(
                400, json={"reason": "Unsupported grant type", "error": "unsupported_grant_type"}
            )
        if params.get("account_id") != self.account_id:
            return httpx.Response(
                400, json={"reason": "Invalid account_id", "error": "invalid_request"}
            )
        token = "sim-" + secrets.token_urlsafe(24)
        if self.invalidate_old_tokens:
            self.tokens.clear()
        self.tokens[token] = self.clock() + self.token_ttl
        body = {"access_token": token, "token_type": "bearer", "expires_in": self.token_ttl}
        body |= {
            "scope": "meeting:read:admin meeting:write:admin",
            "api_url": "https://api.zoom.us",
        }
        return httpx.Response(200, json=body)

    def _authorized(self, request: httpx.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expires = self.tokens.get(token) if scheme.lower() == "bearer" else None
        return expires is not None and expires > self.clock()

    # ------------------------------------------------------------ endpoints

    def _meeting(self, meeting_id: str) -> Meeting:
        meeting = self.store.meetings.get(int(meeting_id))
        if meeting is None:
            raise ApiError(404, 3001, f"Meeting {meeting_id} is not found or has expired.")
        return meeting

    def _get_me(self, request: httpx.Request) -> httpx.Response:
        """The app's user (Server-to-Server apps act as the account's owner)."""
        body = {"id": "u_owner", "email": "owner@zoom.test", "account_id": self.account_id}
        return httpx.Response(200, json={**body, "type": 2, "status": "active"})

    def _list_meetings(self, request: httpx.Request) -> httpx.Response:
        meetings = [m.json() for m in self.store.meetings.values()]
        page = self.store.page("meetings", meetings, dict(request.url.params), self.clock())
        page["meetings"] = page.pop("_items")
        return httpx.Response(200, json=page)

    def _create_meeting(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content or b"{}")
        if not str(body.get("topic") or "").strip():
            raise ApiError(400, 300, "Validation Failed.")
        if len(str(body.get("agenda") or "")) > 2000:
            raise ApiError(400, 300, "Validation Failed.")
        return httpx.Response(201, json=self.store.create_meeting(body, self.clock()).json())

    def _get_meeting(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        return httpx.Response(200, json=self._meeting(meeting_id).json())

    def _update_meeting(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        self.store.update_meeting(self._meeting(meeting_id), json.loads(request.content or b"{}"))
        return httpx.Response(204)

    def _delete_meeting(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        self._meeting(meeting_id)
        del self.store.meetings[int(meeting_id)]
        self.store.deleted.add(int(meeting_id))
        return httpx.Response(204)

    def _list_registrants(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        meeting = self._meeting(meeting_id)
        query = dict(request.url.params)
        wanted = query.get("status", "approved")  # Zoom lists the approved unless asked
        if wanted not in REGISTRANT_STATUSES:
            raise ApiError(400, 300, f"Invalid status: {wanted}.")
        items = [r for r in meeting.registrants if r["status"] == wanted]
        page = self.store.page(f"registrants:{meeting_id}:{wanted}", items, query, self.clock())
        page["registrants"] = page.pop("_items")
        return httpx.Response(200, json=page)

    def _add_registrant(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        meeting = self._meeting(meeting_id)
        if meeting.settings.get("approval_type", 2) == 2:
            raise ApiError(404, 404, "Registration has not been enabled for this meeting.")
        if meeting.status != "waiting":  # started or finished
            raise ApiError(400, 3038, MEETING_OVER)
        body = json.loads(request.content or b"{}")
        email = str(body.get("email") or "")
        if not body.get("first_name") or email.count("@") != 1 or email.endswith("@"):
            field = "first_name" if not body.get("first_name") else "email"
            detail = {"code": 300, "message": "Validation Failed."}
            detail["errors"] = [{"field": field, "message": "Invalid field."}]
            return httpx.Response(400, json=detail)
        registrant = self.store.add_registrant(meeting, body, self.clock())
        answer = {"id": meeting.id, "registrant_id": registrant["id"]}
        answer |= {"join_url": registrant["join_url"], "topic": meeting.topic}
        return httpx.Response(201, json=answer | {"start_time": meeting.start_time})

    def _registrant_status(self, request: httpx.Request, meeting_id: str) -> httpx.Response:
        """Approve, deny or cancel registrants (by id or email); 204."""
        meeting = self._meeting(meeting_id)
        body = json.loads(request.content or b"{}")
        action = body.get("action")
        if action not in ACTIONS:
            raise ApiError(400, 300, "Validation Failed.")
        if action != "cancel" and meeting.status == "finished":
            raise ApiError(400, 3038, MEETING_OVER)
        for wanted in body.get("registrants") or []:
            for registrant in meeting.registrants:
                if registrant["id"] == wanted.get("id") or (
                    wanted.get("email") and registrant["email"] == str(wanted["email"]).lower()
                ):
                    registrant["status"] = ACTIONS[action]
        return httpx.Response(204)

    def _get_registrant(
        self, request: httpx.Request, meeting_id: str, registrant_id: str
    ) -> httpx.Response:
        for registrant in self._meeting(meeting_id).registrants:
            if registrant["id"] == registrant_id:
                return httpx.Response(200, json=registrant)
        raise ApiError(404, 3001, f"Registrant {registrant_id} not found.")

    def _participants(self, request: httpx.Request, meeting: str) -> httpx.Response:
        if meeting.isdigit():
            found = self.store.meetings.get(int(meeting))
            meeting = found.uuid if found else meeting
        if meeting not in self.store.participants:
            raise ApiError(404, 3001, "This meeting is not available or ID is not valid.")
        items = self.store.participants[meeting]
        page = self.store.page(
            f"participants:{meeting}", items, dict(request.url.params), self.clock()
        )
        page["participants"] = page.pop("_items")
        return httpx.Response(200, json=page)

    # --------------------------------------------------------- test helpers

    def expire_tokens(self) -> None:
        """Every issued token expires now (Zoom answers 401 code 124 to it)."""
        with self._lock:
            self.tokens = dict.fromkeys(self.tokens, 0.0)

    def add_meeting(self, topic: str = "Simulated meeting", **fields: Any) -> Meeting:
        with self._lock:
            body = {"topic": topic, "settings": {"approval_type": 0}, **fields}
            return self.store.create_meeting(body, self.clock())

    def register(
        self, meeting_id: int, email: str, first_name: str = "Guest", *, at: float | None = None
    ) -> dict[str, Any]:
        """A registrant of the meeting, registered at ``at`` (epoch seconds; default now)."""
        with self._lock:
            meeting = self.store.meetings[meeting_id]
            body = {"email": email, "first_name": first_name}
            return self.store.add_registrant(meeting, body, self.clock() if at is None else at)

    def set_meeting_status(self, meeting_id: int, status: str) -> None:
        """The meeting is ``waiting``, ``started`` or ``finished`` (then Zoom registers
        nobody: code 3038)."""
        with self._lock:
            self.store.meetings[meeting_id].status = status

    def set_registrant_status(self, meeting_id: int, registrant_id: str, status: str) -> None:
        """The host approves or denies a registrant in Zoom (``pending``, ``approved``,
        ``denied``)."""
        with self._lock:
            self.registrant(meeting_id, registrant_id)["status"] = status

    def registrant(self, meeting_id: int, registrant_id: str) -> dict[str, Any]:
        meeting = self.store.meetings[meeting_id]
        return next(r for r in meeting.registrants if r["id"] == registrant_id)

    def reregister(self, meeting_id: int, registrant_id: str, **fields: Any) -> None:
        """The registrant cancels and registers again: same id, a new create_time."""
        with self._lock:
            registrant = self.registrant(meeting_id, registrant_id)
            registrant.update(fields, create_time=iso(self.clock() + 1))

    def add_participant(self, instance_uuid: str, **fields: Any) -> None:
        """A row of the past-meeting participants report of a meeting instance."""
        with self._lock:
            rows = self.store.participants.setdefault(instance_uuid, [])
            rows.append({"id": secrets.token_hex(8), "status": "in_meeting", **fields})

    def deliver(
        self, event: str, obj: dict[str, Any], *, at: float | None = None
    ) -> tuple[dict[str, str], bytes]:
        """A signed delivery of ``event`` for ``obj`` exactly as Zoom sends it: headers
        (``x-zm-signature``, ``x-zm-request-timestamp``, ...) and the raw body."""
        now = self.clock() if at is None else at
        body = {"event": event, "event_ts": int(now * 1000)}
        body["payload"] = {"account_id": self.account_id, "object": obj}
        raw = json.dumps(body, separators=(",", ":")).encode()
        timestamp = str(int(now))
        headers = {
            "x-zm-request-timestamp": timestamp,
            "x-zm-signature": signature(self.webhook_secret, timestamp, raw),
            "user-agent": "Zoom Marketplace/1.0a",
            "content-type": "application/json",
        }
        return headers, raw


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """Zoom's ``x-zm-signature``: ``v0=`` + hex HMAC-SHA256 of ``v0:{timestamp}:{body}``."""
    message = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
