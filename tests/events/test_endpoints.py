"""Registering the host product's endpoints: the SSRF guard at registration and at
connect, the `plugs events` commands, and the wall between organizations."""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import func, select

from connectors.egress import UnsafeURLError
from core.errors import NotFoundError
from events import sender
from events.endpoints import add_endpoint, list_endpoints, rotate_secret, set_enabled
from models.accounts import create_organization
from models.base import utcnow
from models.host_events import EventEndpoint
from models.session import Database, get_database
from tests import services
from workers.cli import cli


@pytest.fixture
def guarded(platform_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    """The production guard: PLUGS_ALLOW_PRIVATE_URLS=false for this test."""
    monkeypatch.setenv("PLUGS_ALLOW_PRIVATE_URLS", "false")
    services.reload_settings()
    yield get_database()
    monkeypatch.undo()
    services.reload_settings()


PRIVATE = [
    "https://10.1.2.3/hooks",
    "https://192.168.0.10/hooks",
    "https://169.254.169.254/latest/meta-data",
    "https://127.0.0.1:8443/hooks",
    "https://[::1]/hooks",
    "https://0x7f.1/hooks",
    "https://localhost/hooks",
    "http://hooks.example.test/plain-http",
    "https://user:pw@hooks.example.test/hooks",
]


@pytest.mark.parametrize("url", PRIVATE)
def test_private_and_unsafe_urls_are_refused_at_registration(guarded: Database, url: str) -> None:
    org = create_organization(guarded, f"Guarded {uuid.uuid4().hex[:6]}")
    with pytest.raises(UnsafeURLError):
        add_endpoint(guarded, org.id, url, ["run.failed"])
    with guarded.tenant(org.id) as session:
        assert session.scalar(select(func.count()).select_from(EventEndpoint)) == 0


def test_a_name_that_resolves_to_a_private_address_is_refused_at_connect(
    guarded: Database, loopback_only: list[tuple[object, ...]]
) -> None:
    sent = sender.send("https://localhost:9/hooks", "whsec_" + "A" * 43, "id", b"{}", utcnow())
    assert not sent.ok and sent.status_code is None
    assert "not a public address" in sent.response
    assert loopback_only == []  # refused by our guard, before any connect


def _plugs(*args: str) -> Result:
    """`plugs ARGS` in this process (its settings are the test's): what a user sees."""
    return CliRunner().invoke(cli, list(args))


def test_the_events_commands_manage_an_endpoint(app_db: Database) -> None:
    org = create_organization(app_db, f"Cli {uuid.uuid4().hex[:6]}")
    added = _plugs(
        "events", "endpoints", "add", "--org", str(org.id), "--url",
        "https://hooks.example.test/plugs", "--events", "run.failed,records.changed",
        "--description", "ops",
    )  # fmt: skip
    assert added.exit_code == 0, added.output
    endpoint_id = re.search(r"endpoint (\S+)", added.stdout).group(1)
    first = re.search(r"whsec_\S+", added.stdout).group(0)
    rotated = _plugs("events", "endpoints", "rotate-secret", endpoint_id)
    assert rotated.exit_code == 0, rotated.output
    assert re.search(r"whsec_\S+", rotated.stdout).group(0) != first
    assert _plugs("events", "endpoints", "disable", endpoint_id).exit_code == 0
    listed = _plugs("events", "endpoints", "list", "--org", str(org.id))
    assert f"{endpoint_id}  disabled (disabled by an operator)" in listed.stdout
    assert "run.failed,records.changed" in listed.stdout and first not in listed.stdout
    bad = _plugs(
        "events", "endpoints", "add", "--org", str(org.id), "--url", "https://h.example.test/",
        "--events", "run.exploded",
    )  # fmt: skip
    assert bad.exit_code == 1 and "unknown event type 'run.exploded'" in bad.output
    assert _plugs("events", "list", "--org", str(org.id)).stdout == ""
    missing = _plugs("events", "replay", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "no event with id" in missing.output
    assert _plugs("events", "endpoints", "remove", endpoint_id).exit_code == 0
    assert list_endpoints(app_db, org.id) == []


def test_an_organization_never_sees_or_changes_anothers_endpoints(app_db: Database) -> None:
    a = create_organization(app_db, f"A {uuid.uuid4().hex[:6]}")
    b = create_organization(app_db, f"B {uuid.uuid4().hex[:6]}")
    endpoint, _ = add_endpoint(app_db, a.id, "https://a.example.test/hooks", ["run.failed"])
    assert list_endpoints(app_db, b.id) == []
    with pytest.raises(NotFoundError):
        set_enabled(app_db, b.id, endpoint.id, False)
    with pytest.raises(NotFoundError):
        rotate_secret(app_db, b.id, endpoint.id)
    assert [e.enabled for e in list_endpoints(app_db, a.id)] == [True]
