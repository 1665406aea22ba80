"""Stateful simulators of the SMS (Twilio-style) and push (FCM HTTP v1 style) providers.

Each is a :class:`simulators.base.Simulator`: use it in-process with
``httpx.MockTransport(sim)`` or over real HTTP (``with sim:``).  They check credentials,
refuse bad input the way the vendors do, remember what they accepted, and can be made to
fail (``fail_next``; ``fail_next(UNTIL_CLEARED, status=503)`` for a provider that is down)
to exercise retries and fallback.
"""

from __future__ import annotations

import base64
import itertools
import json
import re
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

import httpx

from simulators.base import Simulator

E164 = re.compile(r"^\+[1-9]\d{6,14}$")
_PHRASES = {status.value: status.phrase for status in HTTPStatus}


class TwilioSimulator(Simulator):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` as Twilio answers it."""

    name = "Twilio"

    def __init__(self, account_sid: str = "AC" + "0" * 32, auth_token: str = "sim-token") -> None:
        super().__init__()
        self.account_sid, self.auth_token = account_sid, auth_token
        self.messages: list[dict[str, str]] = []
        self._ids = itertools.count(1)

    def fault_response(self, status: int) -> httpx.Response:
        """Twilio's error: its code is 20000 + the status (20429, 20500, 20503)."""
        message = "Service unavailable" if status == 503 else _PHRASES.get(status, "Error")
        return _json(status, {"code": 20000 + status, "message": message, "status": status})

    def handle(self, request: httpx.Request) -> httpx.Response:
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
        with self._lock:
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


class FcmSimulator(Simulator):
    """``POST /v1/projects/{project}/messages:send`` as FCM HTTP v1 answers it."""

    name = "FCM"

    def __init__(
        self, project_id: str = "plugs-sim", access_token: str = "sim-access-token"
    ) -> None:
        super().__init__()
        self.project_id, self.access_token = project_id, access_token
        self.messages: list[dict[str, Any]] = []
        #: Tokens of uninstalled apps: answered 404 UNREGISTERED.
        self.unregistered: set[str] = set()
        self._ids = itertools.count(1)

    def fault_response(self, status: int) -> httpx.Response:
        """FCM's error of that status (429 RESOURCE_EXHAUSTED, 500 INTERNAL, else UNAVAILABLE)."""
        state, message = _FCM_FAULTS.get(status, _FCM_FAULTS[503])
        return _fcm_error(status, state, message)

    def handle(self, request: httpx.Request) -> httpx.Response:
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
        with self._lock:
            self.messages.append({"name": name, **message})
        return _json(200, {"name": name})


_FCM_FAULTS = {
    429: ("RESOURCE_EXHAUSTED", "Quota exceeded for sending messages."),
    500: ("INTERNAL", "Internal error encountered."),
    503: ("UNAVAILABLE", "The service is currently unavailable."),
}


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
