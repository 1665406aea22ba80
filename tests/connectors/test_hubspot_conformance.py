"""HubSpot passes the connector conformance suite against its simulator."""

from __future__ import annotations

from connectors.testing import ConformanceConfig, ConnectorConformance, Vendor
from models import Contact
from simulators.hubspot.server import HubSpotSimulator


def break_contact(vendor: Vendor, record_id: str, broken: bool) -> None:
    email = "broken@@example.test" if broken else f"fixed-{record_id}@example.test"
    vendor.sim.update_contact(record_id, email=email)


def make_contacts(vendor: Vendor, good: int, bad: int) -> None:
    with vendor.db.tenant(vendor.org_id) as session:
        session.add_all(
            [Contact(first_name=f"G{i}", email=f"g{i}@example.test") for i in range(good)]
        )
        session.add_all([Contact(first_name=f"B{i}", email=f"b{i}@@bad") for i in range(bad)])


class TestHubSpotConformance(ConnectorConformance):
    config = ConformanceConfig(
        provider="hubspot",
        stream="contacts",
        entity=Contact,
        simulator=HubSpotSimulator,
        credentials={"private_app_token": "pat-na1-simulator"},
        bad_credentials={"private_app_token": "pat-na1-wrong"},
        seed=lambda vendor, count: vendor.sim.add_contacts(count),
        change=lambda vendor, record_id: vendor.sim.update_contact(record_id, firstname="Changed"),
        break_record=break_contact,
        export_stream="contacts_export",
        make_local_rows=make_contacts,
    )
