"""The API through a real server: `plugs webhooks` (uvicorn in its own process) on
loopback, with two organizations, each a HubSpot simulator integration, a user and keys."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from models.accounts import create_user
from models.api_keys import create_api_key
from models.session import Database, get_database
from tests import services
from tests.connectors.harness import Vendor, hubspot


@dataclass
class Org:
    """An organization as the API sees it: its integration and a client per key."""

    vendor: Vendor
    user_id: uuid.UUID
    key_id: uuid.UUID
    api: httpx.Client  # read-write key
    reader: httpx.Client  # read-only key

    @property
    def id(self) -> uuid.UUID:
        return self.vendor.org_id

    @property
    def integration_id(self) -> uuid.UUID:
        return self.vendor.integration_id


@pytest.fixture(scope="session")
def api_url(
    platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    handle = services.start_http(platform_env, tmp_path_factory.mktemp("api"))
    yield handle.env["base_url"] + "/api/v1"
    handle.stop()


def client(api_url: str, secret: str | None) -> httpx.Client:
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    return httpx.Client(base_url=api_url, headers=headers, timeout=30)


def _org(stack: ExitStack, db: Database, api_url: str) -> Org:
    vendor = stack.enter_context(hubspot(db, rate_limit="1000"))
    user = create_user(
        db, vendor.org_id, f"admin-{uuid.uuid4().hex[:6]}@example.test", is_admin=True
    )
    key, secret = create_api_key(db, vendor.org_id, "host product", rate_limit=100_000)
    _, read_secret = create_api_key(db, vendor.org_id, "dashboard", read_only=True)
    api = stack.enter_context(client(api_url, secret))
    reader = stack.enter_context(client(api_url, read_secret))
    return Org(vendor, user.id, key.id, api, reader)


@pytest.fixture(scope="module")
def orgs(platform_env: dict[str, str], api_url: str) -> Iterator[tuple[Org, Org]]:
    """Organizations A and B."""
    db = get_database()
    with ExitStack() as stack:
        yield _org(stack, db, api_url), _org(stack, db, api_url)


def problem(response: httpx.Response, status: int, name: str) -> dict[str, Any]:
    """The response is the problem document ``name`` with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["type"] == f"urn:plugs:problem:{name}", body
    assert body["status"] == status
    return dict(body)
