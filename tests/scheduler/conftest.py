"""Fixtures of the scheduler tests: the third-party `acme` connector (cheap runs: its
simulator has nobody to sync), integrations with schedules, and reading what beat did."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from connectors.integrations import add_integration
from models import IntegrationLog, ScheduleSlot
from models.accounts import create_organization
from models.session import Database
from scheduler.schedules import set_schedule
from scheduler.timing import Timing
from simulators.server import RunningServer, serve


def empty_acme(request: httpx.Request) -> httpx.Response:
    """Acme's API with nobody in it: every run is one short page and succeeds."""
    if request.headers.get("Authorization") != "Bearer acme-token":
        return httpx.Response(401, json={"error": "who are you"})
    return httpx.Response(200, json={"people": []})


@pytest.fixture(scope="session")
def acme_server(acme_installed: Path) -> Iterator[RunningServer]:
    """Up for the whole session: runs a test's schedules started are still being worked
    on when it ends, and with their vendor gone they would retry against a closed port,
    taking the shared worker's time from the tests that come after."""
    with serve(empty_acme) as server:
        yield server


def scheduled_integrations(
    db: Database, server: RunningServer, count: int, every: str
) -> tuple[uuid.UUID, list[uuid.UUID]]:
    """A new organization with ``count`` acme integrations syncing ``every``."""
    org = create_organization(db, f"Scheduled {uuid.uuid4().hex[:6]}")
    ids = []
    for _ in range(count):
        integration = add_integration(
            db, org.id, "acme", {"token": "acme-token"}, {"base_url": server.base_url}
        )
        set_schedule(db, integration.id, Timing.parse(every=every))
        ids.append(integration.id)
    return org.id, ids


@dataclass(frozen=True)
class Slot:
    integration_id: uuid.UUID
    slot: datetime
    status: str
    missed: int
    run_id: uuid.UUID | None
    reason: str | None


def slots_of(db: Database, org_id: uuid.UUID) -> list[Slot]:
    with db.tenant(org_id) as session:
        rows = session.execute(
            select(
                ScheduleSlot.integration_id,
                ScheduleSlot.slot,
                ScheduleSlot.status,
                ScheduleSlot.missed,
                ScheduleSlot.run_id,
                ScheduleSlot.reason,
            ).order_by(ScheduleSlot.slot)
        )
        return [Slot(*row) for row in rows]


def scheduled_runs(db: Database, org_id: uuid.UUID) -> list[IntegrationLog]:
    with db.tenant(org_id) as session:
        runs = session.scalars(select(IntegrationLog).order_by(IntegrationLog.created_at)).all()
    return [r for r in runs if r.request_data.get("trigger") == "schedule"]
