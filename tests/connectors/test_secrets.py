"""A canary token used as a credential appears nowhere an operator or an attacker could read:
not in worker logs, broker messages, the result backend, integration_logs, audit rows or
exception text."""

from __future__ import annotations

import json
import secrets

import pytest
import redis
from sqlalchemy import select

from connectors import loading
from core.errors import AuthError
from models import AuditLog, Integration, IntegrationLog
from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from tests import services
from tests.connectors.harness import hubspot


def _redis_dump(url: str) -> str:
    """Every key and value of the run's Redis db: broker queues, unacked messages, results."""
    client = redis.Redis.from_url(url)
    readers = {
        "string": client.get,
        "list": lambda key: client.lrange(key, 0, -1),
        "hash": client.hgetall,
        "set": client.smembers,
        "zset": lambda key: client.zrange(key, 0, -1),
    }
    parts = []
    for key in client.scan_iter():
        reader = readers.get(client.type(key).decode())
        parts.append(f"{key!r}={reader(key) if reader else b''!r}")
    client.close()
    return "\n".join(parts)


def test_a_canary_token_never_leaks(
    platform_env: dict[str, str], app_db: Database, sync_worker: services.WorkerProcess
) -> None:
    canary = f"pat-na1-canary-{secrets.token_hex(8)}"
    sim = HubSpotSimulator(private_app_token=canary)
    with hubspot(app_db, sim=sim, token=canary) as good:
        sim.add_contacts(30)
        assert good.sync(full_refresh=True).status == "success"
    with hubspot(app_db, token=f"{canary}-revoked") as bad:
        run = bad.sync(streams=["contacts"])
        assert run.status == "failed"
        with app_db.tenant(bad.org_id) as session:
            integration = session.get(Integration, bad.integration_id)
        with pytest.raises(AuthError) as error:
            with loading.open_client(loading.open_connector(integration)) as client:
                client.request("GET", "/crm/v3/objects/contacts")
    places = {
        "worker log": sync_worker.output(),
        "exception": f"{error.value!s} {error.value!r}",
        "broker and results": _redis_dump(platform_env["PLUGS_BROKER_URL"]),
    }
    for org_id in (good.org_id, bad.org_id):
        with app_db.tenant(org_id) as session:
            runs = session.scalars(select(IntegrationLog)).all()
            audits = session.scalars(select(AuditLog)).all()
            stored = session.scalars(select(Integration.credentials)).all()
        places[f"integration_logs {org_id}"] = json.dumps(
            [[r.message, r.request_data, r.response_data, r.error_details] for r in runs],
            default=str,
        )
        places[f"audit_logs {org_id}"] = json.dumps([[a.old_values, a.new_values] for a in audits])
        places[f"credentials column {org_id}"] = json.dumps(stored)
    assert "maintenance" in places["worker log"] or "sync.page" in places["worker log"]
    leaked = [where for where, text in places.items() if canary in text]
    assert leaked == []
