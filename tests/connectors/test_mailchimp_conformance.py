"""Mailchimp passes the connector conformance suite against its simulator."""

from __future__ import annotations

from connectors.testing import ConformanceConfig, ConnectorConformance, Vendor
from models import Contact
from simulators.mailchimp.server import MailchimpSimulator
from tests.connectors.harness import mailchimp_credentials, mailchimp_settings


def break_member(vendor: Vendor, record_id: str, broken: bool) -> None:
    email = "broken@@example.test" if broken else f"fixed-{record_id}@example.test"
    vendor.sim.corrupt_member(record_id, email_address=email)


def make_contacts(vendor: Vendor, good: int, bad: int) -> None:
    with vendor.db.tenant(vendor.org_id) as session:
        session.add_all(
            [Contact(first_name=f"G{i}", email=f"g{i}@example.test") for i in range(good)]
        )
        session.add_all([Contact(first_name=f"B{i}", email=f"b{i}@@bad") for i in range(bad)])


class TestMailchimpConformance(ConnectorConformance):
    config = ConformanceConfig(
        provider="mailchimp",
        stream="members",
        entity=Contact,
        simulator=MailchimpSimulator,
        credentials=mailchimp_credentials,
        bad_credentials={"api_key": "ffffffffffffffffffffffffffffffff-us21"},
        # Pages of 100 so that a few hundred members take several pages.
        settings=lambda sim, url: mailchimp_settings(sim, url) | {"page_size": "100"},
        seed=lambda vendor, count: vendor.sim.add_members(count),
        change=lambda vendor, key: vendor.sim.update_member(key, merge_fields={"FNAME": "Changed"}),
        break_record=break_member,
        export_stream="members_export",
        make_local_rows=make_contacts,
    )
