"""A canary token used as a credential appears nowhere an operator or an attacker could read:
not in worker logs, broker messages, the result backend, integration_logs, sync_stream_runs,
audit rows, the integration's metadata or exception text; not even when the vendor echoes it
back upper- or lower-cased, URL-encoded, in base64 or hex."""

from __future__ import annotations

import base64
import json
import secrets
import urllib.parse
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import select, text

from connectors import loading
from core.errors import AuthError, FatalError
from models import AuditLog, Integration, IntegrationLog
from models.session import Database
from simulators.hubspot.api import error_body
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


# --- a vendor that echoes the token back in every case and encoding -------------------------


def echoed_forms(secret: str) -> dict[str, str]:
    """``secret`` as a vendor or a library may echo it, computed here by hand."""
    data = secret.encode()
    return {
        "as is": secret,
        "upper case": secret.upper(),
        "lower case": secret.lower(),
        "swapped case": secret.swapcase(),
        "url-encoded": urllib.parse.quote(secret, safe=""),
        "url-encoded, lower-case escapes": urllib.parse.quote(secret, safe="").lower(),
        "form-encoded": urllib.parse.quote_plus(f"{secret} "),
        "url-encoded upper case": urllib.parse.quote(secret.upper(), safe=""),
        "base64": base64.b64encode(data).decode(),
        "base64 unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64 urlsafe": base64.urlsafe_b64encode(data).decode(),
        "base64 of the upper case": base64.b64encode(secret.upper().encode()).decode(),
        "base64 of a basic-auth pair": base64.b64encode(b"user:" + data).decode(),
        "base64 urlsafe of a basic-auth pair": base64.urlsafe_b64encode(b"ab:" + data)
        .decode()
        .rstrip("="),
        "hex": data.hex(),
        "hex upper case": data.hex().upper(),
    }


def a_canary() -> str:
    """A valid bearer token that differs from each of its forms above (mixed case, ``+`` and
    ``/``)."""
    return f"pat-NA1-{secrets.token_hex(6)}+Canary/{secrets.token_hex(6)}"


class EchoingHubSpot(HubSpotSimulator):
    """HubSpot answering every API call with ``status`` and an error message that repeats
    the bearer token it was sent in every form of :func:`echoed_forms`."""

    def __init__(self, token: str, status: int) -> None:
        super().__init__(private_app_token=token)
        self.status, self.echoed = status, 0

    def handle(self, request: httpx.Request) -> httpx.Response:
        if not self.is_api_call(request):
            return super().handle(request)
        token = request.headers.get("authorization", "").partition(" ")[2]
        said = "; ".join(f"{name} was {form}" for name, form in echoed_forms(token).items())
        self.echoed += 1
        body = error_body("INVALID_AUTHENTICATION", f"Echoing what you sent: {said}")
        return httpx.Response(self.status, json=body)


def _stored(db: Database, org_id: Any) -> dict[str, str]:
    """Every row of the tables a failed run writes to, as JSON text."""
    tables = (
        "integration_logs",
        "sync_stream_runs",
        "sync_page_outcomes",
        "audit_logs",
        "integrations",
    )
    with db.tenant(org_id) as session:
        return {
            table: session.scalar(text(f"SELECT coalesce(json_agg(t)::text, '') FROM {table} t"))
            for table in tables
        }


@pytest.mark.parametrize("status", [401, 400])
def test_a_canary_echoed_in_any_case_or_encoding_is_stored_and_logged_nowhere(
    platform_env: dict[str, str],
    app_db: Database,
    sync_worker: services.WorkerProcess,
    status: int,
) -> None:
    canary = a_canary()
    assert [name for name, form in echoed_forms(canary).items() if form == canary] == ["as is"]
    vendor = EchoingHubSpot(canary, status)
    with hubspot(app_db, sim=vendor, token=canary) as echoing:
        run = echoing.sync(streams=["contacts"])
        with app_db.tenant(echoing.org_id) as session:
            integration = session.get(Integration, echoing.integration_id)
        with pytest.raises((AuthError, FatalError)) as error:
            with loading.open_client(loading.open_connector(integration)) as client:
                client.request("GET", "/crm/v3/objects/contacts")
    stored = _stored(app_db, echoing.org_id)
    places = {
        **stored,
        "worker log": sync_worker.output(),
        "exception": f"{error.value!s} {error.value!r}",
        "broker and results": _redis_dump(platform_env["PLUGS_BROKER_URL"]),
    }
    # The vendor was called, the run failed on its answer, and what it said was kept, scrubbed.
    assert vendor.echoed >= 2 and run.status == "failed"
    assert "Echoing what you sent" in stored["sync_stream_runs"]
    assert "[redacted]" in stored["sync_stream_runs"]
    assert "Echoing what you sent" in str(error.value)
    if status == 401:
        assert integration.status == "error"
        assert "Echoing what you sent" in stored["integrations"]  # metadata.last_error
        assert "Echoing what you sent" in stored["audit_logs"]  # the metadata change, audited
    leaked = [
        (where, name)
        for name, form in echoed_forms(canary).items()
        for where, content in places.items()
        if form in content
    ]
    assert leaked == []
