"""Incremental sync: 1% changed at the vendor, ours against fetching the changed pages alone.

    .venv/bin/python bench/sync_incremental.py [--contacts 100000] [--changed 1000] [--repeat 3]

One organization syncs every contact of the HubSpot simulator (its own process, no rate
limits) through a real worker (``plugs worker -c 2``, Redis broker, application role under
row-level security; ``bench/harness.py``).  Then, ``--repeat`` times: ``--changed``
contacts spread over the whole id range change at the vendor (HubSpot's batch upsert over
HTTP, a new ``jobtitle``), and

1. the limit: plain httpx fetches the changed pages alone (the same search on
   ``lastmodifieddate`` our incremental sync makes, 200 a page), nothing written;
2. the plain loop over the same pages: fetch, psycopg ``executemany`` upsert, commit per
   page (``bench/sync_throughput.py``'s, into a plain table of its own);
3. ours: the organization's contacts sync without ``--full``, timed from the start of the
   run (``runs.sync.start_run``, what ``plugs sync`` calls) until the run has ended.

What each time spans: the fetch, from its first request (on an ``httpx.Client`` made just
before, no connection open yet) until the last page is decoded; ours, from the call of
``start_run`` (the benchmark's own database connection open) until a look at the run's
row, every 20 ms, finds it ended: opening the run, publishing its first task, the
worker's fetches and writes, closing the run, and up to 20 ms of polling.  The worker's
own timeline follows each run: from the opening of the run (its row's ``created_at``) to
the first batch of pages written (up to ``PAGES_PER_TRANSACTION`` pages in one
transaction, stamped when their outcome is recorded, after their records are written), to
the last, and to the run's close.

Before those, ours runs once more with nothing changed at the vendor: the fixed cost of a
run (scheduling, claiming, a search that finds nothing new, closing the run), printed
with the per-record cost of the rest.

One untimed search first lets the simulator match and cache the result, so neither time
includes the simulator's own scan of every contact.  Checks that ours wrote exactly the
changed records (new audit rows of contacts, contacts that carry the new title, the run's
processed count) and prints the medians and ours / fetch against the goal (<= 1.5x).

The simulator here answers a search in milliseconds and lets every search through, where
HubSpot allows 5 searches a second per account (``docs/vendors/hubspot.md``): a last line
computes, without measuring it, the least time the same pages would take at that pace
(the measured fetch plus one second per five searches after the first five) and ours
against it.
Everything made is removed at the end, also after Ctrl-C.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from functools import partial
from math import ceil
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Platform, run_benchmark  # noqa: E402
from bench.sync_throughput import (  # noqa: E402
    SEARCH_PAGE,
    change_contacts,
    changed_pages,
    fetch_only,
    newest_modified,
    plain_loop,
    positive,
    reset_plain,
    warm_up,
)

GOAL = 1.5
SEARCHES_PER_SECOND = 5  # HubSpot's search limit per account


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=positive, default=100_000)
    parser.add_argument("--changed", type=positive, default=1_000, help="contacts changed")
    parser.add_argument("--repeat", type=positive, default=3, help="incremental runs; medians")
    args = parser.parse_args()
    if args.changed > args.contacts:
        raise SystemExit("--changed cannot exceed --contacts")
    run_benchmark(partial(measure, args=args), args.contacts)


def measure(bench: Platform, *, args: argparse.Namespace) -> None:
    ours = bench.ours
    org_id, integration_id = ours.connect(bench.vendor)
    full = ours.sync(org_id, integration_id, full=True)
    if full.status != "success" or ours.contacts(org_id) != args.contacts:
        raise SystemExit(f"the first (full) sync ended {full.status}: {full.message}")
    print(f"full sync of {args.contacts:,}: {full.seconds:.1f} s", flush=True)
    warm_up(bench.vendor, newest_modified(bench.vendor))  # the search the idle runs make
    idle = []
    for _ in range(args.repeat):
        run = ours.sync(org_id, integration_id, full=False)
        if run.status != "success":
            raise SystemExit(f"our incremental sync ended {run.status}: {run.message}")
        idle.append(run.seconds)
    fixed = statistics.median(idle)
    print(f"ours with nothing changed: {', '.join(f'{s:.3f}' for s in idle)} s", flush=True)
    reset_plain(bench.owner_url)
    step = args.contacts // args.changed
    fetches, paced, plains, times, written = [], [], [], [], []
    for attempt in range(1, args.repeat + 1):
        since = newest_modified(bench.vendor)
        # ids are 1..N in the simulator; a different spread each attempt
        chosen = [str(1 + attempt - 1 + i * step) for i in range(args.changed)]
        title = f"Bench change {attempt}"
        change_contacts(bench.vendor, chosen, title)
        warm_up(bench.vendor, since)
        pages = partial(changed_pages, since_ms=since)
        fetched, fetch_s = fetch_only(bench.vendor, pages)
        _, plain_s = plain_loop(bench.vendor, bench.owner_url, pages)
        audits = ours.audit_rows(org_id)
        run = ours.sync(org_id, integration_id, full=False)
        if run.status != "success":
            raise SystemExit(f"our incremental sync ended {run.status}: {run.message}")
        first, last, end = bench.timeline(integration_id)
        rows = ours.audit_rows(org_id) - audits
        carrying = ours.count(
            org_id,
            "SELECT count(*) FROM contacts WHERE organization_id = %s AND job_title = %s",
            title,
        )
        fetches.append(fetch_s)
        paced.append(fetch_s + (ceil(fetched / SEARCH_PAGE) - 1) // SEARCHES_PER_SECOND)
        plains.append(plain_s)
        times.append(run.seconds)
        written.append(rows)
        print(
            f"run {attempt}: {len(chosen):,} changed; fetch alone {fetched:,} records in "
            f"{fetch_s:.3f} s; plain loop {plain_s:.3f} s; ours {run.seconds:.3f} s "
            f"({run.processed:,} processed, {run.failed:,} failed), {rows:,} audit rows, "
            f"{carrying:,} contacts carry it\n  ours after opening the run: first batch of "
            f"pages written at {first:.3f} s, last at {last:.3f} s, run closed at {end:.3f} s",
            flush=True,
        )
        if rows != args.changed or carrying != args.changed:
            print(f"  !! ours wrote {rows:,} records, not the {args.changed:,} changed")
    fetch, plain, our = (statistics.median(v) for v in (fetches, plains, times))
    ratio = our / fetch
    verdict = "met" if ratio <= GOAL and set(written) == {args.changed} else "NOT met"
    print(f"contacts / changed         : {args.contacts:,} / {args.changed:,}")
    print(f"records written (median)   : {statistics.median(written):,.0f} audit rows")
    print(f"fetch changed pages alone  : {fetch:.3f} s (median of {args.repeat})")
    print(f"plain loop (fetch + upsert): {plain:.3f} s ({plain / fetch:.2f}x the fetch)")
    print(f"ours, incremental run      : {our:.3f} s (median of {args.repeat})")
    print(f"ours, nothing changed      : {fixed:.3f} s (the fixed cost of a run)")
    print(f"ours per changed record    : {(our - fixed) / args.changed * 1000:.2f} ms")
    print(f"ratio ours / fetch         : {ratio:.2f}x (goal <= {GOAL}x: {verdict})")
    at_pace = statistics.median(paced)
    print(
        f"fetch at HubSpot's {SEARCHES_PER_SECOND} searches/s: {at_pace:.3f} s (computed, not "
        f"measured); ours / it: {our / at_pace:.2f}x"
    )


if __name__ == "__main__":
    main()
