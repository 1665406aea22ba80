"""The channel plug-in contract.

A channel delivers one notification row to one user.  Channels are found through the
``plugs.channels`` entry-point group (ours are registered there too), so a third party adds
one the same way: ``[project.entry-points."plugs.channels"] pager = "acme:PagerChannel"``.

A channel says who it can reach (:meth:`Channel.reachable`: a phone number, a device),
whether quiet hours hold it back, and sends one :class:`Message` (:meth:`Channel.send`).
``send`` returns a :class:`Sent` or raises from the one exception tree:

* :class:`RetryableError` -- every provider is down or throttling: tried again later with
  backoff (up to ``PLUGS_NOTIFICATION_MAX_ATTEMPTS``);
* :class:`PlugsError` (e.g. :class:`FatalError`) -- this message cannot be delivered (a
  refused address): the delivery fails with the error's message as its reason.

Providers of a channel are tried in the configured order (:func:`first_available`).
"""

from __future__ import annotations

import ssl
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from types import TracebackType
from typing import Any, ClassVar, Generic, Protocol, Self, TypeVar

import httpx
from sqlalchemy.orm import Session

from connectors.egress import GuardedTransport
from connectors.http import Action, VendorClient
from connectors.http_urls import check_configured_url
from core.errors import AuthError, ConfigError, RetryableError
from core.settings import Settings


@dataclass(frozen=True)
class Recipient:
    """A user a notification can go to, with the addresses channels need."""

    id: uuid.UUID
    email: str
    name: str
    phone: str | None = None


@dataclass(frozen=True)
class Device:
    """An active push token of the recipient."""

    id: uuid.UUID
    token: str


@dataclass(frozen=True)
class Message:
    """One notification row to deliver, with its recipient."""

    delivery_id: uuid.UUID
    notification_id: uuid.UUID
    organization_id: uuid.UUID
    recipient: Recipient
    title: str
    message: str
    notification_type: str
    data: dict[str, Any]
    created_at: datetime
    devices: tuple[Device, ...] = ()


@dataclass
class Sent:
    """What a provider said when it took the message."""

    provider: str
    provider_message_id: str | None = None
    #: ``delivered`` when the channel itself is the delivery (in-app), else ``sent``.
    status: str = "sent"
    #: Push tokens the provider reported invalid: (device id, reason); they are disabled.
    disabled_devices: list[tuple[uuid.UUID, str]] = field(default_factory=list)


#: The ``connections`` of the channels that wait on a remote provider for each message
#: (email, SMS, push): four answers are waited for at once, per batch.
SEND_CONNECTIONS = 4


class Channel(ABC):
    """A way to reach users; see the module docstring.  Used as a context manager around
    one batch, so connections (SMTP, HTTP pools) are opened once per batch (per instance:
    a batch sends through :attr:`connections` instances at once, one thread each)."""

    #: The entry-point name, also the ``notifications.channel`` value.
    name: ClassVar[str]
    #: Whether non-urgent messages wait for the end of the recipient's quiet hours.
    quiet_hours_apply: ClassVar[bool] = True
    #: Whether :class:`Message.devices` must be loaded (push).
    needs_devices: ClassVar[bool] = False
    #: How many instances (each with connections of its own, each in a thread) a batch
    #: sends through at once; 1 unless the channel is safe to run in several threads.
    connections: ClassVar[int] = 1

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def check_configured(self) -> None:
        """Raise :class:`ConfigError` when the channel cannot send (no provider set)."""
        return None

    def reachable(self, session: Session, recipients: Sequence[Recipient]) -> set[uuid.UUID]:
        """The ids of ``recipients`` this channel has an address for (default: all)."""
        return {r.id for r in recipients}

    @abstractmethod
    def send(self, message: Message) -> Sent:
        """Deliver ``message`` (see the module docstring for what to raise)."""

    def send_many(self, messages: Sequence[Message]) -> list[Sent | Exception]:
        """Deliver ``messages``: for each, in order, its :class:`Sent` or the exception
        :meth:`send` raised.  A channel that can hand several messages to its provider in
        one exchange (the in-app feed's Redis pipeline) overrides it."""
        outcomes: list[Sent | Exception] = []
        for message in messages:
            try:
                outcomes.append(self.send(message))
            except Exception as exc:  # noqa: BLE001 - the caller records it per message
                outcomes.append(exc)
        return outcomes

    def close(self) -> None:
        """Release connections opened while sending."""
        return None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class Named(Protocol):
    name: str


P = TypeVar("P", bound=Named)
R = TypeVar("R")


def first_available(providers: Sequence[P], attempt: Callable[[P], R], *, setting: str) -> R:
    """``attempt(provider)`` for each provider in order until one takes the message.

    A provider that is down, throttling or refusing our credentials hands over to the
    next; when all did, the combined reasons are raised as :class:`RetryableError`.  Any
    other error (the message itself is refused) is raised at once: another provider would
    refuse it too.
    """
    if not providers:
        raise ConfigError(f"no provider is configured: set {setting}")
    reasons: list[str] = []
    for provider in providers:
        try:
            return attempt(provider)
        except (RetryableError, AuthError) as exc:
            reasons.append(f"{provider.name}: {exc}")
    raise RetryableError("every provider failed: " + "; ".join(reasons))


class HttpProvider(Protocol):
    """A configured HTTP provider of a channel (``PLUGS_SMS_PROVIDERS`` and the like)."""

    @property
    def name(self) -> str: ...

    @property
    def base_url(self) -> str: ...


H = TypeVar("H", bound=HttpProvider)


class ProviderClients(Generic[H]):
    """The HTTP clients of a channel's providers: one :class:`VendorClient` per provider,
    made on first use (its ``base_url`` checked against the egress rules first) and reused
    for the batch, closed with the channel.  The clients of a process share one TLS
    context: loading the CA certificates took longer than a batch's requests on loopback.

    ``setting`` names the providers' setting in messages; ``credentials(provider)`` gives
    the client's ``auth`` or ``headers``.  A 400 is the message's fault (it fails, no retry);
    429, 5xx and connection errors are retried once, then hand over to the next provider.
    """

    def __init__(
        self,
        settings: Settings,
        setting: str,
        credentials: Callable[[H], dict[str, Any]],
    ) -> None:
        self.settings, self.setting, self.credentials = settings, setting, credentials
        self._clients: dict[str, VendorClient] = {}

    def check(self, channel: str, providers: Sequence[H]) -> None:
        """Raise :class:`ConfigError` when no provider is set or a URL is refused."""
        if not providers:
            raise ConfigError(f"the {channel} channel has no provider: set {self.setting}")
        for provider in providers:
            self._check_url(provider)

    def client(self, provider: H) -> VendorClient:
        """The client of ``provider``, made on first use."""
        if provider.name not in self._clients:
            self._check_url(provider)
            self._clients[provider.name] = VendorClient(
                name=provider.name,
                base_url=provider.base_url,
                allow_private=self.settings.allow_private_urls,
                transport=GuardedTransport(
                    allow_private=self.settings.allow_private_urls, verify=_tls_context()
                ),
                status_actions={400: Action.NOT_FOUND},
                max_attempts=2,
                max_inline_wait=5.0,
                backoff=0.2,
                **self.credentials(provider),
            )
        return self._clients[provider.name]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _check_url(self, provider: H) -> None:
        check_configured_url(
            provider.base_url,
            setting=f"{self.setting} ({provider.name}) base_url",
            allow_private=self.settings.allow_private_urls,
        )


@cache
def _tls_context() -> ssl.SSLContext:
    """The verifying TLS context of the providers' clients (made once per process)."""
    return httpx.create_ssl_context()
