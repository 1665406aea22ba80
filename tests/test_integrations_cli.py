"""`plugs integrations add|show|update|test|remove` and `plugs schedules list` as an
operator types them, against the vendors' simulators, with a real worker; and a decrypt
failure blamed on our configuration, never on the integration."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import select, update

from connectors.credentials import KeyRing, new_key_entry, store_credentials
from models import Integration, IntegrationLog, WebhookSubscription
from models.accounts import create_organization
from models.schedules import SyncSchedule
from models.session import Database
from scheduler.dispatch import dispatch_due
from simulators.hubspot.server import HubSpotSimulator
from simulators.server import serve
from tests.connectors.harness import hubspot, mailchimp, teams, wait_for_run, zoom

pytestmark = pytest.mark.usefixtures("sync_worker")
TOKEN = "pat-na1-simulator"  # what the simulator and the harness use by default


def _one_line_error(result: Any) -> str:
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def _integration(db: Database, org_id: uuid.UUID, integration_id: uuid.UUID) -> Integration:
    with db.tenant(org_id) as session:
        row = session.scalars(
            select(Integration)
            .where(Integration.id == integration_id)
            .execution_options(include_deleted=True)
        ).one()
        session.expunge(row)
        return row


def _org(db: Database) -> uuid.UUID:
    return create_organization(db, f"Operators {uuid.uuid4().hex[:8]}").id


def test_add_checks_the_token_first_and_keeps_nothing_it_cannot_use(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    org_id = _org(app_db)
    with serve(HubSpotSimulator(private_app_token=TOKEN)) as server:
        base = ["integrations", "add", "hubspot", "--org", str(org_id)]
        url = ["--setting", f"base_url={server.base_url}"]
        refused = plugs(*base, "--token", "pat-na1-revoked", *url, env=platform_env)
        line = _one_line_error(refused)
        assert line.startswith("Error: not added: authentication failed: ") and "401" in line
        assert "--no-verify" in line and "pat-na1-revoked" not in refused.stderr
        assert plugs("integrations", "list", "--org", str(org_id), env=platform_env).stdout == ""

        added = plugs(*base, "--token", TOKEN, *url, "--name", "Acme CRM", env=platform_env)
        assert added.returncode == 0, added.stderr
        integration_id = uuid.UUID(added.stdout.strip())
        unchecked = plugs(
            *base, "--token", "pat-na1-revoked", *url, "--no-verify", env=platform_env
        )
        assert unchecked.returncode == 0, unchecked.stderr
    assert _integration(app_db, org_id, integration_id).status == "connected"
    assert _integration(app_db, org_id, uuid.UUID(unchecked.stdout.strip())).status == (
        "disconnected"
    )
    listed = plugs("integrations", "list", "--org", str(org_id), env=platform_env).stdout
    assert len(listed.splitlines()) == 2 and f"{integration_id}  hubspot" in listed
    assert "Acme CRM" in listed


def test_show_update_and_test_fix_a_bad_token_without_showing_it(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    with hubspot(app_db, token=TOKEN, tier="professional") as vendor:
        integration = str(vendor.integration_id)
        shown = plugs("integrations", "show", integration, env=platform_env)
        assert shown.returncode == 0, shown.stderr
        fields = dict(line.split(None, 1) for line in shown.stdout.splitlines()[:7])
        assert fields["provider"] == "hubspot (crm)" and fields["status"] == "disconnected, active"
        assert f"base_url={vendor.base_url}" in shown.stdout and "tier=professional" in shown.stdout
        assert "private_app_token (encrypted with key k" in shown.stdout
        assert TOKEN not in shown.stdout

        broken = plugs("integrations", "update", integration, "--token", "pat-x", env=platform_env)
        assert broken.stdout.strip() == f"updated {integration}: credentials"
        # the stored private_app_token wins over token: the operator replaces that field
        replaced = plugs(
            "integrations", "update", integration,
            "--credentials", '{"private_app_token": "pat-na1-wrong"}', env=platform_env,
        )  # fmt: skip
        assert replaced.returncode == 0, replaced.stderr
        failed = plugs("integrations", "test", integration, env=platform_env)
        line = _one_line_error(failed)
        assert line.startswith("Error: failed: authentication failed: ") and "401" in line
        assert "pat-na1-wrong" not in failed.stderr + failed.stdout
        assert _integration(app_db, vendor.org_id, vendor.integration_id).status == "error"

        fixed = plugs(
            "integrations", "update", integration, "--credentials",
            f'{{"private_app_token": "{TOKEN}"}}', "--name", "CRM", env=platform_env,
        )  # fmt: skip
        assert fixed.stdout.strip() == f"updated {integration}: credentials, name"
        ok = plugs("integrations", "test", integration, env=platform_env)
        assert ok.returncode == 0 and ok.stdout.startswith("ok: hubspot answered"), ok.stderr
        row = _integration(app_db, vendor.org_id, vendor.integration_id)
        assert row.status == "connected" and "last_error" not in row.metadata_
        assert row.metadata_["name"] == "CRM"
        shown = plugs("integrations", "show", integration, env=platform_env).stdout
        assert "name          CRM" in shown and TOKEN not in shown


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--setting", "base_url=https://169.254.169.254"], "setting base_url: "),
        (["--unset", "no_such_setting"], "has no setting no_such_setting"),
        (["--credentials", '{"password": "x"}'], "hubspot takes no credential password"),
        (["--credentials", "[1]"], "--credentials must be a JSON object"),
        ([], "nothing to change"),
    ],
)
def test_bad_updates_are_one_line_and_change_nothing(
    plugs: Any, platform_env: dict[str, str], app_db: Database, args: list[str], message: str
) -> None:
    with hubspot(app_db, token=TOKEN) as vendor:
        before = _integration(app_db, vendor.org_id, vendor.integration_id)
        env = {**platform_env, "PLUGS_ALLOW_PRIVATE_URLS": "false"}
        result = plugs("integrations", "update", str(vendor.integration_id), *args, env=env)
        assert message in _one_line_error(result)
        after = _integration(app_db, vendor.org_id, vendor.integration_id)
        assert (after.settings, after.credentials) == (before.settings, before.credentials)
    missing = plugs("integrations", "show", str(uuid.uuid4()), env=platform_env)
    assert "no integration with id" in _one_line_error(missing)


def test_each_vendor_answers_the_check_and_a_wrong_setting_is_named(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    with zoom(app_db) as vendor:
        result = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert result.stdout.startswith("ok: zoom answered: user "), result.stderr
    with mailchimp(app_db) as vendor:
        result = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert result.stdout.startswith("ok: mailchimp answered: audience "), result.stderr
    with mailchimp(app_db, list_id="nope") as vendor:
        result = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert "Mailchimp has no audience nope (check setting list_id)" in _one_line_error(result)
    with teams(app_db) as vendor:
        result = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert result.stdout.startswith("ok: teams answered: organizer "), result.stderr
    with teams(app_db, client_secret="wrong") as vendor:
        result = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert "authentication failed" in _one_line_error(result)


def test_remove_deletes_the_graph_subscription_schedules_and_the_integration(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    url = "https://plugs.test/webhooks/teams/x"
    with teams(app_db, notification_url=url) as vendor:  # adding it subscribes at Graph
        integration = str(vendor.integration_id)
        assert len(vendor.sim.store.subscriptions) == 1
        scheduled = plugs("schedules", "set", integration, "--every", "1h", env=platform_env)
        assert scheduled.returncode == 0, scheduled.stderr

        removed = plugs("integrations", "remove", integration, env=platform_env)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.strip() == (
            f"removed {integration}: 1 schedules cleared, 1 vendor subscriptions deleted"
        )
        assert vendor.sim.store.subscriptions == {}
    with app_db.tenant(vendor.org_id) as session:
        assert session.scalars(select(WebhookSubscription.status)).all() == ["removed"]
        assert session.scalars(select(SyncSchedule)).all() == []
    assert _integration(app_db, vendor.org_id, vendor.integration_id).is_deleted
    listed = plugs("integrations", "list", "--org", str(vendor.org_id), env=platform_env)
    assert listed.stdout == ""
    for args in (["sync", integration], ["integrations", "remove", integration]):
        assert "no integration with id" in _one_line_error(plugs(*args, env=platform_env))


def test_schedules_list_shows_the_state_of_the_run_the_last_slot_started(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    with hubspot(app_db, token=TOKEN) as vendor:
        vendor.sim.add_contacts(5)
        integration = str(vendor.integration_id)
        args = ["schedules", "set", integration, "--every", "1h", "--stream", "contacts"]
        assert plugs(*args, env=platform_env).returncode == 0
        with app_db.tenant(vendor.org_id) as session:  # due now
            session.execute(update(SyncSchedule).values(next_run_at=SyncSchedule.created_at))
        dispatch_due(app_db)
        with app_db.tenant(vendor.org_id) as session:
            run_id = session.scalars(select(SyncSchedule.last_run_id)).one()
        assert run_id is not None
        assert wait_for_run(app_db, vendor.org_id, run_id).status == "success"
        listed = plugs("schedules", "list", "--org", str(vendor.org_id), env=platform_env)
    [line] = listed.stdout.splitlines()
    assert line.startswith(f"{integration}  hubspot") and line.endswith(" success"), line


def test_a_decrypt_failure_fails_the_run_as_ours_and_never_marks_the_integration(
    plugs: Any, platform_env: dict[str, str], app_db: Database
) -> None:
    with hubspot(app_db, token=TOKEN) as vendor:
        vendor.sim.add_contacts(3)
        assert vendor.sync(streams=["contacts"]).status == "success"
        assert _integration(app_db, vendor.org_id, vendor.integration_id).status == "connected"
        unknown_key = KeyRing.parse(new_key_entry())  # a key PLUGS_SECRET_KEYS does not hold
        with app_db.tenant(vendor.org_id) as session:
            row = session.get_one(Integration, vendor.integration_id)
            store_credentials(session, row, {"private_app_token": TOKEN}, keys=unknown_key)

        run = vendor.sync(streams=["contacts"])
        assert run.status == "failed"
        assert "contacts: our configuration: integration " in (run.message or "")
        assert "which PLUGS_SECRET_KEYS does not hold" in (run.message or "")
        tested = plugs("integrations", "test", str(vendor.integration_id), env=platform_env)
        assert "Error: failed: our configuration: " in _one_line_error(tested)
        row = _integration(app_db, vendor.org_id, vendor.integration_id)
        assert row.status == "connected" and "last_error" not in row.metadata_
        with app_db.tenant(vendor.org_id) as session:
            statuses = session.scalars(select(IntegrationLog.status)).all()
        assert sorted(statuses) == ["failed", "success"]
