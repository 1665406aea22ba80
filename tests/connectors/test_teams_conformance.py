"""Teams passes the connector conformance suite against the Graph simulator: the
organizer's calendar (``events``) in, events that ask for Teams out as Teams meetings."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from models import Event
from models.session import Database
from tests.connectors.conformance import ConnectorConformance
from tests.connectors.harness import Vendor, teams

ORGANIZER = "organizer@contoso.test"
TEAMS = {"meeting_platform": "teams"}


class TeamsHarness:
    stream = "events"
    export_stream = "meetings"
    entity = Event

    @contextmanager
    def connect(self, db: Database, *, bad_credentials: bool = False) -> Iterator[Vendor]:
        secret = "not-the-secret" if bad_credentials else None
        with teams(db, client_secret=secret, organizer=ORGANIZER) as vendor:
            yield vendor

    def seed(self, vendor: Vendor, count: int) -> list[str]:
        return vendor.sim.add_events(ORGANIZER, count)

    def change(self, vendor: Vendor, record_id: str) -> None:
        vendor.sim.update_event(record_id, subject="Changed")

    def break_record(self, vendor: Vendor, record_id: str, *, broken: bool = True) -> None:
        vendor.sim.break_event(record_id, broken=broken)

    def throttle(self, vendor: Vendor, count: int, retry_after: float) -> None:
        vendor.sim.throttle_next(count, retry_after=retry_after)

    def fail(self, vendor: Vendor, count: int, status: int) -> None:
        vendor.sim.fail_next(count, status=status)

    def make_local_rows(self, vendor: Vendor, good: int, bad: int) -> None:
        start = datetime.now(UTC) + timedelta(days=3)
        rows = [(f"Workshop {i}", i) for i in range(good)] + [("", good + i) for i in range(bad)]
        with vendor.db.tenant(vendor.org_id) as session:
            session.add_all(
                Event(
                    title=title,
                    event_type="workshop",
                    status="published",
                    start_date=start + timedelta(hours=n),
                    end_date=start + timedelta(hours=n + 1),
                    settings=TEAMS,
                )
                for title, n in rows
            )

    def requests(self, vendor: Vendor) -> list[Any]:
        return vendor.sim.requests


class TestTeamsConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> TeamsHarness:
        return TeamsHarness()
