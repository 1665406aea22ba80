"""The sync engine: a run is an ``integration_logs`` row plus one chain of page tasks per stream.

``start_run`` (:mod:`runs.lifecycle`) writes the run, a :class:`SyncStreamRun` per stream
and the first page task (outbox) in one transaction.  For each page, a page task
(:func:`run_pages`) fetches the vendor page outside any transaction, then in one transaction: checks the page is still the stream's current one (a redelivered
task finds it is not and does nothing), upserts the records, writes the page's outcome,
moves the cursor, and either enqueues the next page or finishes the stream.  The last
stream to finish closes the run: counts are sums of page outcomes, never counters.

A full refresh is fetched and loaded apart (:mod:`runs.staged_load`): its page task stages
the pages it fetches and enqueues load tasks (:func:`load_staged`), which any worker process
runs, and the last load closes the stream.

A page delivered more than ``max_redeliveries`` times fails its stream instead of looping;
a wait longer than the inline cap is parked in the outbox (``available_at``), not held in
a worker or a countdown.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update

from connectors import export, loading
from connectors.base import Connector, JSONDict, Page, Stream
from connectors.upsert import PageOutcome, apply_pages
from core.errors import (
    OUR_CONFIGURATION,
    AuthError,
    FatalError,
    NotFoundError,
    PlatformConfigError,
    RateLimitedError,
    RetryableError,
)
from core.settings import get_settings
from models import outbox
from models.base import utcnow
from models.integrations import Integration, IntegrationLog
from models.session import ROW_LOCK, Database, PlugsSession
from models.sync_state import SyncPageOutcome, SyncStreamRun
from runs import staged_load
from runs.lifecycle import (  # open_run, start_run, replay_run: the public API, here too
    PAGE_TASK,
    close_run_if_finished,
    open_run,
    replay_run,
    start_run,
    start_waiting,
    stop_run,
)

log = logging.getLogger(__name__)
__all__ = [
    "PageReport",
    "load_staged",
    "open_run",
    "replay_run",
    "restart_stalled",
    "run_pages",
    "start_run",
]
#: A page task runs up to this many transactions of pages before handing over.
PAGES_PER_TASK = 10
SECONDS_PER_TASK = 20.0
#: Pages fetched, then written and accounted in one transaction (with the cursor after the
#: last of them): the per-transaction cost (lock, tenant binding, commit) paid once for all.
PAGES_PER_TRANSACTION = 5


@dataclass(frozen=True)
class PageReport:
    """What one page task did (returned by the task, shown in Flower)."""

    stream: str
    #: "page" | "done" | "duplicate" | "parked" | "failed" | "finished-already", or for a
    #: staged stream (:mod:`runs.staged_load`) "staged": every page fetched, loads to come
    state: str
    succeeded: int = 0
    failed: int = 0


@dataclass
class _Claimed:
    """A stream run being worked on: its row (detached), integration, connector, cursor."""

    stream_run: SyncStreamRun
    integration: Integration
    cursor: JSONDict | None
    connector: Connector | None = None
    #: fetches the next pages (at ``cursor``) while the current ones are written
    prefetch: ThreadPoolExecutor | None = None
    prefetched: Future[list[Page]] | None = None


def run_pages(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    *,
    max_pages: int = PAGES_PER_TASK,
    budget: float = SECONDS_PER_TASK,
    progress: Callable[[PageReport], None] | None = None,
    others_waiting: Callable[[], bool] | None = None,
) -> PageReport:
    """Run a stream's pages, up to :data:`PAGES_PER_TRANSACTION` a transaction, for up to
    ``max_pages`` transactions or ``budget`` seconds; the last one enqueues the next task.
    When ``others_waiting`` (asked once before each transaction) says other work waits for
    a worker, that transaction is the last: the task hands its worker over, and its stream
    goes to the back of the queue.
    The delivery is counted once, when the task claims its first page; every page is
    accounted on its own and committed with the cursor after it, so a crash between
    transactions loses nothing (the stall sweeper enqueues the page again)."""
    with _lease(db, org_id, stream_run_id):
        return _pages(db, org_id, stream_run_id, max_pages, budget, progress, others_waiting)


@contextmanager
def _lease(db: Database, org_id: uuid.UUID, stream_run_id: uuid.UUID) -> Iterator[None]:
    """Renew the stream's lease (its ``updated_at``) every third of ``PLUGS_PAGE_LEASE``
    while this task works on it, from a thread of its own: a stream whose lease lapsed has
    lost its worker, and :func:`restart_stalled` enqueues its page again."""
    every = get_settings().page_lease / 3
    done = threading.Event()

    def renew() -> None:
        while not done.wait(every):
            try:
                with db.tenant(org_id) as session:
                    session.execute(
                        update(SyncStreamRun)
                        .where(SyncStreamRun.id == stream_run_id, SyncStreamRun.status == "running")
                        .values(updated_at=utcnow())
                    )
            except Exception:  # noqa: BLE001 - the next renewal tries again
                log.warning(
                    "could not renew the lease of stream run %s", stream_run_id, exc_info=True
                )

    renewer = threading.Thread(target=renew, name=f"lease-{stream_run_id}", daemon=True)
    renewer.start()
    try:
        yield
    finally:
        done.set()
        renewer.join(timeout=every)


def _pages(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    max_pages: int,
    budget: float,
    progress: Callable[[PageReport], None] | None,
    others_waiting: Callable[[], bool] | None = None,
) -> PageReport:
    started = time.monotonic()
    total = PageReport("?", "page")
    claimed: _Claimed | None = None
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"fetch-{stream_run_id}") as pool:
        for number in range(1, max_pages + 1):
            last = (
                number == max_pages
                or time.monotonic() - started > budget
                or (others_waiting is not None and others_waiting())
            )
            report, claimed = _run_page(
                db, org_id, stream_run_id, chain=last, claimed=claimed, prefetch=pool
            )
            total = PageReport(
                report.stream,
                report.state,
                total.succeeded + report.succeeded,
                total.failed + report.failed,
            )
            if progress is not None:
                progress(total)
            if report.state != "page" or last or claimed is None:
                return total
    return total


def _run_page(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    *,
    chain: bool,
    claimed: _Claimed | None = None,
    prefetch: ThreadPoolExecutor | None = None,
) -> tuple[PageReport, _Claimed | None]:
    """One batch of pages; returns what to continue with when the caller runs the next
    batch itself.  With ``prefetch``, the next batch is fetched while this one is written."""
    if claimed is None:
        found = _claim(db, org_id, stream_run_id)
        if isinstance(found, PageReport):
            return found, None
        claimed = found
        claimed.prefetch = prefetch
    stream_run, cursor = claimed.stream_run, claimed.cursor
    try:
        claimed.connector = claimed.connector or loading.open_connector(claimed.integration)
        connector = claimed.connector
        if stream_run.direction == "push":
            report, next_cursor = _export_page(db, org_id, stream_run, connector, cursor, chain)
            if report.state != "page" or chain:
                return report, None
            claimed.cursor = next_cursor  # the next batch runs in this task, as pulls do
            return report, claimed
        stream = connector.stream(stream_run.stream)
        client = loading.client_for(connector)
        if claimed.prefetched is not None:  # fetched at this cursor while the last was written
            pages, claimed.prefetched = claimed.prefetched.result(), None
        else:
            pages = _fetch_batch(client, stream, cursor, stream_run.start_state)
    except RateLimitedError as exc:
        return _park(db, org_id, stream_run, exc), None
    except RetryableError as exc:  # no connection, a timeout, a 5xx: again later, or the cause
        return _retry_or_fail(db, org_id, stream_run, exc), None
    except AuthError as exc:
        return _fail_run(db, org_id, stream_run, _auth_failed(stream_run, exc), auth=True), None
    except PlatformConfigError as exc:  # ours (the keys): the integration is not blamed
        return _fail_stream(db, org_id, stream_run_id, f"{OUR_CONFIGURATION}{exc}"), None
    except FatalError as exc:
        return _fail_stream(db, org_id, stream_run_id, str(exc)), None
    following = pages[-1].next_cursor
    if not chain and following is not None and claimed.prefetch is not None:
        claimed.prefetched = claimed.prefetch.submit(
            _fetch_batch, client, stream, following, stream_run.start_state
        )
    if stream_run.staging is not None:
        report = _stage(db, org_id, stream_run_id, cursor, stream, pages, chain)
    else:
        report = _store(db, org_id, stream_run_id, cursor, stream, pages, chain)
    if report.state != "page" or chain:
        return report, None  # a batch fetched meanwhile is dropped (the task ends)
    claimed.cursor = following
    return report, claimed


def _fetch_batch(
    client: Any, stream: Stream, cursor: JSONDict | None, state: JSONDict
) -> list[Page]:
    """The page at ``cursor`` (its errors raised) and those that follow it, up to
    :data:`PAGES_PER_TRANSACTION`.  A following page that cannot be fetched now ends the
    batch: the pages fetched are stored, and that page is fetched again (and its error
    handled) as the first of the next batch."""
    pages = [_fetch(client, stream, cursor, state)]
    while len(pages) < PAGES_PER_TRANSACTION and pages[-1].next_cursor is not None:
        try:
            pages.append(_fetch(client, stream, pages[-1].next_cursor, state))
        except Exception:  # noqa: BLE001 - handled where that page is fetched again
            log.debug("page after %s not fetched in this batch", pages[-1].key, exc_info=True)
            break
    return pages


def _fetch(client: Any, stream: Stream, cursor: JSONDict | None, state: JSONDict) -> Page:
    if cursor and "ids" in cursor:  # a replay of given records, a page at a time
        if stream.fetch_by_ids is None:
            raise FatalError(f"stream {stream.name} cannot fetch records by id")
        ids, rest = cursor["ids"][: stream.page_size], cursor["ids"][stream.page_size :]
        return Page(
            records=stream.fetch_by_ids(client, stream, ids),
            next_cursor={"ids": rest} if rest else None,
            key=f"replay:{ids[0]}",
        )
    return stream.paginator.fetch(client, stream, cursor, state)


def _claim(db: Database, org_id: uuid.UUID, stream_run_id: uuid.UUID) -> PageReport | _Claimed:
    """Count this delivery; refuse finished streams and pages delivered too often."""
    cap = get_settings().max_redeliveries
    with db.tenant(org_id) as session:
        stream_run = session.get(SyncStreamRun, stream_run_id, with_for_update=ROW_LOCK)
        if stream_run is None:
            raise NotFoundError(f"no stream run {stream_run_id}")
        if stream_run.status in ("done", "failed"):
            return PageReport(stream_run.stream, "finished-already")
        if stream_run.staging in ("parked", "extracted"):  # its loaders carry it on
            return PageReport(stream_run.stream, "duplicate")
        stream_run.attempts += 1
        stream_run.status = "running"
        if stream_run.attempts > cap:
            reason = f"page delivered {stream_run.attempts - 1} times without finishing; giving up"
            if stream_run.last_error:  # what the deliveries before ran into
                reason += f" (last: {stream_run.last_error})"
            _finish_stream(session, stream_run, failed=reason)
            return PageReport(stream_run.stream, "failed")
        integration = session.get(Integration, stream_run.integration_id)
        if integration is None:  # removed meanwhile: the stream ends, not loops
            _finish_stream(session, stream_run, failed="the integration was removed")
            return PageReport(stream_run.stream, "failed")
        session.expunge(integration)
        cursor = dict(stream_run.page_cursor) if stream_run.page_cursor is not None else None
        if stream_run.staging is None and staged_load.eligible(stream_run, cursor):
            stream_run.staging = "extracting"  # a full refresh: fetched and loaded apart
        session.flush()
        session.expunge(stream_run)
        return _Claimed(stream_run, integration, cursor)


def _store(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    cursor: JSONDict | None,
    stream: Stream,
    pages: list[Page],
    chain: bool,
) -> PageReport:
    """Write ``pages`` (the first one fetched at ``cursor``, each following the one before)
    and account for each in one transaction; the cursor moves past the last of them.  The
    pages' records are written together (:func:`apply_pages`: one lookup, one insert)."""
    succeeded = failed = 0
    with db.tenant(org_id) as session:
        stream_run = _current(session, stream_run_id, cursor)
        if stream_run is None:
            return PageReport(stream.name, "duplicate")
        outcomes = apply_pages(
            session, stream_run.integration_id, stream, [page.records for page in pages]
        )
        for number, (page, outcome) in enumerate(zip(pages, outcomes, strict=True), start=1):
            succeeded, failed = succeeded + outcome.succeeded, failed + len(outcome.failures)
            last = number == len(pages)
            more = _record_page(
                session, org_id, stream_run, outcome, page.key, page.next_cursor, chain and last
            )
    return PageReport(stream.name, "page" if more else "done", succeeded, failed)


def _current(
    session: PlugsSession, stream_run_id: uuid.UUID, cursor: JSONDict | None
) -> SyncStreamRun | None:
    """The stream run, row-locked, if ``cursor`` is still its current page (a redelivered
    task finds it is not, or that the stream has ended: None)."""
    stream_run = session.get(SyncStreamRun, stream_run_id, with_for_update=ROW_LOCK)
    if stream_run is None or stream_run.status in ("done", "failed"):
        return None
    return stream_run if stream_run.page_cursor == cursor else None


def _stage(
    db: Database,
    org_id: uuid.UUID,
    stream_run_id: uuid.UUID,
    cursor: JSONDict | None,
    stream: Stream,
    pages: list[Page],
    chain: bool,
) -> PageReport:
    """Stage ``pages`` for the load tasks (:func:`runs.staged_load.stage`) in one
    transaction with the cursor after them, if the page is still the stream's current one."""
    with db.tenant(org_id) as session:
        stream_run = _current(session, stream_run_id, cursor)
        if stream_run is None or stream_run.staging != "extracting":
            return PageReport(stream.name, "duplicate")
        state = staged_load.stage(session, org_id, stream_run, stream, pages, chain)
    return PageReport(stream.name, state)


def load_staged(db: Database, org_id: uuid.UUID, stream_run_id: uuid.UUID) -> PageReport:
    """Load staged pages of a full refresh (:func:`runs.staged_load.load`); the load that
    finds the extraction done and nothing left staged finishes the stream."""
    report = staged_load.load(db, org_id, stream_run_id, _finish_staged)
    return PageReport(report.stream, "loaded", report.succeeded, report.failed)


def _export_page(
    db: Database,
    org_id: uuid.UUID,
    stream_run: SyncStreamRun,
    connector: Connector,
    cursor: JSONDict | None,
    chain: bool,
) -> tuple[PageReport, dict[str, Any] | None]:
    """Push one batch of rows changed here; same accounting as a pulled page.  Returns the
    report and the cursor of the next batch (None when the scan is finished)."""
    stream = connector.export_stream(stream_run.stream)
    with db.tenant(org_id) as session:
        batch = export.changed_rows(
            session, stream_run.integration_id, stream, (cursor or {}).get("after")
        )
    try:
        results, read_back = export.push(connector, loading.client_for(connector), stream, batch)
    except RateLimitedError as exc:
        return _park(db, org_id, stream_run, exc), None
    except RetryableError as exc:
        return _retry_or_fail(db, org_id, stream_run, exc), None
    except AuthError as exc:
        return _fail_run(db, org_id, stream_run, _auth_failed(stream_run, exc), auth=True), None
    except PlatformConfigError as exc:
        return _fail_stream(db, org_id, stream_run.id, f"{OUR_CONFIGURATION}{exc}"), None
    except FatalError as exc:
        return _fail_stream(db, org_id, stream_run.id, str(exc)), None
    with db.tenant(org_id) as session:
        row = _current(session, stream_run.id, cursor)
        if row is None:
            return PageReport(stream.name, "duplicate"), None
        outcome = export.record_push(session, connector, stream, results, read_back)
        next_cursor = None if batch.finished else {"after": batch.last_scanned}
        more = _record_page(
            session,
            org_id,
            row,
            outcome,
            f"export:{(cursor or {}).get('after') or ''}",
            next_cursor,
            chain,
        )
    report = PageReport(
        stream.name, "page" if more else "done", outcome.succeeded, len(outcome.failures)
    )
    return report, next_cursor


def _record_page(
    session: PlugsSession,
    org_id: uuid.UUID,
    stream_run: SyncStreamRun,
    outcome: PageOutcome,
    key: str,
    next_cursor: JSONDict | None,
    chain: bool = True,
) -> bool:
    """Store a page's outcome, move the cursor, and either enqueue the next page (``chain``;
    otherwise the caller runs it) or finish the stream.  True when there is a next page."""
    session.add(
        SyncPageOutcome(
            run_id=stream_run.run_id,
            stream=stream_run.stream,
            page_key=key[:255],
            succeeded=outcome.succeeded,
            failed=len(outcome.failures),
            # warnings (records stored with a value cut to fit) ride along, marked as such
            failures=outcome.failures + [{**w, "warning": True} for w in outcome.warnings],
        )
    )
    if outcome.high_water and outcome.high_water > stream_run.high_water.get("cursor", ""):
        stream_run.high_water = {**stream_run.high_water, "cursor": outcome.high_water}
    stream_run.pages_done += 1
    stream_run.attempts = 0
    stream_run.resume_at = None
    stream_run.failing_since = None
    stream_run.page_cursor = next_cursor
    if next_cursor is not None:
        if chain:
            outbox.enqueue(session, PAGE_TASK, str(org_id), str(stream_run.id))
        return True
    _finish_stream(session, stream_run)
    return False


def _park(
    db: Database, org_id: uuid.UUID, stream_run: SyncStreamRun, exc: RateLimitedError
) -> PageReport:
    wait = exc.retry_after if exc.retry_after is not None else 60.0
    with db.tenant(org_id) as session:
        row = session.get(SyncStreamRun, stream_run.id, with_for_update=ROW_LOCK)
        if row is None or row.status in ("done", "failed"):
            return PageReport(stream_run.stream, "finished-already")
        row.attempts = max(0, row.attempts - 1)  # waiting is not a failed delivery
        row.last_error = f"rate limited; resuming in {wait:.0f}s"
        row.resume_at = utcnow() + timedelta(seconds=wait)
        outbox.enqueue(
            session,
            PAGE_TASK,
            str(org_id),
            str(row.id),
            available_at=utcnow() + timedelta(seconds=wait),
        )
    log.info("stream %s parked for %.0fs: %s", stream_run.id, wait, exc)
    return PageReport(stream_run.stream, "parked")


def _retry_or_fail(
    db: Database, org_id: uuid.UUID, stream_run: SyncStreamRun, exc: RetryableError
) -> PageReport:
    """A page that failed transiently is delivered again after a backoff (the task's
    retry); once it has failed for ``PLUGS_UNREACHABLE_AFTER`` seconds or was delivered
    ``PLUGS_MAX_REDELIVERIES`` times, the run fails with this error as its cause."""
    if exc.retry_after is not None:  # the vendor said when: the task waits that long
        raise exc
    settings = get_settings()
    with db.tenant(org_id) as session:
        row = session.get(SyncStreamRun, stream_run.id, with_for_update=ROW_LOCK)
        if row is None or row.status in ("done", "failed"):
            return PageReport(stream_run.stream, "finished-already")
        now = utcnow()
        row.failing_since = row.failing_since or now  # cleared when a page is stored
        failing = (now - row.failing_since).total_seconds()
        row.last_error = str(exc)
        remaining = settings.unreachable_after - failing
        attempts = max(row.attempts, 1)
    if remaining <= 0 or attempts >= settings.max_redeliveries:
        deliveries = "delivery" if attempts == 1 else "deliveries"
        reason = f"{exc}; {attempts} {deliveries} in {failing:.0f} s"
        return _fail_run(db, org_id, stream_run, reason)
    raise RetryableError(str(exc), retry_after=min(5.0 * 2 ** (attempts - 1), remaining))


def _auth_failed(stream_run: SyncStreamRun, exc: AuthError) -> str:
    integration = stream_run.integration_id
    return (
        f"authentication failed: {exc}; fix the credentials with "
        f"`plugs integrations update {integration} --token ...`"
    )


def _fail_run(
    db: Database, org_id: uuid.UUID, stream_run: SyncStreamRun, reason: str, *, auth: bool = False
) -> PageReport:
    """Fail the stream with ``reason``, then the run's other unfinished streams with the
    same one: an unreachable vendor or refused credentials fail them all alike."""
    report = _fail_stream(db, org_id, stream_run.id, reason, auth=auth)
    if report.state == "failed":
        stop_run(db, org_id, stream_run.run_id, reason)
    return report


def _fail_stream(
    db: Database, org_id: uuid.UUID, stream_run_id: uuid.UUID, reason: str, *, auth: bool = False
) -> PageReport:
    with db.tenant(org_id) as session:
        stream_run = session.get(SyncStreamRun, stream_run_id, with_for_update=ROW_LOCK)
        if stream_run is None or stream_run.status in ("done", "failed"):
            return PageReport(stream_run.stream if stream_run else "?", "finished-already")
        if auth:
            integration = session.get(Integration, stream_run.integration_id)
            if integration is not None:
                integration.status = "error"
                integration.metadata_ = {**integration.metadata_, "last_error": reason}
        elif (
            stream_run.staging in ("extracting", "parked")
            and stream_run.pages_staged > stream_run.pages_done
        ):  # what was fetched is loaded first; the last load fails the stream with the reason
            stream_run.staging = "abandoned"
            stream_run.last_error = reason
            outbox.enqueue(session, staged_load.LOAD_TASK, str(org_id), str(stream_run.id))
            return PageReport(stream_run.stream, "failed")
        _finish_stream(session, stream_run, failed=reason)
        return PageReport(stream_run.stream, "failed")


def _finish_staged(session: PlugsSession, stream_run: SyncStreamRun) -> None:
    """Close a staged stream whose pages are all loaded: done, or failed with the reason
    its extraction was abandoned for."""
    abandoned = stream_run.staging == "abandoned"
    _finish_stream(session, stream_run, failed=stream_run.last_error if abandoned else None)


def _finish_stream(
    session: PlugsSession, stream_run: SyncStreamRun, *, failed: str | None = None
) -> None:
    stream_run.status = "failed" if failed else "done"
    stream_run.last_error = failed
    session.flush()
    # Lock order everywhere: the stream's row, then its run's row.
    session.get(IntegrationLog, stream_run.run_id, with_for_update=ROW_LOCK, populate_existing=True)
    start_waiting(session, stream_run.organization_id, stream_run)
    close_run_if_finished(session, stream_run.run_id)


def restart_stalled(db: Database) -> int:
    """Enqueue again the current page of streams whose worker is gone: a running stream
    whose lease lapsed (``PLUGS_PAGE_LEASE``: its worker died mid-page), or a stream whose
    first page never started (``PLUGS_STALLED_AFTER``: a message the broker lost).

    This makes a killed worker or a lost message cost a delay instead of a run: the page
    task is idempotent, so a duplicate does nothing.
    """
    settings = get_settings()
    now = utcnow()
    lapsed = now - timedelta(seconds=settings.page_lease)
    forgotten = now - timedelta(seconds=settings.stall_seconds())
    due = (
        ((SyncStreamRun.status == "running") & (SyncStreamRun.updated_at < lapsed))
        | ((SyncStreamRun.status == "pending") & (SyncStreamRun.updated_at < forgotten))
    ) & ((SyncStreamRun.resume_at.is_(None)) | (SyncStreamRun.resume_at < lapsed))
    with db.system("sync: find stalled streams") as session:
        stalled = session.execute(
            select(SyncStreamRun.organization_id, SyncStreamRun.id).where(due)
        ).all()
    restarted = 0
    for org_id, stream_run_id in stalled:
        with db.tenant(org_id) as session:
            row = session.scalars(
                select(SyncStreamRun)
                .where(SyncStreamRun.id == stream_run_id, due)
                .with_for_update(**ROW_LOCK)
            ).one_or_none()
            if row is None:
                continue  # it moved on meanwhile
            row.last_error = "no progress; page enqueued again"
            if row.staging is None:
                outbox.enqueue(session, PAGE_TASK, str(org_id), str(stream_run_id))
            elif not staged_load.resend(session, org_id, row, settings.max_redeliveries):
                reason = f"staged pages not loaded after {row.attempts - 1} deliveries; giving up"
                _finish_stream(session, row, failed=reason)
            restarted += 1
        log.warning("stream run %s stalled; its page was enqueued again", stream_run_id)
    staged_load.drop_finished(db)
    return restarted
