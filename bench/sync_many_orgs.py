"""Fairness: ten organizations syncing at the same time, none waiting for another to end.

    .venv/bin/python bench/sync_many_orgs.py [--orgs 10] [--contacts 20000] [--concurrency 2]

The HubSpot simulator (its own process, no rate limits) holds ``--contacts`` contacts;
``--orgs`` organizations, each with a HubSpot integration of its own pointed at it, start
a full contacts sync at the same moment (``runs.sync.start_run``, what ``plugs sync``
calls) through one real worker (``plugs worker -c 2``, Redis broker, application role
under row-level security; ``bench/harness.py``).  Every 50 ms it reads each run's page
outcomes: prints each organization's time to its first written page and to its end, and
the verdict: all runs succeed with every contact, and every organization wrote its first
page before the first of the others ended (none waited for another to end before making
progress).  The plain sum of the work is printed beside it: the records of all runs over
the slowest finish.  Everything made is removed at the end, also after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
import uuid
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Platform, run_benchmark  # noqa: E402
from bench.sync_throughput import positive  # noqa: E402

POLL = 0.05


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orgs", type=positive, default=10)
    parser.add_argument("--contacts", type=positive, default=20_000, help="per organization")
    parser.add_argument("--concurrency", type=positive, default=2, help="the worker's -c")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds for all runs")
    args = parser.parse_args()
    run_benchmark(partial(measure, args=args), args.contacts, args.concurrency, args.timeout)


def measure(bench: Platform, *, args: argparse.Namespace) -> None:
    orgs = [bench.ours.connect(bench.vendor) for _ in range(args.orgs)]
    started = time.perf_counter()
    runs = [bench.start(org_id, integration_id, full=True) for org_id, integration_id in orgs]
    first: dict[uuid.UUID, float] = {}
    finish: dict[uuid.UUID, float] = {}
    final: dict[uuid.UUID, tuple[str, int]] = {}
    while len(finish) < len(runs):
        time.sleep(POLL)
        bench.check_worker()
        now = time.perf_counter() - started
        if now > args.timeout:
            raise SystemExit(f"{len(runs) - len(finish)} runs still running after {now:.0f} s")
        for run, (status, pages, records) in bench.progress(runs).items():
            if pages and run not in first:
                first[run] = now
            if status != "running" and run not in finish:
                finish[run], final[run] = now, (status, records)
    earliest_end = min(finish.values())
    slowest = max(finish.values())
    print(f"{'org':>4} {'first page s':>13} {'finished s':>11} {'status':>8} {'records':>8}")
    for number, run in enumerate(runs, 1):
        status, records = final[run]
        print(
            f"{number:>4} {first.get(run, float('nan')):>13.2f} {finish[run]:>11.2f} "
            f"{status:>8} {records:>8,}"
        )
    total = args.orgs * args.contacts
    print(f"organizations x contacts   : {args.orgs} x {args.contacts:,} = {total:,}")
    print(f"all runs ended after       : {slowest:.1f} s ({total / slowest:,.0f} records/s)")
    print(f"latest first page          : {max(first.values(), default=float('nan')):.2f} s")
    print(f"earliest end of a run      : {earliest_end:.2f} s")
    complete = all(final[r] == ("success", args.contacts) for r in runs)
    waited = [n for n, r in enumerate(runs, 1) if first.get(r, slowest) >= earliest_end]
    print(f"all finished with every contact: {'yes' if complete else 'NO'}")
    print(
        "none waited for another to end : "
        + ("yes (goal met)" if not waited else f"NO: org(s) {waited} started after a run ended")
    )


if __name__ == "__main__":
    main()
