"""Third parties add a connector through the `plugs.connectors` entry point, without editing
ours, and test it with the conformance suite shipped in the platform (connectors.testing)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from connectors import registry, testing
from core.errors import ConfigError
from models import Contact
from models.session import Database
from tests import services
from tests.conftest import ROOT
from tests.connectors.harness import Vendor

EXAMPLE = ROOT / "tests" / "thirdparty_connector"


def test_an_unknown_provider_lists_the_installed_ones() -> None:
    with pytest.raises(ConfigError, match="installed: .*hubspot"):
        registry.get_connector("salesforce")


def test_an_installed_third_party_connector_is_found(acme_installed: Path) -> None:
    assert "acme" in registry.installed()
    assert registry.get_connector("acme").provider == "acme"


def test_a_third_party_connector_syncs_through_a_real_worker(
    acme_installed: Path, platform_env: dict[str, str], app_db: Database, tmp_path: Path
) -> None:
    from plugs_acme.simulator import AcmeSimulator

    worker = services.start_worker(platform_env, tmp_path, concurrency=1)
    try:
        sim = AcmeSimulator()
        refs = sim.add_people(120)  # three pages of 50
        with testing.connect(app_db, "acme", sim, {"token": sim.token}, vendor=Vendor) as acme:
            run = acme.sync()
            with app_db.tenant(acme.org_id) as session:
                emails = sorted(session.scalars(select(Contact.email)))
        assert (run.status, run.records_processed) == ("success", 120), worker.output()[-3000:]
        assert emails == sorted(f"p{ref}@acme.example" for ref in refs)
    finally:
        worker.stop()


def test_the_third_party_passes_the_conformance_suite_from_its_own_tests(
    thirdparty_site: Path, pg_server_url: str, redis_url: str
) -> None:
    """The example's own tests (one class and a config) run as its author runs them: pytest
    in its folder, our plugin found through the installed platform's entry point, its
    package on the path, nothing of our test suite loaded."""
    ours = ("PYTEST_XDIST_", "PYTEST_CURRENT_TEST")  # this run's, not the example's
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("PLUGS_") and not k.startswith("PLUGS_TEST_"))
        and not k.startswith(ours)
    }
    env |= {"PYTHONPATH": str(thirdparty_site), "PLUGS_TEST_DATABASE_URL": pg_server_url}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "tests"],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    summary = output.strip().splitlines()[-1]
    assert re.search(r"\b7 passed, 1 skipped\b", summary), output[-4000:]
