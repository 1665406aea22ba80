"""Email over SMTP: a text and an HTML body from the templates, through the configured
relays (``PLUGS_SMTP_SERVERS``) in order.  An instance opens one connection per relay and
reuses it for its share of a batch (a batch sends through ``SEND_CONNECTIONS`` of them).
STARTTLS is required when the relay is configured for it (a relay that does not offer it is
refused, never used in clear).  Relays are connected to through the guarded way
out (:func:`connectors.egress.open_socket`): a relay on a non-public address only with
``PLUGS_ALLOW_PRIVATE_URLS=true``."""

from __future__ import annotations

import binascii
import smtplib
import socket
import ssl
import uuid
from dataclasses import dataclass
from email.header import Header
from email.utils import formataddr, make_msgid, parseaddr
from functools import lru_cache
from typing import Any

from connectors.egress import open_socket
from connectors.http_urls import check_configured_host
from core.errors import AuthError, ConfigError, FatalError, RetryableError
from core.settings import Settings, SmtpServer
from notifications import templates
from notifications.channels.base import SEND_CONNECTIONS, Channel, Message, Sent, first_available

#: SMTP reply codes that mean "try again later".
TRANSIENT_CODES = range(400, 500)


class EmailChannel(Channel):
    """Email to the user's address; quiet hours apply."""

    name = "email"
    connections = SEND_CONNECTIONS

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self._connections: dict[str, smtplib.SMTP] = {}

    def check_configured(self) -> None:
        if not self.settings.smtp_servers:
            raise ConfigError("the email channel has no SMTP server: set PLUGS_SMTP_SERVERS")
        for server in self.settings.smtp_servers:
            self._check_host(server)

    def _check_host(self, server: SmtpServer) -> None:
        check_configured_host(
            server.host,
            setting=f"PLUGS_SMTP_SERVERS ({server.name}) host",
            allow_private=self.settings.allow_private_urls,
        )

    def send(self, message: Message) -> Sent:
        email = compose(message, uuid.uuid4().hex)
        return first_available(
            self.settings.smtp_servers,
            lambda server: self._send_via(server, email),
            setting="PLUGS_SMTP_SERVERS",
        )

    def _send_via(self, server: SmtpServer, email: Email) -> Sent:
        sender, from_line = _sender(server.sender)
        data = from_line + email.data
        # as smtplib's send_message: an address beyond ASCII needs the relay's SMTPUTF8
        international = not (sender.isascii() and email.recipient.isascii())
        options = ("SMTPUTF8", "BODY=8BITMIME") if international else ()
        for attempt in (1, 2):  # a pooled connection the relay closed is opened once more
            connection = self._connection(server)
            try:
                refused = connection.sendmail(sender, [email.recipient], data, options)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop(server)
                if attempt == 2:
                    raise RetryableError(f"SMTP {server.host}: disconnected") from exc
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                codes = [code for code, _ in exc.recipients.values()]
                if all(code in TRANSIENT_CODES for code in codes):
                    raise RetryableError(f"SMTP {server.host}: recipient deferred") from exc
                raise FatalError(f"SMTP {server.host} refused the recipient ({codes[0]})") from exc
            except smtplib.SMTPResponseException as exc:
                raise _reply_error(server, exc) from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop(server)
                raise RetryableError(f"SMTP {server.host}: {type(exc).__name__}") from exc
            if refused:
                raise FatalError(f"SMTP {server.host} refused the recipient")
            return Sent(provider=server.name, provider_message_id=email.message_id)
        raise AssertionError("unreachable")

    def _connection(self, server: SmtpServer) -> smtplib.SMTP:
        key = f"{server.host}:{server.port}"
        if key not in self._connections:
            self._check_host(server)
            self._connections[key] = _connect(server, self.settings.allow_private_urls)
        return self._connections[key]

    def _drop(self, server: SmtpServer) -> None:
        connection = self._connections.pop(f"{server.host}:{server.port}", None)
        if connection is not None:
            try:
                connection.close()
            except OSError:
                pass

    def close(self) -> None:
        for connection in self._connections.values():
            try:
                connection.quit()
            except (OSError, smtplib.SMTPException):
                connection.close()
        self._connections.clear()


@dataclass(frozen=True)
class Email:
    """A composed email: the envelope recipient, its Message-ID, and the message's bytes
    (CRLF lines) without the ``From`` header, which is the relay's sender."""

    recipient: str
    message_id: str
    data: bytes


def compose(message: Message, token: str) -> Email:
    """The email of ``message``: subject, text body, HTML alternative, a Message-ID.

    Written directly as MIME (``multipart/alternative``, two base64 UTF-8 parts, as the
    ``email.mime`` classes make it): building and flattening ``email.message`` objects cost
    more than the SMTP exchange at 10,000 mails.  Header values are RFC 2047 encoded when
    they are not plain ASCII, and a line break in a name or title never starts a header."""
    address = message.recipient.email
    if not address or any(c.isspace() or c in "<>" for c in address):
        raise FatalError("the user's email address is not valid")
    message_id = make_msgid(idstring=token, domain="plugs.invalid")
    boundary = f"=_plugs_{token}"  # "_" is never in a base64 line
    head = (
        f"To: {formataddr((_one_line(message.recipient.name), address))}\r\n"
        f"Subject: {_header(message.title)}\r\n"
        f"Message-ID: {message_id}\r\n"
        f"X-Plugs-Notification: {message.notification_id}\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/alternative; boundary="{boundary}"\r\n'
        "\r\n"
    )
    parts = [head.encode("utf-8")]
    for subtype in ("plain", "html"):
        body = templates.render("email", "txt" if subtype == "plain" else "html", message)
        parts.append(
            f'--{boundary}\r\nContent-Type: text/{subtype}; charset="utf-8"\r\n'
            "Content-Transfer-Encoding: base64\r\n\r\n".encode()
        )
        parts.append(_base64(body.encode("utf-8")))
    parts.append(f"--{boundary}--\r\n".encode())
    return Email(address, message_id, b"".join(parts))


def _base64(data: bytes) -> bytes:
    """``data`` in base64 lines of 76 characters, each ending in CRLF."""
    return b"".join(
        binascii.b2a_base64(data[start : start + 57], newline=False) + b"\r\n"
        for start in range(0, len(data), 57)
    )


def _one_line(value: str) -> str:
    return " ".join(value.splitlines())


def _header(value: str) -> str:
    """A header value: as it is when it is short printable ASCII, else RFC 2047 words."""
    value = _one_line(value)
    if value.isascii() and value.isprintable() and len(value) < 900:
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


@lru_cache(maxsize=16)
def _sender(sender: str) -> tuple[str, bytes]:
    """The envelope sender (``MAIL FROM``) and the ``From`` line of a relay's ``sender``
    (``Name <address>``)."""
    name, address = parseaddr(sender)
    return address, f"From: {formataddr((_one_line(name), address))}\r\n".encode()


class _GuardedSMTP(smtplib.SMTP):
    """smtplib's client, its socket opened by :func:`open_socket` (TLS still verifies the
    relay's name: smtplib passes it as the server hostname)."""

    allow_private = False

    def __init__(self, *args: Any, allow_private: bool | None = None, **options: Any) -> None:
        if allow_private is not None:
            self.allow_private = allow_private
        super().__init__(*args, **options)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        source: Any = self.source_address
        return open_socket(
            host, port, allow_private=self.allow_private, timeout=timeout, source_address=source
        )


class _GuardedSMTPSSL(smtplib.SMTP_SSL, _GuardedSMTP):
    """Implicit TLS (port 465) over the guarded socket."""

    def __init__(self, *args: Any, allow_private: bool, **options: Any) -> None:
        self.allow_private = allow_private
        super().__init__(*args, **options)


def _connect(server: SmtpServer, allow_private: bool) -> smtplib.SMTP:
    """A connection to ``server``, upgraded to TLS and logged in as configured."""
    # Loading the CA certificates costs more than the connection: only when TLS is used.
    context = ssl.create_default_context() if server.ssl or server.starttls else None
    try:
        if server.ssl:
            connection: smtplib.SMTP = _GuardedSMTPSSL(
                server.host,
                server.port,
                timeout=server.timeout,
                context=context,
                allow_private=allow_private,
            )
        else:
            connection = _GuardedSMTP(
                server.host, server.port, timeout=server.timeout, allow_private=allow_private
            )
        connection.ehlo()
        if server.starttls and not server.ssl:
            if not connection.has_extn("starttls"):
                connection.close()
                raise AuthError(f"SMTP {server.host} does not offer STARTTLS; refusing clear text")
            connection.starttls(context=context)
            connection.ehlo()
        if server.username:
            password = server.password.get_secret_value() if server.password else ""
            connection.login(server.username, password)
    except smtplib.SMTPAuthenticationError as exc:
        raise AuthError(f"SMTP {server.host} refused the login ({exc.smtp_code})") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise RetryableError(f"SMTP {server.host}:{server.port}: {type(exc).__name__}") from None
    return connection


def _reply_error(server: SmtpServer, exc: smtplib.SMTPResponseException) -> Exception:
    if exc.smtp_code in TRANSIENT_CODES:
        return RetryableError(f"SMTP {server.host}: temporary failure {exc.smtp_code}")
    return FatalError(f"SMTP {server.host} refused the message ({exc.smtp_code})")
