"""docker-compose.yml gives each service what it needs and nothing more: the roles' URLs,
not the superuser's; a feed secret; a worker name its healthcheck pings."""

from __future__ import annotations

import re

from tests.test_compose import OURS, SERVICES


def _environment(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in SERVICES[name]["environment"].items()}


def test_services_connect_as_the_application_role_and_only_migrate_as_the_owner() -> None:
    migrate = _environment("migrate")
    assert migrate["PLUGS_MIGRATION_DATABASE_URL"].startswith("postgresql+psycopg://postgres:")
    for name in (n for n in OURS if n != "migrate"):
        env = _environment(name)
        assert env["PLUGS_DATABASE_URL"].startswith("postgresql+psycopg://plugs_app:"), name
        assert env["PLUGS_SYSTEM_DATABASE_URL"].startswith("postgresql+psycopg://plugs_system:")
        superuser = [k for k, v in env.items() if "://postgres:" in v or k.endswith("_PASSWORD")]
        assert "PLUGS_MIGRATION_DATABASE_URL" not in env and superuser == [], name


def test_every_service_signs_feed_tokens_with_a_secret_it_must_be_given() -> None:
    for name in OURS:
        assert _environment(name)["PLUGS_FEED_SECRET"].startswith("${PLUGS_FEED_SECRET:?"), name


def test_the_worker_healthcheck_pings_the_name_the_worker_has() -> None:
    worker = SERVICES["worker"]
    command = worker["command"]
    name = command[command.index("--hostname") + 1]
    assert name.endswith("@%h")
    check = " ".join(worker["healthcheck"]["test"])
    assert worker["healthcheck"]["test"][0] == "CMD-SHELL"  # a shell expands $HOSTNAME
    assert re.search(rf"--destination {re.escape(name[:-3])}@\$\$HOSTNAME\b", check), check
