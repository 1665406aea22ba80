"""Push through an FCM HTTP v1 style API (``PLUGS_PUSH_PROVIDERS``, tried in order).

``POST {base_url}/v1/projects/{project}/messages:send`` with a bearer token and
``{"message": {"token", "notification": {"title", "body"}, "data"}}``; 200 answers the
message ``name``.  Each active device of the user gets the message.  A token the provider
calls ``UNREGISTERED`` (404) or invalid (400 ``INVALID_ARGUMENT``) is disabled and never
tried again; 429, 5xx and connection errors hand over to the next provider, then retry.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import FatalError
from core.settings import PushProvider, Settings
from models.notification_delivery import PushDevice
from notifications import templates
from notifications.channels.base import (
    SEND_CONNECTIONS,
    Channel,
    Device,
    Message,
    ProviderClients,
    Recipient,
    Sent,
    first_available,
)

#: FCM error codes that mean the token will never work again.
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "INVALID_ARGUMENT"})


def send_path(project_id: str) -> str:
    return f"/v1/projects/{project_id}/messages:send"


class _DeadToken(Exception):
    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class PushChannel(Channel):
    """Push notifications to the user's registered devices; quiet hours apply."""

    name = "push"
    needs_devices = True
    connections = SEND_CONNECTIONS

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._clients = ProviderClients[PushProvider](
            settings, "PLUGS_PUSH_PROVIDERS", _bearer_token
        )

    def check_configured(self) -> None:
        self._clients.check(self.name, self.settings.push_providers)

    def reachable(self, session: Session, recipients: Sequence[Recipient]) -> set[uuid.UUID]:
        ids = [r.id for r in recipients]
        found: set[uuid.UUID] = set()
        for start in range(0, len(ids), 5000):
            found.update(
                session.scalars(
                    select(PushDevice.user_id)
                    .where(PushDevice.user_id.in_(ids[start : start + 5000]), PushDevice.is_active)
                    .distinct()
                )
            )
        return found

    def send(self, message: Message) -> Sent:
        if not message.devices:
            raise FatalError("the user has no active push device")
        sent, dead = [], []
        for device in message.devices:
            try:
                sent.append(self._to_device(device, message))
            except _DeadToken as exc:
                dead.append((device.id, f"provider reported {exc.code}"))
        if not sent:
            names = ", ".join(reason for _, reason in dead)
            raise DeviceRefused(f"no valid push device: {names}", dead)
        return Sent(
            provider=sent[0][0],
            provider_message_id=",".join(name for _, name in sent)[:255],
            disabled_devices=dead,
        )

    def _to_device(self, device: Device, message: Message) -> tuple[str, str]:
        payload = {
            "message": {
                "token": device.token,
                "notification": {
                    "title": message.title,
                    "body": templates.render("push", "txt", message).strip(),
                },
                "data": {
                    "notification_id": str(message.notification_id),
                    "type": message.notification_type,
                },
            }
        }
        return first_available(
            self.settings.push_providers,
            lambda provider: self._send_via(provider, payload),
            setting="PLUGS_PUSH_PROVIDERS",
        )

    def _send_via(self, provider: PushProvider, payload: Mapping[str, object]) -> tuple[str, str]:
        response = self._clients.client(provider).request(
            "POST", send_path(provider.project_id), json=payload
        )
        if response.status_code < 300:
            return provider.name, str(response.json().get("name", ""))
        code = _error_code(response)
        if code in DEAD_TOKEN_CODES or response.status_code == 404:
            raise _DeadToken(code or "NOT_FOUND")
        raise FatalError(f"{provider.name} refused the message: {response.status_code} {code}")

    def close(self) -> None:
        self._clients.close()


def _bearer_token(provider: PushProvider) -> dict[str, Any]:
    return {"headers": {"Authorization": f"Bearer {provider.access_token.get_secret_value()}"}}


class DeviceRefused(FatalError):
    """Every device of the user was refused; the tokens to disable ride along."""

    def __init__(self, message: str, disabled: list[tuple[uuid.UUID, str]]) -> None:
        super().__init__(message)
        self.disabled_devices = disabled


def _error_code(response: httpx.Response) -> str:
    """FCM's ``errorCode`` from the error details, else the error ``status``."""
    try:
        error = response.json().get("error", {})
    except ValueError:
        return ""
    for detail in error.get("details", []) or []:
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status", ""))
