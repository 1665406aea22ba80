"""Acme passes the platform's connector conformance suite against its simulator."""

from __future__ import annotations

from plugs_acme.simulator import AcmeSimulator

from connectors.testing import ConformanceConfig, ConnectorConformance
from models import Contact


class TestAcme(ConnectorConformance):
    config = ConformanceConfig(
        provider="acme",
        stream="people",
        entity=Contact,
        simulator=AcmeSimulator,
        credentials={"token": "acme-token"},
        bad_credentials={"token": "stolen-token"},
        seed=lambda vendor, count: vendor.sim.add_people(count),
        change=lambda vendor, ref: vendor.sim.update_person(ref, given="Changed"),
        break_record=lambda vendor, ref, broken: vendor.sim.break_person(ref, broken),
    )
