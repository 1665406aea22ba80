"""The one way out to the network: every outgoing connection we make goes through here.

A connection is made in three steps that cannot drift apart: the host is resolved once,
every address it resolved to is checked (:func:`is_public`), and the socket connects to a
checked address.  The name is never resolved again between the check and the connect,
which closes DNS rebinding; TLS still verifies the certificate against the name (httpcore
and smtplib pass the original host as SNI and for verification).  Integer, hex and short
IPv4 forms (``2130706433``, ``0x7f.1``, ``127.1``) are normalised by the resolver and
checked like any other address.

Loopback, private, link-local and other non-public addresses are refused unless
``PLUGS_ALLOW_PRIVATE_URLS=true`` (local vendor simulators, the demo, the test suite);
plain ``http://`` is refused unless the same setting allows it.

* :class:`GuardedTransport`: an :class:`httpx.HTTPTransport` whose connections go through
  the guard (every :class:`~connectors.http.VendorClient` uses it).
* :func:`open_socket`: a guarded TCP socket, for protocols other than HTTP (SMTP).

No library did this for a synchronous httpx client when this was written (the httpx ones
wrap only ``AsyncClient``, or resolve through a public DNS server of their own), so the
guard is this small httpcore network backend.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from collections.abc import Iterable
from functools import cache
from typing import Final

import httpcore
import httpx

from core.errors import ConfigError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How to allow what is refused here, said in every refusal.
HOW_TO_ALLOW: Final = "only PLUGS_ALLOW_PRIVATE_URLS=true (local simulators) allows it"


class UnsafeURLError(ConfigError):
    """A URL or address we were asked to call is refused: not https, credentials in it,
    outside the vendor's origin, or a non-public address."""


class BlockedAddressError(UnsafeURLError):
    """A connection refused by the guard: the host resolved to a non-public address."""


def is_public(ip: IPAddress) -> bool:
    """True for a globally routable unicast address.  An IPv4 address carried inside an
    IPv6 one (IPv4-mapped, 6to4, Teredo) is judged as the IPv4 address."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public(ip.ipv4_mapped)
        inner = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if inner is not None and not is_public(inner):
            return False
    return ip.is_global and not (
        ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


def resolve(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for ``host``, each checked; resolved exactly once.

    Raises :class:`BlockedAddressError` when any address the name resolves to is not
    public (unless ``allow_private``): a name with one public and one private address is
    refused whole.  Raises :class:`socket.gaierror` when the name does not resolve.
    """
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allow_private:
        for address in addresses:
            ip = ipaddress.ip_address(address.split("%", 1)[0])
            if not is_public(ip):
                shown = host if address == host else f"{host} ({address})"
                raise BlockedAddressError(
                    f"refused to connect to {shown}: not a public address; {HOW_TO_ALLOW}"
                )
    return addresses


def open_socket(
    host: str,
    port: int,
    *,
    allow_private: bool,
    timeout: float | None = None,
    source_address: tuple[str, int] | None = None,
) -> socket.socket:
    """A TCP socket connected to a checked address of ``host`` (the first that answers)."""
    addresses = resolve(host, port, allow_private=allow_private)
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout, source_address)
        except OSError as exc:
            error = exc
    raise error or OSError(f"{host} resolved to no address")


class GuardedBackend(httpcore.NetworkBackend):
    """httpcore's synchronous backend, connecting only to checked addresses."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private
        self._backend = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = resolve(host, port, allow_private=self.allow_private)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(f"{host} does not resolve: {exc}") from None
        error: httpcore.ConnectError | None = None
        for address in addresses:
            try:
                return self._backend.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} resolved to no address")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        raise BlockedAddressError("refused to connect to a unix socket")

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


@cache
def shared_tls_context() -> ssl.SSLContext:
    """The verifying TLS context (system settings, certifi's CAs) every guarded transport of
    this process shares.  Making one loads the whole CA bundle, 25 ms of CPU and several
    times that on a busy machine: once per process, not once per client (a new client per
    account and per credential change).  A context may serve many sockets and threads; our
    pools speak HTTP/1.1 only, so the ALPN list httpcore sets on it before each handshake
    is always the same."""
    return httpx.create_ssl_context()


class GuardedTransport(httpx.HTTPTransport):
    """An :class:`httpx.HTTPTransport` that only speaks https (http too with
    ``allow_private``) and connects through :class:`GuardedBackend`.  No proxy: a proxy
    would connect for us, past the guard."""

    def __init__(
        self,
        *,
        allow_private: bool,
        verify: ssl.SSLContext | bool = True,
        limits: httpx.Limits | None = None,
    ) -> None:
        limits = limits or httpx.Limits(max_connections=100, max_keepalive_connections=20)
        context = (
            shared_tls_context() if verify is True else httpx.create_ssl_context(verify=verify)
        )
        super().__init__(verify=context, limits=limits)
        self.allow_private = allow_private
        # httpx builds its pool without a way to choose the network backend: replace it.
        self._pool = httpcore.ConnectionPool(
            ssl_context=context,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allow_private=allow_private),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        schemes = ("https", "http") if self.allow_private else ("https",)
        if request.url.scheme not in schemes:
            raise UnsafeURLError(
                f"refused {request.url.scheme}://{request.url.host}: https only; {HOW_TO_ALLOW}"
            )
        if request.url.userinfo:
            raise UnsafeURLError(f"refused a URL with credentials in it to {request.url.host}")
        return super().handle_request(request)
