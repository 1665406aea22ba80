"""Who is signed in to the console, and what they may do.

Two ways in, both ending in a signed session cookie (Starlette's ``SessionMiddleware``:
HttpOnly, SameSite=Lax, signed with ``PLUGS_CONSOLE_SECRET``):

* an organization API key (``models.api_keys``): the console then shows that
  organization only, and a read-only key changes nothing;
* the operator credentials of the installation (``PLUGS_FLOWER_BASIC_AUTH``, as for
  Flower): the operator then picks an organization.

The cookie holds the key's id, never its secret; each request checks the key is still
valid, so a revoked key ends its sessions.  Every form carries the session's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
import uuid
from dataclasses import dataclass
from functools import lru_cache

from starlette.requests import Request

from core.errors import ConfigError
from core.settings import get_settings
from models.api_keys import ApiKey, authenticate
from models.session import Database
from workers.cli.flower import basic_auth_credentials

#: Shortest console secret accepted.
MIN_SECRET = 32
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


class Refused(Exception):
    """The request may not do this: ``status`` 401 (sign in), 403 (read-only, bad CSRF)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def console_secret() -> str:
    """The key that signs session cookies: ``PLUGS_CONSOLE_SECRET``; on the embedded
    default (one machine, trying it out) one generated for this process when unset."""
    settings = get_settings()
    if settings.console_secret is not None:
        value = settings.console_secret.get_secret_value()
        if len(value) < MIN_SECRET:
            raise ConfigError(f"PLUGS_CONSOLE_SECRET must be {MIN_SECRET} characters or more")
        return value
    if settings.is_embedded:
        return _process_secret()
    raise ConfigError(
        "the console needs PLUGS_CONSOLE_SECRET (32 characters or more, e.g. "
        "`python3 -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
    )


@lru_cache(maxsize=1)
def _process_secret() -> str:
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Viewer:
    """The person behind a request: an API key of one organization, or an operator."""

    kind: str  # "key" | "operator"
    name: str
    organization_id: uuid.UUID | None
    read_only: bool

    @property
    def operator(self) -> bool:
        return self.kind == "operator"


def csrf_token(request: Request) -> str:
    """The session's CSRF token (made on first use)."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(24)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, presented: object) -> None:
    expected = request.session.get("csrf")
    given = presented if isinstance(presented, str) else request.headers.get(CSRF_HEADER, "")
    if not isinstance(expected, str) or not hmac.compare_digest(expected, given):
        raise Refused(403, "the form has expired: reload the page and try again")


def sign_in_with_key(db: Database, request: Request, presented: str) -> bool:
    identity = authenticate(db, presented.strip())
    if identity is None:
        return False
    _fresh_session(request)
    request.session.update(
        kind="key",
        key_id=str(identity.id),
        org=str(identity.organization_id),
        name=identity.name,
        read_only=bool(identity.read_only),
    )
    return True


def sign_in_as_operator(request: Request, user: str, password: str) -> bool:
    """True when ``user:password`` is one of ``PLUGS_FLOWER_BASIC_AUTH``'s pairs."""
    try:
        configured = basic_auth_credentials()
    except Exception:  # noqa: BLE001 - a malformed setting signs nobody in
        return False
    if configured is None or not user or not password:
        return False
    presented = f"{user}:{password}".encode()
    matched = False
    for pair in configured.split(","):
        matched |= hmac.compare_digest(pair.strip().encode(), presented)
    if not matched:
        return False
    _fresh_session(request)
    request.session.update(kind="operator", name=user, org=None, read_only=False)
    return True


def _fresh_session(request: Request) -> None:
    """A new session (and CSRF token) at each sign-in: nothing carried over."""
    request.session.clear()
    csrf_token(request)


def choose_organization(request: Request, organization_id: uuid.UUID) -> None:
    request.session["org"] = str(organization_id)


def sign_out(request: Request) -> None:
    request.session.clear()


def viewer(db: Database, request: Request) -> Viewer | None:
    """Who is signed in (None: nobody, or a key revoked since)."""
    kind = request.session.get("kind")
    org = request.session.get("org")
    organization_id = uuid.UUID(org) if isinstance(org, str) else None
    if kind == "key":
        key_id = request.session.get("key_id")
        if organization_id is None or not isinstance(key_id, str):
            return None
        if not _still_valid(db, organization_id, uuid.UUID(key_id)):
            request.session.clear()
            return None
        return Viewer(
            "key",
            str(request.session.get("name", "")),
            organization_id,
            bool(request.session.get("read_only", True)),
        )
    if kind == "operator":
        return Viewer("operator", str(request.session.get("name", "")), organization_id, False)
    return None


def _still_valid(db: Database, organization_id: uuid.UUID, key_id: uuid.UUID) -> bool:
    """The key of a session is still there and not revoked (read in its tenant session)."""
    with db.tenant(organization_id) as session:
        key = session.get(ApiKey, key_id)
        return key is not None and key.revoked_at is None
