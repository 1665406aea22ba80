"""SMS through a Twilio-style API (``PLUGS_SMS_PROVIDERS``, tried in order).

``POST {base_url}/2010-04-01/Accounts/{AccountSid}/Messages.json`` with a form body
(``To``, ``From``, ``Body``) and HTTP basic auth (account SID, auth token); 201 answers the
message's ``sid``.  A 400 (an invalid number, an unreachable destination) fails this message;
429, 5xx and connection errors hand over to the next provider, then retry later.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx
from sqlalchemy.orm import Session

from core.errors import FatalError
from core.settings import Settings, SmsProvider
from notifications import templates
from notifications.channels.base import (
    SEND_CONNECTIONS,
    Channel,
    Message,
    ProviderClients,
    Recipient,
    Sent,
    first_available,
)

API_VERSION = "2010-04-01"


def messages_path(account_sid: str) -> str:
    return f"/{API_VERSION}/Accounts/{account_sid}/Messages.json"


class SmsChannel(Channel):
    """Text messages to the user's phone number; quiet hours apply."""

    name = "sms"
    connections = SEND_CONNECTIONS

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._clients = ProviderClients[SmsProvider](settings, "PLUGS_SMS_PROVIDERS", _basic_auth)

    def check_configured(self) -> None:
        self._clients.check(self.name, self.settings.sms_providers)

    def reachable(self, session: Session, recipients: Sequence[Recipient]) -> set[uuid.UUID]:
        return {r.id for r in recipients if r.phone}

    def send(self, message: Message) -> Sent:
        if not message.recipient.phone:
            raise FatalError("the user has no phone number")
        body = templates.sms_body(message)
        return first_available(
            self.settings.sms_providers,
            lambda provider: self._send_via(provider, message.recipient.phone or "", body),
            setting="PLUGS_SMS_PROVIDERS",
        )

    def _send_via(self, provider: SmsProvider, to: str, body: str) -> Sent:
        response = self._clients.client(provider).request(
            "POST",
            messages_path(provider.account_sid),
            data={"To": to, "From": provider.from_number, "Body": body},
        )
        payload = _json(response)
        if response.status_code >= 300:
            code, detail = payload.get("code", response.status_code), payload.get("message", "")
            raise FatalError(f"{provider.name} refused the message: {code} {detail}".strip())
        sid = payload.get("sid")
        return Sent(provider=provider.name, provider_message_id=None if sid is None else str(sid))

    def close(self) -> None:
        self._clients.close()


def _basic_auth(provider: SmsProvider) -> dict[str, Any]:
    return {"auth": httpx.BasicAuth(provider.account_sid, provider.auth_token.get_secret_value())}


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
