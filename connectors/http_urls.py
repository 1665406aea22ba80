"""Checks of the URLs we are asked to call, made before any connection.

* :func:`check_configured_url`: a URL an operator configures (an integration's ``*_url``
  settings, a notification provider's ``base_url``), checked when it is set and when it is
  loaded: https (http too with ``PLUGS_ALLOW_PRIVATE_URLS=true``), a host, no user name or
  password, and neither an IP literal that is not public nor ``localhost``.  The error
  names the setting.
* :func:`check_url`: a URL a vendor hands us (a paging link): the same checks, and its
  scheme, host and port must be exactly those of an origin we pinned for the vendor.

Names are checked where they are resolved, when connecting (:mod:`connectors.egress`),
so what is checked is what is connected to.  URLs are parsed with :class:`httpx.URL`, the
parser that will fetch them, so the check and the request cannot disagree about the host.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Collection, Mapping
from typing import Any, Final

import httpx

from connectors.egress import HOW_TO_ALLOW, IPAddress, UnsafeURLError, is_public

__all__ = [
    "UnsafeURLError",
    "check_configured_host",
    "check_configured_url",
    "check_url",
    "check_url_settings",
    "ip_literal",
    "origin",
]

Origin = tuple[str, str, int]
DEFAULT_PORTS: Final = {"https": 443, "http": 80}
_LEGACY_IPV4_CHARS: Final = frozenset("0123456789abcdefx.")


def check_configured_url(value: Any, *, setting: str, allow_private: bool) -> httpx.URL:
    """The parsed URL of setting ``setting``; else :class:`UnsafeURLError` naming it."""
    try:
        parsed = httpx.URL(str(value).strip())
    except (httpx.InvalidURL, TypeError):
        raise UnsafeURLError(f"setting {setting} is not a valid URL") from None
    reason = _refusal(parsed, allow_private)
    if reason:
        raise UnsafeURLError(f"setting {setting}: {reason}")
    return parsed


def check_url_settings(settings: Mapping[str, Any], *, allow_private: bool) -> None:
    """Check every URL among an integration's settings: those named ``*_url``."""
    for name, value in settings.items():
        if name.endswith("_url") and value not in (None, ""):
            check_configured_url(value, setting=name, allow_private=allow_private)


def check_configured_host(host: str, *, setting: str, allow_private: bool) -> None:
    """Check a configured host (an SMTP relay's): present, and neither an IP literal that
    is not public nor ``localhost``.  What a name resolves to is checked when connecting."""
    if not host.strip():
        raise UnsafeURLError(f"setting {setting} has no host")
    if not allow_private and not _may_be_public(host):
        raise UnsafeURLError(f"setting {setting}: {host} is not a public address; {HOW_TO_ALLOW}")


def check_url(
    url: str | httpx.URL, allowed: Collection[str], *, allow_private: bool = False
) -> httpx.URL:
    """The parsed URL if it may be fetched; else raise :class:`UnsafeURLError`.

    ``allowed`` are the vendor's origins: ``scheme://host[:port]``, or a bare host meaning
    ``https://host:443``.  The URL's scheme, host and port must equal one of them exactly
    (no subdomains, no other port, no trailing dot).
    """
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, TypeError):
        raise UnsafeURLError("refused a malformed vendor URL") from None
    reason = _refusal(parsed, allow_private)
    if reason:
        raise UnsafeURLError(f"refused a vendor URL: {reason}")
    if origin(parsed) not in {origin(entry) for entry in allowed}:
        scheme, host, port = origin(parsed)
        raise UnsafeURLError(
            f"refused a vendor URL on {scheme}://{host}:{port}: not one of the vendor's hosts "
            "(scheme, host and port must match)"
        )
    return parsed


def origin(url: str | httpx.URL) -> Origin:
    """(scheme, host, port) of a URL; a bare host is ``https://host:443``."""
    if isinstance(url, str):
        url = httpx.URL(url if "://" in url else f"https://{url}")
    scheme = url.scheme
    return scheme, url.raw_host.decode("ascii").lower(), url.port or DEFAULT_PORTS.get(scheme, 0)


def _refusal(parsed: httpx.URL, allow_private: bool) -> str | None:
    """Why ``parsed`` may not be called, or None."""
    schemes = ("https", "http") if allow_private else ("https",)
    if parsed.scheme not in schemes:
        if parsed.scheme == "http":
            return f"http:// is refused, https only; {HOW_TO_ALLOW}"
        return "not an https:// URL"
    host = parsed.raw_host.decode("ascii")
    if not host:
        return "the URL has no host"
    if parsed.userinfo:
        return "a user name or password in the URL is refused (give them as credentials)"
    if not allow_private and not _may_be_public(host):
        return f"{host} is not a public address; {HOW_TO_ALLOW}"
    return None


def _may_be_public(host: str) -> bool:
    """False for an IP literal that is not public and for ``localhost`` names (always
    loopback, RFC 6761); other names are judged by what they resolve to, when connecting."""
    host = host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return False
    ip = ip_literal(host)
    return ip is None or is_public(ip)


def ip_literal(host: str) -> IPAddress | None:
    """The address if ``host`` is an IP literal, including legacy IPv4 forms
    (``2130706433``, ``0x7f.1``, ``127.1``) that resolvers still accept; else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    if host and set(host.lower()) <= _LEGACY_IPV4_CHARS:
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None
