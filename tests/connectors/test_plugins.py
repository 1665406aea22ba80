"""Third parties add a connector through the `plugs.connectors` entry point, without editing ours."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from connectors import registry
from connectors.integrations import add_integration
from core.errors import ConfigError
from models import Contact
from models.accounts import create_organization
from models.session import Database
from runs import sync
from simulators.server import serve
from tests import services
from tests.connectors.harness import wait_for_run

PEOPLE = [{"ref": i, "given": f"Person {i}", "mail": f"p{i}@acme.example"} for i in range(5)]


def acme_api(request: httpx.Request) -> httpx.Response:
    if request.headers.get("Authorization") != "Bearer acme-token":
        return httpx.Response(401, json={"error": "who are you"})
    offset, count = int(request.url.params["offset"]), int(request.url.params["count"])
    return httpx.Response(200, json={"people": PEOPLE[offset : offset + count]})


def test_an_unknown_provider_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match="installed: .*hubspot"):
        registry.get_connector("salesforce")


def test_an_installed_third_party_connector_is_found(acme_installed: Path) -> None:
    assert "acme" in registry.installed()
    assert registry.get_connector("acme").provider == "acme"


def test_a_third_party_connector_syncs_through_a_real_worker(
    acme_installed: Path, platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    worker = services.start_worker(platform_env, tmp_path, concurrency=1)
    try:
        with serve(acme_api) as server:
            org = create_organization(app_db, "Acme customer")
            integration = add_integration(
                app_db, org.id, "acme", {"token": "acme-token"}, {"base_url": server.base_url}
            )
            run_id = sync.start_run(app_db, org.id, integration.id)
            run = wait_for_run(app_db, org.id, run_id)
        assert (run.status, run.records_processed) == ("success", 5), worker.output()[-3000:]
        with app_db.tenant(org.id) as session:
            emails = sorted(session.scalars(select(Contact.email)))
        assert emails == sorted(p["mail"] for p in PEOPLE)
    finally:
        worker.stop()
    assert os.path.isdir(acme_installed)
