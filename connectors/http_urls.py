"""The SSRF guard for URLs that come from vendors (paging links, file URLs).

A vendor-supplied URL is fetched only when it is https, on one of the vendor's allowed
hosts (the host itself or a subdomain of it), carries no credentials, and (unless private
addresses are allowed, for local simulators) is not an IP literal and does not resolve to a
loopback, private, link-local, reserved or multicast address.

The URL is parsed with :class:`httpx.URL`, the parser that will fetch it, so the guard and
the request cannot disagree about the host.  Known gap: the name is resolved again when
the request connects (DNS rebinding); pinning the checked address is the transport's job.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Collection
from typing import Final

import httpx

from core.errors import ConfigError

#: ``resolve(host, port)`` -> the addresses the host resolves to.
Resolver = Callable[[str, int], list[str]]
_LEGACY_IPV4_CHARS: Final = frozenset("0123456789abcdefx.")


class UnsafeURLError(ConfigError):
    """A vendor-supplied URL points outside the vendor's hosts or into a private network."""


def system_resolve(host: str, port: int) -> list[str]:
    """The addresses the system resolver gives for ``host``; [] when it does not resolve."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError):
        return []
    return [str(info[4][0]) for info in infos]


def check_url(
    url: str | httpx.URL,
    allowed_hosts: Collection[str],
    *,
    allow_private: bool = False,
    resolve: Resolver = system_resolve,
) -> httpx.URL:
    """The parsed URL if it is safe to fetch; else raise :class:`UnsafeURLError`.

    A name that does not resolve is not refused here: the request fails to connect and is
    retried like any connection error.
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError) as exc:
        raise UnsafeURLError("refused a malformed URL") from exc
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    _check_shape(parsed, host, allow_private)
    if not _is_allowed(host, allowed_hosts):
        raise UnsafeURLError(f"refused a URL on host {host!r}: not one of the vendor's hosts")
    if not allow_private:
        _check_public(host, parsed.port or 443, resolve)
    return parsed


def _check_shape(parsed: httpx.URL, host: str, allow_private: bool) -> None:
    schemes = {"https", "http"} if allow_private else {"https"}
    if parsed.scheme not in schemes:
        raise UnsafeURLError(f"refused a {parsed.scheme or 'relative'} URL: https only")
    if not host:
        raise UnsafeURLError("refused a URL without a host")
    if parsed.userinfo:
        raise UnsafeURLError(f"refused a URL with credentials on host {host!r}")


def _is_allowed(host: str, allowed_hosts: Collection[str]) -> bool:
    for allowed in allowed_hosts:
        allowed = allowed.lower().strip().rstrip(".")
        if allowed and (host == allowed or host.endswith("." + allowed)):
            return True
    return False


def _check_public(host: str, port: int, resolve: Resolver) -> None:
    if ip_literal(host) is not None:
        raise UnsafeURLError(f"refused a URL on the IP address {host!r}")
    for address in resolve(host, port):
        ip = ip_literal(address.split("%", 1)[0])
        if ip is None or not is_public(ip):
            raise UnsafeURLError(f"refused host {host!r}: it resolves to a non-public address")


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address if ``host`` is an IP literal, including legacy IPv4 forms
    (``2130706433``, ``0x7f.1``, ``127.1``) that resolvers still accept; else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and set(host) <= _LEGACY_IPV4_CHARS:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not (ip.is_multicast or ip.is_reserved or ip.is_loopback)
