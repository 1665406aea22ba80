"""Stateful simulators of the SMS (Twilio-style) and push (FCM HTTP v1 style) providers.

Each is a ``handler(httpx.Request) -> httpx.Response``: use it in-process with
``httpx.MockTransport(sim)`` or over real HTTP with ``simulators.server.serve``.
They check credentials, refuse bad input the way the vendors do, remember what they
accepted, and can be made to fail (``down``, ``fail_next``) to exercise retries and
fallback.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
import threading
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import httpx

E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@dataclass
class _Switches:
    """Failure switches shared by both simulators."""

    down: bool = False
    fail_next: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0

    def failing(self) -> bool:
        with self.lock:
            self.requests += 1
            if self.down:
                return True
            if self.fail_next > 0:
                self.fail_next -= 1
                return True
            return False


class TwilioSimulator(_Switches):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio answers it."""

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "sim-token") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, str]] = []
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.failing():
            return _json(503, {"code": 20503, "message": "Service unavailable", "status": 503})
        if (
            request.method != "POST"
            or request.url.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"
        ):
            return _json(
                404,
                {"code": 20404, "message": "The requested resource was not found", "status": 404},
            )
        if request.headers.get("authorization") != _basic(self.account_sid, self.auth_token):
            return _json(401, {"code": 20003, "message": "Authenticate", "status": 401})
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if not E164.match(form.get("To", "")):
            return _json(
                400,
                {
                    "code": 21211,
                    "message": f"The 'To' number {form.get('To')} is not a valid phone number.",
                    "status": 400,
                },
            )
        if not form.get("Body"):
            return _json(
                400, {"code": 21602, "message": "Message body is required.", "status": 400}
            )
        sid = f"SM{next(self._ids):032x}"
        with self.lock:
            self.messages.append({"sid": sid, **form})
        return _json(
            201,
            {
                "sid": sid,
                "status": "queued",
                "to": form["To"],
                "from": form.get("From"),
                "body": form["Body"],
            },
        )


class FcmSimulator(_Switches):
    """``POST /v1/projects/{project}/messages:send`` as FCM HTTP v1 answers it."""

    def __init__(
        self, project_id: str = "plugs-sim", access_token: str = "sim-access-token"
    ) -> None:
        super().__init__()
        self.project_id, self.access_token = project_id, access_token
        self.messages: list[dict[str, Any]] = []
        #: Tokens of uninstalled apps: answered 404 UNREGISTERED.
        self.unregistered: set[str] = set()
        self._ids = itertools.count(1)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.failing():
            return _fcm_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        if (
            request.method != "POST"
            or request.url.path != f"/v1/projects/{self.project_id}/messages:send"
        ):
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.")
        if request.headers.get("authorization") != f"Bearer {self.access_token}":
            return _fcm_error(
                401, "UNAUTHENTICATED", "Request had invalid authentication credentials."
            )
        try:
            message = json.loads(request.content)["message"]
        except (ValueError, KeyError, TypeError):
            return _fcm_error(400, "INVALID_ARGUMENT", "Invalid JSON payload received.")
        token = message.get("token")
        if not token or not isinstance(token, str) or len(token) < 8:
            return _fcm_error(
                400,
                "INVALID_ARGUMENT",
                "The registration token is not a valid FCM registration token",
                "INVALID_ARGUMENT",
            )
        if token in self.unregistered:
            return _fcm_error(404, "NOT_FOUND", "Requested entity was not found.", "UNREGISTERED")
        name = f"projects/{self.project_id}/messages/{next(self._ids)}"
        with self.lock:
            self.messages.append({"name": name, **message})
        return _json(200, {"name": name})


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _json(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body)


def _fcm_error(
    status: int, state: str, message: str, error_code: str | None = None
) -> httpx.Response:
    error: dict[str, Any] = {"code": status, "message": message, "status": state}
    if error_code:
        error["details"] = [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": error_code,
            }
        ]
    return _json(status, {"error": error})
