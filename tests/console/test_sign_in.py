"""Signing in to the console, over HTTP (no browser): operators with the credentials that
protect Flower, revoked keys, CSRF, and a console without its secret outside the embedded
default."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from connectors.integrations import add_integration
from models.accounts import create_organization
from models.api_keys import create_api_key, revoke_api_key
from models.session import Database
from tests.operations.conftest import settings_env

SECRET = secrets.token_urlsafe(32)


def _csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found is not None, html
    return found.group(1)


@pytest.fixture
def client(platform_env: dict[str, str]) -> Iterator[TestClient]:
    with settings_env(PLUGS_CONSOLE_SECRET=SECRET, PLUGS_FLOWER_BASIC_AUTH="ops:open-sesame"):
        from workers.http.app import create_app

        with TestClient(create_app()) as client:
            yield client


def test_an_operator_signs_in_and_picks_an_organization(
    client: TestClient, app_db: Database
) -> None:
    mine = create_organization(app_db, "Picked")
    theirs = create_organization(app_db, "Not picked")
    shown = add_integration(app_db, mine.id, "hubspot", {"token": "t"}, {})
    hidden = add_integration(app_db, theirs.id, "hubspot", {"token": "t"}, {})
    page = client.get("/console/sign-in")
    assert 'id="sign-in-operator"' in page.text
    wrong = client.post(
        "/console/sign-in",
        data={"user": "ops", "password": "nope", "csrf_token": _csrf(page.text)},
    )
    assert wrong.status_code == 401
    signed = client.post(
        "/console/sign-in",
        data={"user": "ops", "password": "open-sesame", "csrf_token": _csrf(wrong.text)},
    )
    assert signed.url.path == "/console/organizations" and "Not picked" in signed.text
    listed = client.post(
        "/console/organizations",
        data={"organization_id": str(mine.id), "csrf_token": _csrf(signed.text)},
    )
    assert listed.url.path == "/console/integrations"
    assert str(shown.id) in listed.text and str(hidden.id) not in listed.text
    assert client.get(f"/console/integrations/{hidden.id}").status_code == 404


def test_forms_need_the_csrf_token_and_a_revoked_key_ends_its_session(
    client: TestClient, app_db: Database
) -> None:
    org = create_organization(app_db, "Keyed")
    key, secret = create_api_key(app_db, org.id, "console")
    found = add_integration(app_db, org.id, "hubspot", {"token": "t"}, {})
    page = client.get("/console/sign-in")
    assert (
        client.post("/console/sign-in", data={"api_key": secret}).status_code == 403
    )  # no CSRF token
    signed = client.post(
        "/console/sign-in", data={"api_key": secret, "csrf_token": _csrf(page.text)}
    )
    assert signed.url.path == "/console/integrations"
    cookie = signed.history[0].headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie and "path=/console" in cookie
    assert secret not in cookie
    refused = client.post(f"/console/integrations/{found.id}/pause", data={"csrf_token": "x"})
    assert refused.status_code == 403
    revoke_api_key(app_db, org.id, key.id)
    after = client.get("/console/integrations")
    assert after.url.path == "/console/sign-in"


def test_without_its_secret_the_console_says_so_and_the_rest_still_serves(
    platform_env: dict[str, str],
) -> None:
    from workers.http.app import create_app

    with TestClient(create_app()) as client:
        answer = client.get("/console/")
        assert answer.status_code == 503 and "PLUGS_CONSOLE_SECRET" in answer.text
        assert client.get("/healthz").status_code == 200


def test_behind_https_the_session_cookie_is_secure(
    platform_env: dict[str, str], app_db: Database
) -> None:
    org = create_organization(app_db, "Behind TLS")
    _key, secret = create_api_key(app_db, org.id, "console")
    with settings_env(
        PLUGS_CONSOLE_SECRET=SECRET, PLUGS_PUBLIC_BASE_URL="https://plugs.example.test"
    ):
        from workers.http.app import create_app

        with TestClient(create_app(), base_url="https://testserver") as client:
            page = client.get("/console/sign-in")
            signed = client.post(
                "/console/sign-in",
                data={"api_key": secret, "csrf_token": _csrf(page.text)},
                follow_redirects=False,
            )
    cookie = signed.headers["set-cookie"].lower()
    assert "; secure" in cookie and "httponly" in cookie
