"""The operator interface of syncs: `plugs integrations`, `plugs sync`, `plugs logs`, as typed."""

from __future__ import annotations

import json
import uuid

import pytest

from models.accounts import create_organization
from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import serve

pytestmark = pytest.mark.usefixtures("sync_worker")


def test_add_sync_wait_logs_and_replay(
    plugs, platform_env: dict[str, str], app_db: Database
) -> None:
    sim = HubSpotSimulator(private_app_token="pat-na1-cli")
    ids = sim.add_contacts(40)
    sim.update_contact(ids[7], email="broken@@example.test")
    org = create_organization(app_db, "CLI customer")
    with serve(sim) as server:
        added = plugs(
            "integrations",
            "add",
            "hubspot",
            "--org",
            str(org.id),
            "--token",
            "pat-na1-cli",
            "--setting",
            f"base_url={server.base_url}",
            env=platform_env,
        )
        assert added.returncode == 0, added.stderr
        integration_id = uuid.UUID(added.stdout.strip())
        listed = plugs("integrations", "list", "--org", str(org.id), env=platform_env)
        assert f"{integration_id}  hubspot" in listed.stdout

        synced = plugs(
            "sync", str(integration_id), "--stream", "contacts", "--wait", env=platform_env
        )
        assert synced.returncode == 0, synced.stderr
        run_id = synced.stdout.splitlines()[0]
        assert synced.stdout.splitlines()[1] == "partial: 39 processed, 1 failed"

        logs = plugs("logs", str(integration_id), "--json", env=platform_env)
        [run] = [json.loads(line) for line in logs.stdout.splitlines()]
        assert run["id"] == run_id and run["records_failed"] == 1
        assert run["error_details"]["failures"][0]["record_id"] == ids[7]
        assert "pat-na1-cli" not in logs.stdout + listed.stdout + synced.stdout

        sim.update_contact(ids[7], email="fixed@example.test")
        replayed = plugs("sync", "replay", run_id, "--wait", env=platform_env)
        assert replayed.returncode == 0, replayed.stderr
        assert replayed.stdout.splitlines()[1] == "success: 1 processed, 0 failed"


def test_a_failed_sync_exits_non_zero(
    plugs, platform_env: dict[str, str], app_db: Database
) -> None:
    org = create_organization(app_db, "CLI customer")
    with serve(HubSpotSimulator()) as server:
        added = plugs(
            "integrations",
            "add",
            "hubspot",
            "--org",
            str(org.id),
            "--token",
            "wrong",
            "--setting",
            f"base_url={server.base_url}",
            "--no-verify",  # kept unchecked: the sync is what fails here
            env=platform_env,
        )
        result = plugs(
            "sync", added.stdout.strip(), "--stream", "contacts", "--wait", env=platform_env
        )
    assert result.returncode == 1
    assert "authentication failed" in result.stderr and "Traceback" not in result.stderr


def test_bad_input_is_one_line(plugs, platform_env: dict[str, str], app_db: Database) -> None:
    org = create_organization(app_db, "CLI customer")
    unknown = plugs(
        "integrations", "add", "salesforce", "--org", str(org.id), "--token", "t", env=platform_env
    )
    assert (
        unknown.returncode == 1 and "installed: " in unknown.stderr and "hubspot" in unknown.stderr
    )
    missing = plugs("sync", str(uuid.uuid4()), env=platform_env)
    assert missing.returncode == 1 and "no integration with id" in missing.stderr
    bad_stream = plugs(
        "integrations", "add", "hubspot", "--org", str(org.id), "--token", "t", "--no-verify",
        env=platform_env,
    )  # fmt: skip
    stream = plugs("sync", bad_stream.stdout.strip(), "--stream", "deals", env=platform_env)
    assert stream.returncode == 1 and "has no stream deals" in stream.stderr
    for result in (unknown, missing, stream):
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
