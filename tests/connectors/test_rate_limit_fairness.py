"""A vendor's 429 storm on some organizations does not slow the others down: a rate-limit
wait longer than PLUGS_MAX_INLINE_WAIT parks the page (outbox, available_at) instead of
holding one of the worker's two slots."""

from __future__ import annotations

import random
import time
from contextlib import ExitStack

from sqlalchemy import func, select

from models import Contact
from models.session import Database
from simulators.base import UNTIL_CLEARED
from simulators.hubspot.server import HubSpotSimulator
from tests.connectors.harness import hubspot

CONTACTS = 3_000


def _timed_sync(vendor) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    run = vendor.sync(streams=["contacts"], full_refresh=True)
    assert (run.status, run.records_processed) == ("success", CONTACTS)
    return time.monotonic() - started


def _storming_sim(seed: int) -> HubSpotSimulator:
    """Every API call answered 429, each with a Retry-After of 1 to 10 s."""
    sim = HubSpotSimulator(enforce_limits=False)
    sim.add_contacts(CONTACTS)
    pick = random.Random(seed)
    for _ in range(500):
        sim.fail_next(1, status=429, retry_after=pick.randint(1, 10))
    sim.fail_next(UNTIL_CLEARED, status=429, retry_after=5)
    return sim


def test_three_organizations_in_a_429_storm_leave_a_fourth_its_pace(app_db: Database) -> None:
    alone_sim = HubSpotSimulator(enforce_limits=False)
    alone_sim.add_contacts(CONTACTS)
    with hubspot(app_db, sim=alone_sim) as alone:
        by_itself = _timed_sync(alone)

    with ExitStack() as stack:
        storms = [stack.enter_context(hubspot(app_db, sim=_storming_sim(i))) for i in range(3)]
        storm_runs = [s.start(streams=["contacts"], full_refresh=True) for s in storms]
        time.sleep(1.0)  # the storm is under way: every slot has met a 429 by now
        fourth_sim = HubSpotSimulator(enforce_limits=False)
        fourth_sim.add_contacts(CONTACTS)
        fourth = stack.enter_context(hubspot(app_db, sim=fourth_sim))
        beside_the_storm = _timed_sync(fourth)

        print(f"alone {by_itself:.2f} s, beside three 429 storms {beside_the_storm:.2f} s")
        assert beside_the_storm <= 2 * by_itself
        assert all(s.sim.requests.where(status=429) for s in storms)

        # The storm passes: the parked pages resume and every contact arrives once.
        for storm in storms:
            storm.sim.clear_faults()
        for storm, run_id in zip(storms, storm_runs, strict=True):
            run = storm.wait(run_id, timeout=120)
            assert (run.status, run.records_processed) == ("success", CONTACTS)
            with app_db.tenant(storm.org_id) as session:
                assert session.scalar(select(func.count()).select_from(Contact)) == CONTACTS
