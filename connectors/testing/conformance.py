"""The conformance suite every connector passes against its simulator.

A test class subclasses :class:`ConnectorConformance` and sets ``config`` to a
:class:`ConformanceConfig`; the behaviours below then run through a real worker into
PostgreSQL against the simulator over HTTP:

paging to the end, cursor resume, 429 with Retry-After, 5xx then success, an idempotent
re-run (the second run changes no row), a record that fails mapping (counted, with its
reason, and replayable), an authentication failure (the run fails, the integration is
marked, no retry loop), and write-back with a partial failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar

import pytest

from connectors.testing.vendor import Vendor, connect
from models import Base, Integration
from models.session import Database

#: Credentials as they are, or made from the simulator (its generated client id, ...).
Credentials = Mapping[str, Any] | Callable[[Any], Mapping[str, Any]]


def _base_url(sim: Any, base_url: str) -> dict[str, str]:
    return {"base_url": base_url}


@dataclass(frozen=True)
class ConformanceConfig:
    """What the suite needs to know about a connector and its simulator.

    The simulator is a :class:`simulators.base.Simulator` (see :mod:`connectors.testing.vendor`).
    The hooks take the :class:`Vendor` of the test (``vendor.sim`` is the simulator,
    ``vendor.db``/``vendor.org_id`` the organization's data, ``vendor.scratch`` a dict of
    the test's own).  Record ids are the vendor's ids as the stream's mapper gives them.
    """

    #: The connector's name in the ``plugs.connectors`` entry-point group.
    provider: str
    #: The main pull stream (it needs a ``cursor_field``: the suite runs it incrementally).
    stream: str
    #: The model that stream fills.
    entity: type[Base]
    #: Makes a fresh simulator for each test (the suite serves it with ``with sim:``).
    simulator: Callable[[], Any]
    credentials: Credentials
    #: Credentials the simulator refuses (a wrong token or secret).
    bad_credentials: Credentials
    #: ``seed(vendor, count)`` creates ``count`` records in the simulator; their ids.
    seed: Callable[[Vendor, int], list[str]]
    #: ``change(vendor, id)`` modifies one record (the next incremental run must see it).
    change: Callable[[Vendor, str], None]
    #: ``break_record(vendor, id, broken)`` makes one record unmappable (or fixes it).
    break_record: Callable[[Vendor, str, bool], None]
    #: The integration's settings for the simulator at ``base_url``.
    settings: Callable[[Any, str], Mapping[str, Any]] = _base_url
    #: Runs once the integration exists, before the test (links, users it needs, ...).
    prepare: Callable[[Vendor], None] | None = None
    #: The write-back stream, if any, and ``make_local_rows(vendor, good, bad)``: rows of
    #: ours it pushes, ``good`` ones the vendor takes and ``bad`` ones it refuses.
    export_stream: str | None = None
    make_local_rows: Callable[[Vendor, int, int], None] | None = None


def _credentials(value: Credentials, sim: Any) -> Mapping[str, Any]:
    return value(sim) if callable(value) else value


class ConnectorConformance:
    """The suite: subclass it as ``Test...`` and set ``config``.

    It uses the fixtures of :mod:`connectors.testing.plugin` (``app_db`` and a session's
    ``sync_worker``), registered by installing the platform.
    """

    config: ClassVar[ConformanceConfig]

    @pytest.fixture(autouse=True)
    def _worker(self, sync_worker: Any) -> Iterator[None]:
        yield

    @contextmanager
    def connect(self, db: Database, *, bad_credentials: bool = False) -> Iterator[Vendor]:
        """A fresh organization with an integration pointed at a fresh, running simulator."""
        config = self.config
        sim = config.simulator()
        given = config.bad_credentials if bad_credentials else config.credentials
        with connect(
            db,
            config.provider,
            sim,
            _credentials(given, sim),
            lambda base_url: config.settings(sim, base_url),
        ) as vendor:
            if config.prepare is not None:
                config.prepare(vendor)
            yield vendor

    def test_a_full_sync_pages_to_the_end(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            config.seed(vendor, 250)
            run = vendor.sync(streams=[config.stream], full_refresh=True)
            assert (run.status, run.records_processed, run.records_failed) == ("success", 250, 0)
            assert vendor.count(config.entity) == 250

    def test_an_incremental_run_resumes_from_the_cursor(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            ids = config.seed(vendor, 150)
            assert vendor.sync(streams=[config.stream]).records_processed == 150
            config.change(vendor, ids[3])
            run = vendor.sync(streams=[config.stream])
            assert run.status == "success" and 1 <= run.records_processed < 150

    def test_429_with_retry_after_then_success(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            config.seed(vendor, 120)
            vendor.sim.fail_next(1, status=429, retry_after=1)
            run = vendor.sync(streams=[config.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 120)
            assert 429 in [r.status for r in vendor.sim.requests]

    def test_5xx_then_success(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            config.seed(vendor, 120)
            vendor.sim.fail_next(2, status=503)
            run = vendor.sync(streams=[config.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 120)
            assert 503 in [r.status for r in vendor.sim.requests]

    def test_a_second_run_changes_no_row(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            config.seed(vendor, 130)
            vendor.sync(streams=[config.stream], full_refresh=True)
            table = config.entity.__tablename__
            before = vendor.audit_rows(table)
            run = vendor.sync(streams=[config.stream], full_refresh=True)
            assert (run.status, run.records_processed) == ("success", 130)
            assert vendor.audit_rows(table) == before

    def test_a_record_that_fails_mapping_is_counted_reasoned_and_replayable(
        self, app_db: Database
    ) -> None:
        config = self.config
        with self.connect(app_db) as vendor:
            ids = config.seed(vendor, 20)
            config.break_record(vendor, ids[3], True)
            run = vendor.sync(streams=[config.stream], full_refresh=True)
            assert (run.status, run.records_processed, run.records_failed) == ("partial", 19, 1)
            [failure] = run.error_details["failures"]
            assert failure["record_id"] == ids[3] and failure["reason"]
            config.break_record(vendor, ids[3], False)
            replay = vendor.replay(run.id)
            assert (replay.status, replay.records_processed) == ("success", 1)

    def test_an_auth_failure_fails_the_run_without_retrying(self, app_db: Database) -> None:
        config = self.config
        with self.connect(app_db, bad_credentials=True) as vendor:
            config.seed(vendor, 5)
            run = vendor.sync(streams=[config.stream])
            assert run.status == "failed" and "authentication failed" in (run.message or "")
            assert sum(1 for r in vendor.sim.requests if r.status in (401, 403)) == 1
            with app_db.tenant(vendor.org_id) as session:
                assert session.get_one(Integration, vendor.integration_id).status == "error"

    def test_write_back_counts_a_partial_failure_per_record(self, app_db: Database) -> None:
        config = self.config
        if config.export_stream is None or config.make_local_rows is None:
            pytest.skip("this connector writes nothing back")
        with self.connect(app_db) as vendor:
            config.make_local_rows(vendor, 3, 1)
            run = vendor.sync(streams=[config.export_stream])
            assert (run.status, run.records_processed, run.records_failed) == ("partial", 3, 1)
            again = vendor.sync(streams=[config.export_stream])
            assert again.records_processed == 0  # nothing changed here since
