"""Full refreshes fetched and loaded apart: pages are staged as they are fetched, and load
tasks on any worker process write them, several at once.

A pull stream that starts from no saved state (``--full``, or a first sync) and is not a
replay is *staged* (:func:`eligible`; ``sync_stream_runs.staging``):

* **Extract.** The page task (:mod:`runs.sync`) fetches pages as for any stream, then in
  one transaction, under the stream's row lock (:func:`stage`): checks the page is still
  the stream's current one, writes the pages into ``sync_staged_pages`` (numbered in the
  order fetched), moves the cursor, and enqueues a ``sync.load`` task through the outbox.
  When the vendor has no next page the extraction is ``extracted``.  With
  :data:`STAGED_PAGES_CAP` pages staged and not loaded it is ``parked``: the task ends,
  and the load that brings the backlog down to :data:`RESUME_AT` enqueues it again.
* **Load.** A load task (:func:`load`) claims the first staged pages nobody holds
  (``FOR UPDATE SKIP LOCKED``), writes their records (:func:`connectors.upsert.apply_pages`),
  their page outcomes, deletes them, and last, briefly under the stream's row lock, counts
  them in ``pages_done``, moves the high-water mark, and closes the stream when the
  extraction is done and every staged page is loaded (``pages_staged == pages_done``: each
  page is counted once, in the transaction that deletes it).  All in one transaction: a
  loader killed at any line rolls back and its pages stay staged for the next one.
* **Order.** A record can be on two pages (a vendor whose pages shift while they are
  read).  A loader whose pages share a record with an earlier page another loader holds
  writes nothing and tries again once that page is loaded, so a later version of a
  record is never overwritten by an earlier one, and two loaders never insert the same
  record (which would make one of them wait for the other's locks).
* **Stalls.** The lease sweeper (:func:`resend`) enqueues load tasks again for a stream
  whose staged pages have not moved for ``PLUGS_PAGE_LEASE``; after
  ``PLUGS_MAX_REDELIVERIES`` such lapses the stream fails instead of looping.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import orjson
from sqlalchemy import delete, func, insert, select

from connectors import loading
from connectors.base import JSONDict, Page, Stream
from connectors.upsert import apply_pages
from models import outbox
from models.integrations import Integration
from models.session import ROW_LOCK, Database, PlugsSession
from models.staging import StagedPage
from models.sync_state import SyncPageOutcome, SyncStreamRun
from runs.batch import PAGE_TASK

log = logging.getLogger(__name__)

LOAD_TASK = "sync.load"
#: Whether full refreshes are staged (False: every stream is loaded page by page).
ENABLED = True
#: Staged pages of one stream not yet loaded beyond which its extraction parks.
STAGED_PAGES_CAP = 40
#: A parked extraction is enqueued again once its backlog is down to this many pages.
RESUME_AT = 15
#: Pages one load transaction claims and writes together.
PAGES_PER_LOAD = 5
#: A load task runs transactions until nothing is left to claim, up to this many seconds.
SECONDS_PER_LOAD_TASK = 20.0
#: How long a loader waits before claiming again when an earlier page holds its records.
BLOCKED_PAUSE = 0.05

Finish = Callable[[PlugsSession, SyncStreamRun], None]


@dataclass(frozen=True)
class LoadReport:
    """What one load task did (returned by the task, shown in Flower)."""

    stream: str
    pages: int = 0
    succeeded: int = 0
    failed: int = 0


def eligible(stream_run: SyncStreamRun, cursor: JSONDict | None) -> bool:
    """Whether a stream about to fetch its first page is extracted and loaded apart: a
    pull from no saved state (a full refresh), not a replay of given records."""
    return (
        ENABLED
        and stream_run.direction == "pull"
        and not stream_run.start_state
        and cursor is None
        and stream_run.pages_done == 0
        and stream_run.pages_staged == 0
    )


def stage(
    session: PlugsSession,
    org_id: uuid.UUID,
    stream_run: SyncStreamRun,
    stream: Stream,
    pages: list[Page],
    chain: bool,
) -> str:
    """Stage ``pages`` (fetched at the stream's cursor, each following the one before) in
    the caller's transaction, which holds the stream's row lock; move the cursor past the
    last; enqueue their load.  Returns ``page`` (fetch on: the next page task is enqueued
    when ``chain``), ``parked`` (too many pages wait for a loader) or ``staged`` (the
    vendor had no next page)."""
    first = stream_run.pages_staged + 1
    session.execute(
        insert(StagedPage.__table__),
        [
            {
                "id": uuid.uuid4(),
                "organization_id": org_id,
                "stream_run_id": stream_run.id,
                "sequence": first + number,
                "page_key": page.key[:255],
                "records": orjson.dumps(page.records, default=str),
                "record_keys": [str(r.get(stream.primary_key)) for r in page.records],
                "next_cursor": page.next_cursor,
            }
            for number, page in enumerate(pages)
        ],
    )
    stream_run.pages_staged += len(pages)
    stream_run.page_cursor = pages[-1].next_cursor
    stream_run.attempts = 0
    stream_run.resume_at = None
    stream_run.failing_since = None
    outbox.enqueue(session, LOAD_TASK, str(org_id), str(stream_run.id))
    if stream_run.page_cursor is None:
        stream_run.staging = "extracted"
        return "staged"
    if stream_run.pages_staged - stream_run.pages_done >= STAGED_PAGES_CAP:
        stream_run.staging = "parked"
        return "parked"
    stream_run.staging = "extracting"
    if chain:
        outbox.enqueue(session, PAGE_TASK, str(org_id), str(stream_run.id))
    return "page"


def load(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    finish: Finish,
    *,
    budget: float = SECONDS_PER_LOAD_TASK,
) -> LoadReport:
    """Load staged pages of the stream, :data:`PAGES_PER_LOAD` a transaction, until none is
    left to claim or ``budget`` seconds have passed (then the last transaction enqueues
    another load task).  ``finish`` closes the stream under its row lock."""
    started = time.monotonic()
    loader = _Loader(db, org_id, stream_run_id, finish)
    while True:
        last = time.monotonic() - started > budget
        outcome = loader.once(chain=last)
        if outcome == "blocked":
            if last:
                loader.enqueue_again()
                break
            time.sleep(BLOCKED_PAUSE)
            continue
        if outcome == "empty" or last:
            break
    return loader.report


class _StreamFinished(Exception):
    """The stream ended while its pages were being written: write nothing of them."""


@dataclass
class _Loader:
    db: Database
    org_id: uuid.UUID
    stream_run_id: uuid.UUID
    finish: Finish
    stream: Stream | None = None
    report: LoadReport = LoadReport("?")

    def once(self, *, chain: bool) -> str:
        """One transaction: ``loaded``, ``empty`` (nothing to claim) or ``blocked`` (an
        earlier page another loader holds has records of ours)."""
        try:
            with self.db.tenant(self.org_id) as session:
                return self._once(session, chain)
        except _StreamFinished as finished:
            if not finished.args[0]:  # the integration is gone: its pages wait for the sweeper
                return "empty"
            with self.db.tenant(self.org_id) as session:
                session.execute(delete(StagedPage).where(StagedPage.id.in_(finished.args[0])))
            return "loaded"

    def _once(self, session: PlugsSession, chain: bool) -> str:
        claimed = session.scalars(
            select(StagedPage)
            .where(StagedPage.stream_run_id == self.stream_run_id)
            .order_by(StagedPage.sequence)
            .limit(PAGES_PER_LOAD)
            .with_for_update(skip_locked=True)
        ).all()
        if not claimed:
            return "empty"
        pages = self._in_order(session, list(claimed))
        if pages is None:
            return "blocked"
        ids = [p.id for p in pages]
        stream_run = session.get(SyncStreamRun, self.stream_run_id)
        if stream_run is None or stream_run.status in ("done", "failed"):
            raise _StreamFinished(ids)  # cancelled or failed meanwhile: nothing to write
        stream = self._stream(session, stream_run)
        outcomes = apply_pages(
            session,
            stream_run.integration_id,
            stream,
            [orjson.loads(p.records) for p in pages],
        )
        high_water: str | None = None
        succeeded = failed = 0
        for page, outcome in zip(pages, outcomes, strict=True):
            session.add(
                SyncPageOutcome(
                    run_id=stream_run.run_id,
                    stream=stream_run.stream,
                    page_key=page.page_key,
                    succeeded=outcome.succeeded,
                    failed=len(outcome.failures),
                    failures=outcome.failures + [{**w, "warning": True} for w in outcome.warnings],
                )
            )
            succeeded, failed = succeeded + outcome.succeeded, failed + len(outcome.failures)
            if outcome.high_water and (high_water is None or outcome.high_water > high_water):
                high_water = outcome.high_water
        session.execute(delete(StagedPage).where(StagedPage.id.in_(ids)))
        session.flush()
        # Last, and briefly: the stream's row (then its run's, when it closes).
        row = session.get(
            SyncStreamRun, self.stream_run_id, with_for_update=ROW_LOCK, populate_existing=True
        )
        if row is None or row.status in ("done", "failed"):
            raise _StreamFinished(ids)
        if high_water and high_water > row.high_water.get("cursor", ""):
            row.high_water = {**row.high_water, "cursor": high_water}
        row.pages_done += len(pages)
        if row.staging != "extracting":  # no extraction running: a load is the progress
            row.attempts = 0
        backlog = row.pages_staged - row.pages_done
        if row.staging == "parked" and backlog <= RESUME_AT:
            row.staging = "extracting"
            outbox.enqueue(session, PAGE_TASK, str(self.org_id), str(row.id))
        if row.staging in ("extracted", "abandoned") and backlog == 0:
            self.finish(session, row)
        elif chain and backlog > 0:  # ran its time: another task goes on
            outbox.enqueue(session, LOAD_TASK, str(self.org_id), str(row.id))
        self.report = LoadReport(
            row.stream,
            self.report.pages + len(pages),
            self.report.succeeded + succeeded,
            self.report.failed + failed,
        )
        return "loaded"

    def _in_order(
        self, session: PlugsSession, claimed: list[StagedPage]
    ) -> list[StagedPage] | None:
        """The claimed pages this transaction may write: those before the first page of
        the stream someone else holds (its turn comes first), or None when an earlier
        page someone else holds shares a record with them (the caller claims again once
        that page is loaded)."""
        mine = {p.id for p in claimed}
        top = claimed[-1].sequence
        others = session.execute(
            select(StagedPage.id, StagedPage.sequence, StagedPage.record_keys).where(
                StagedPage.stream_run_id == self.stream_run_id,
                StagedPage.sequence < top,
                StagedPage.id.not_in(mine),
            )
        ).all()
        if not others:
            return claimed
        lowest = claimed[0].sequence
        between = [o.sequence for o in others if o.sequence > lowest]
        pages = [p for p in claimed if not between or p.sequence < min(between)]
        keys = {k for p in pages for k in p.record_keys}
        if any(keys.intersection(o.record_keys) for o in others if o.sequence < lowest):
            return None
        return pages

    def _stream(self, session: PlugsSession, stream_run: SyncStreamRun) -> Stream:
        if self.stream is None:
            integration = session.get(Integration, stream_run.integration_id)
            if integration is None:
                raise _StreamFinished([])
            self.stream = loading.open_connector(integration).stream(stream_run.stream)
        return self.stream

    def enqueue_again(self) -> None:
        """Hand the stream's loading to a load task of its own (this one ran its time)."""
        with self.db.tenant(self.org_id) as session:
            outbox.enqueue(session, LOAD_TASK, str(self.org_id), str(self.stream_run_id))


def resend(session: PlugsSession, org_id: uuid.UUID, row: SyncStreamRun, cap: int) -> bool:
    """For the lease sweeper, under the row lock of a staged stream whose lease lapsed:
    enqueue load tasks for its staged pages (a killed loader's stay staged) and, when its
    extraction is running, the page task.  Each lapse counts as a delivery; past ``cap``
    the stream fails (False: the caller finishes it)."""
    staged = session.scalar(select(func.count()).where(StagedPage.stream_run_id == row.id)) or 0
    if staged:
        row.attempts += 1
        if row.attempts > cap:
            return False
        for _ in range(min(2, -(-staged // PAGES_PER_LOAD))):  # enough for every worker
            outbox.enqueue(session, LOAD_TASK, str(org_id), str(row.id))
    if row.staging == "extracting":
        outbox.enqueue(session, PAGE_TASK, str(org_id), str(row.id))
    return True


def drop_finished(db: Database) -> int:
    """Delete pages still staged for streams that ended (failed or cancelled while their
    pages waited); their load tasks would have found nothing to do with them."""
    with db.system("sync: drop staged pages of finished streams") as session:
        ended = select(SyncStreamRun.id).where(
            SyncStreamRun.id == StagedPage.stream_run_id,
            SyncStreamRun.status.in_(("done", "failed")),
        )
        result = session.execute(delete(StagedPage).where(ended.exists()))
        return int(getattr(result, "rowcount", 0) or 0)


__all__ = ["LOAD_TASK", "LoadReport", "eligible", "load", "resend", "stage"]
