"""On RabbitMQ as the broker: a worker consumes it, a sync runs end to end through the
outbox, and a webhook stored by the receiver is handed over and applied.

The test makes a virtual host of its own (``rabbitmqctl``, on this machine) and deletes
it at the end, so no queue or message is left on the shared server."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from connectors.testing.plugin import need as _need
from models import Contact
from models.session import Database
from tests import services
from tests.connectors.harness import hubspot
from tests.webhooks.conftest import BASE, SECRET, Hooked
from workers.http import webhooks
from workers.http.app import create_app

AMQP_HOST = os.environ.get("PLUGS_TEST_AMQP_HOST", "127.0.0.1:5672")


def _rabbitmqctl(*args: str) -> str | None:
    """None when it worked, else why not."""
    tool = shutil.which("rabbitmqctl")
    if tool is None:
        return "rabbitmqctl is not installed"
    try:
        result = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        return "rabbitmqctl timed out"
    return None if result.returncode == 0 else (result.stderr or result.stdout).strip()[:300]


@pytest.fixture(scope="module")
def amqp_url() -> Iterator[str]:
    vhost = f"plugs_test_{secrets.token_hex(4)}"
    _need("RabbitMQ", _rabbitmqctl("add_vhost", vhost))
    try:
        _need("RabbitMQ", _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"))
        yield f"amqp://guest:guest@{AMQP_HOST}/{quote(vhost, safe='')}"
    finally:
        _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="module")
def on_rabbitmq(
    amqp_url: str, platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    """This process and a worker of its own publish to and consume RabbitMQ."""
    env = {**platform_env, "PLUGS_BROKER_URL": amqp_url}
    worker = services.start_worker(env, tmp_path_factory.mktemp("rabbit-worker"))
    saved = os.environ.get("PLUGS_BROKER_URL")
    os.environ["PLUGS_BROKER_URL"] = amqp_url
    services.reload_settings()
    try:
        yield env
    finally:
        os.environ["PLUGS_BROKER_URL"] = saved or platform_env["PLUGS_BROKER_URL"]
        services.reload_settings()
        worker.stop()


def test_a_sync_and_a_webhook_run_through_rabbitmq(on_rabbitmq: dict[str, str]) -> None:
    from models.session import get_database

    db: Database = get_database()
    webhooks.forget_cached()
    credentials = {"private_app_token": "pat-na1-simulator", "client_secret": SECRET}
    with hubspot(db, credentials=credentials, rate_limit="1000") as vendor:
        ids = vendor.sim.add_contacts(120)
        run = vendor.sync()
        assert (run.status, run.records_processed) == ("success", 120)

        with TestClient(create_app(), base_url=BASE) as client:
            hooked = Hooked(vendor, client)
            response = hooked.post([vendor.sim.contact_event("deletion", ids[0])])
            assert response.status_code == 200
            [delivery] = hooked.wait_processed()

        assert delivery.status == "processed"
        assert vendor.count(Contact) == 119
    webhooks.forget_cached()
