"""Memory of a large sync: every worker process's resident set while one organization
syncs ``--contacts`` HubSpot contacts.

    .venv/bin/python bench/sync_memory.py [--contacts 1000000] [--concurrency 2]

The HubSpot simulator (its own process, no rate limits) holds ``--contacts`` contacts; one
organization syncs them all (``--full``) through a real worker (``plugs worker -c 2``,
Redis broker, application role under row-level security; ``bench/harness.py``).  While
it runs, the current resident set (VmRSS) of the worker's main process and of each pool
process is sampled every 0.25 s and printed at every tenth of the records written: the
trend, which stays flat when memory does not grow with the size of the sync.  At the end
it prints each process's peak (the kernel's VmHWM) against the goal: every worker
process under 300 MB.

A million contacts take several minutes on a busy 2-core machine; the trend of a smaller
run (``--contacts 300000``) says the same if it is flat.  Everything made is removed at
the end, also after Ctrl-C.
"""

from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.harness import Platform, resident_mib, run_benchmark  # noqa: E402
from bench.sync_throughput import positive  # noqa: E402

GOAL_MB = 300.0
SAMPLE_EVERY = 0.25


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=positive, default=1_000_000)
    parser.add_argument("--concurrency", type=positive, default=2, help="the worker's -c")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for the sync")
    args = parser.parse_args()
    run_benchmark(partial(measure, args=args), args.contacts, args.concurrency, args.timeout)


def measure(bench: Platform, *, args: argparse.Namespace) -> None:
    org_id, integration_id = bench.ours.connect(bench.vendor)
    pids = bench.worker_pids
    names = {pid: "main" if pid == pids[0] else "pool" for pid in pids}
    print("RSS before the sync: " + rss_line(pids, names), flush=True)
    started = time.perf_counter()
    run_id = bench.start(org_id, integration_id, full=True)
    next_mark, status, written = 0.1, "running", 0
    while status == "running":
        time.sleep(SAMPLE_EVERY)
        bench.check_worker()
        if time.perf_counter() - started > args.timeout:
            raise SystemExit(f"the sync is still running after {args.timeout:.0f} s")
        status, _, written = bench.progress([run_id])[run_id]
        pids = bench.worker_pids
        names.update({pid: "pool" for pid in pids if pid not in names})
        while written >= next_mark * args.contacts and next_mark <= 1.0:
            print(
                f"{written:>9,} written ({time.perf_counter() - started:6.1f} s): "
                + rss_line(pids, names),
                flush=True,
            )
            next_mark += 0.1
    seconds = time.perf_counter() - started
    if status != "success" or written != args.contacts:
        raise SystemExit(f"the sync ended {status} with {written:,} of {args.contacts:,} written")
    time.sleep(2 * SAMPLE_EVERY)  # the watch's last sample of the peaks
    peaks = bench.peaks_mib()
    print(f"contacts synced            : {args.contacts:,} in {seconds:.1f} s")
    for pid, peak in sorted(peaks.items()):
        print(f"peak RSS pid {pid:<8} ({names.get(pid, 'pool')}) : {peak:,.0f} MB")
    highest = max(peaks.values())
    verdict = "met" if highest < GOAL_MB else "NOT met"
    print(f"highest peak               : {highest:,.0f} MB (goal < {GOAL_MB:.0f} MB: {verdict})")


def rss_line(pids: list[int], names: dict[int, str]) -> str:
    return ", ".join(f"{names[pid]} {pid} {resident_mib(pid):,.0f} MB" for pid in pids)


if __name__ == "__main__":
    main()
