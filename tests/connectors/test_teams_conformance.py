"""Teams passes the connector conformance suite against the Graph simulator: the
organizer's calendar (``events``) in, events that ask for Teams out as Teams meetings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from connectors.testing import ConformanceConfig, ConnectorConformance, Vendor
from models import Event
from tests.connectors.harness import ORGANIZER, graph_simulator, teams_credentials, teams_settings

TEAMS = {"meeting_platform": "teams"}


def make_events(vendor: Vendor, good: int, bad: int) -> None:
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


class TestTeamsConformance(ConnectorConformance):
    config = ConformanceConfig(
        provider="teams",
        stream="events",
        entity=Event,
        simulator=graph_simulator,
        credentials=teams_credentials,
        bad_credentials=lambda sim: teams_credentials(sim, "not-the-secret"),
        settings=teams_settings,
        seed=lambda vendor, count: vendor.sim.add_events(ORGANIZER, count),
        change=lambda vendor, event_id: vendor.sim.update_event(event_id, subject="Changed"),
        break_record=lambda vendor, event_id, broken: vendor.sim.break_event(
            event_id, broken=broken
        ),
        export_stream="meetings",
        make_local_rows=make_events,
    )
