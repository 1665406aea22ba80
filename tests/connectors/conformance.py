"""The conformance suite every connector passes against its simulator.

A connector's test module subclasses :class:`ConnectorConformance` and implements the few
hooks of :class:`VendorHarness`; the behaviours below then run through a real worker into
PostgreSQL against the simulator over HTTP:

paging to the end, cursor resume, 429 with Retry-After, 5xx then success, an idempotent
re-run (the second run changes no row), a record that fails mapping (counted, with its
reason, and replayable), an authentication failure (the run fails, the integration is
marked, no retry loop), and write-back with a partial failure.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Any, Protocol

import pytest

from models import Integration
from models.session import Database
from runs import sync
from tests.connectors.harness import Vendor, wait_for_run


class VendorHarness(Protocol):
    """What a connector's test module tells the suite about its vendor and simulator."""

    stream: str  # the main pull stream, e.g. "contacts"
    export_stream: str | None  # its write-back stream, if any
    entity: type  # the model the stream fills

    def connect(
        self, db: Database, *, bad_credentials: bool = False
    ) -> AbstractContextManager[Vendor]:
        """A fresh organization with an integration pointed at a running simulator."""

    def seed(self, vendor: Vendor, count: int) -> list[str]:
        """Create ``count`` records in the simulator; their vendor ids."""

    def change(self, vendor: Vendor, record_id: str) -> None:
        """Modify one record in the simulator (it must show up in the next incremental run)."""

    def break_record(self, vendor: Vendor, record_id: str, *, broken: bool = True) -> None:
        """Make one record unmappable (or fix it again)."""

    def throttle(self, vendor: Vendor, count: int, retry_after: float) -> None:
        """Answer the next ``count`` calls with 429 and Retry-After."""

    def fail(self, vendor: Vendor, count: int, status: int) -> None:
        """Answer the next ``count`` calls with ``status``."""

    def make_local_rows(self, vendor: Vendor, good: int, bad: int) -> None:
        """Rows of ours to write back: ``good`` the vendor takes, ``bad`` it refuses."""

    def requests(self, vendor: Vendor) -> list[Any]:
        """The simulator's request log: items with ``.status``."""


class ConnectorConformance:
    """Subclass with a ``harness`` fixture returning a :class:`VendorHarness`."""

    @pytest.fixture
    def harness(self) -> VendorHarness:  # pragma: no cover - overridden
        raise NotImplementedError

    @pytest.fixture(autouse=True)
    def _worker(self, sync_worker: Any) -> Iterator[None]:
        yield

    def test_a_full_sync_pages_to_the_end(self, harness: VendorHarness, app_db: Database) -> None:
        with harness.connect(app_db) as vendor:
            harness.seed(vendor, 250)
            run = vendor.sync(streams=[harness.stream], full_refresh=True)
            assert (run.status, run.records_processed, run.records_failed) == ("success", 250, 0)
            assert vendor.count(harness.entity) == 250

    def test_an_incremental_run_resumes_from_the_cursor(
        self, harness: VendorHarness, app_db: Database
    ) -> None:
        with harness.connect(app_db) as vendor:
            ids = harness.seed(vendor, 150)
            assert vendor.sync(streams=[harness.stream]).records_processed == 150
            harness.change(vendor, ids[3])
            run = vendor.sync(streams=[harness.stream])
            assert run.status == "success" and 1 <= run.records_processed < 150

    def test_429_with_retry_after_then_success(
        self, harness: VendorHarness, app_db: Database
    ) -> None:
        with harness.connect(app_db) as vendor:
            harness.seed(vendor, 120)
            harness.throttle(vendor, 1, retry_after=1)
            run = vendor.sync(streams=[harness.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 120)
            assert 429 in [r.status for r in harness.requests(vendor)]

    def test_5xx_then_success(self, harness: VendorHarness, app_db: Database) -> None:
        with harness.connect(app_db) as vendor:
            harness.seed(vendor, 120)
            harness.fail(vendor, 2, status=503)
            run = vendor.sync(streams=[harness.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 120)
            assert 503 in [r.status for r in harness.requests(vendor)]

    def test_a_second_run_changes_no_row(self, harness: VendorHarness, app_db: Database) -> None:
        with harness.connect(app_db) as vendor:
            harness.seed(vendor, 130)
            vendor.sync(streams=[harness.stream], full_refresh=True)
            table = harness.entity.__tablename__
            before = vendor.audit_rows(table)
            run = vendor.sync(streams=[harness.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 130)
            assert vendor.audit_rows(table) == before

    def test_a_record_that_fails_mapping_is_counted_reasoned_and_replayable(
        self, harness: VendorHarness, app_db: Database
    ) -> None:
        with harness.connect(app_db) as vendor:
            ids = harness.seed(vendor, 20)
            harness.break_record(vendor, ids[3])
            run = vendor.sync(streams=[harness.stream], full_refresh=True)
            assert (run.status, run.records_processed, run.records_failed) == ("partial", 19, 1)
            [failure] = run.error_details["failures"]
            assert failure["record_id"] == ids[3] and failure["reason"]
            harness.break_record(vendor, ids[3], broken=False)
            replay = wait_for_run(
                app_db, vendor.org_id, sync.replay_run(app_db, vendor.org_id, run.id)
            )
            assert (replay.status, replay.records_processed) == ("success", 1)

    def test_an_auth_failure_fails_the_run_without_retrying(
        self, harness: VendorHarness, app_db: Database
    ) -> None:
        with harness.connect(app_db, bad_credentials=True) as vendor:
            harness.seed(vendor, 5)
            run = vendor.sync(streams=[harness.stream])
            assert run.status == "failed" and "authentication failed" in run.message
            assert sum(1 for r in harness.requests(vendor) if r.status in (401, 403)) == 1
            with app_db.tenant(vendor.org_id) as session:
                assert session.get(Integration, vendor.integration_id).status == "error"

    def test_write_back_counts_a_partial_failure_per_record(
        self, harness: VendorHarness, app_db: Database
    ) -> None:
        if harness.export_stream is None:
            pytest.skip("this connector writes nothing back")
        with harness.connect(app_db) as vendor:
            harness.make_local_rows(vendor, good=3, bad=1)
            run = vendor.sync(streams=[harness.export_stream])
            assert (run.status, run.records_processed, run.records_failed) == ("partial", 3, 1)
            again = vendor.sync(streams=[harness.export_stream])
            assert again.records_processed == 0  # nothing changed here since
