"""HubSpot passes the connector conformance suite against its simulator."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from models import Contact
from models.session import Database
from simulators.hubspot.server import HubSpotSimulator
from tests.connectors.conformance import ConnectorConformance
from tests.connectors.harness import Vendor, hubspot


class HubSpotHarness:
    stream = "contacts"
    export_stream = "contacts_export"
    entity = Contact

    def __init__(self) -> None:
        self.sims: dict[Any, HubSpotSimulator] = {}

    @contextmanager
    def connect(self, db: Database, *, bad_credentials: bool = False) -> Iterator[Vendor]:
        token = "pat-na1-wrong" if bad_credentials else None
        with hubspot(db, token=token) as vendor:
            yield vendor

    def seed(self, vendor: Vendor, count: int) -> list[str]:
        return vendor.sim.add_contacts(count)

    def change(self, vendor: Vendor, record_id: str) -> None:
        vendor.sim.update_contact(record_id, firstname="Changed")

    def break_record(self, vendor: Vendor, record_id: str, *, broken: bool = True) -> None:
        email = "broken@@example.test" if broken else f"fixed-{record_id}@example.test"
        vendor.sim.update_contact(record_id, email=email)

    def throttle(self, vendor: Vendor, count: int, retry_after: float) -> None:
        vendor.sim.throttle_next(count, retry_after=retry_after)

    def fail(self, vendor: Vendor, count: int, status: int) -> None:
        vendor.sim.fail_next(count, status=status)

    def make_local_rows(self, vendor: Vendor, good: int, bad: int) -> None:
        with vendor.db.tenant(vendor.org_id) as session:
            session.add_all(
                [Contact(first_name=f"G{i}", email=f"g{i}@example.test") for i in range(good)]
            )
            session.add_all([Contact(first_name=f"B{i}", email=f"b{i}@@bad") for i in range(bad)])

    def requests(self, vendor: Vendor) -> list[Any]:
        return vendor.sim.requests


class TestHubSpotConformance(ConnectorConformance):
    @pytest.fixture
    def harness(self) -> HubSpotHarness:
        return HubSpotHarness()
