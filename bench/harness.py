"""The platform of a sync benchmark, set up and removed in one ``with``: the HubSpot
simulator in a process of its own, a scratch database (application role under row-level
security, system role), a scratch Redis db as broker, and a real ``plugs worker -c N``
with ``plugs beat`` beside it.

The pieces are those of ``bench/sync_throughput.py`` (the simulator process, the worker,
``Ours`` that connects an organization and runs a sync); this module only puts them
together for the benchmarks that need no peer (``bench/sync_incremental.py``,
``bench/sync_memory.py``, ``bench/sync_many_orgs.py``) and adds what they measure: the
current resident memory of every worker process and the page outcomes of running runs.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from bench.environment import scratch_database, scratch_redis
from bench.sync_throughput import Ours, Vendor, libpq, simulator, tail, worker
from connectors.testing import services

__all__ = ["Platform", "platform", "resident_mib", "run_benchmark"]


@dataclass(frozen=True)
class Platform:
    vendor: Vendor
    owner_url: str
    ours: Ours
    folder: Path

    @property
    def worker_pids(self) -> list[int]:
        """The worker's main process and its pool processes, main first."""
        root = self.ours.worker.process.pid
        return [root, *self.ours.worker.watch._descendants(root)]

    def peaks_mib(self) -> dict[int, float]:
        """The peak resident set (VmHWM) of every worker process so far, in MiB."""
        watch = self.ours.worker.watch
        return {pid: kib / 1024 for pid, kib in watch.peaks.items() if kib}

    def start(self, org_id: uuid.UUID, integration_id: uuid.UUID, full: bool) -> uuid.UUID:
        """Open a contacts run (what ``plugs sync ID --stream contacts [--full]`` does)."""
        from models.session import get_database
        from runs import sync

        return sync.start_run(
            get_database(), org_id, integration_id, streams=["contacts"], full_refresh=full
        )

    def progress(self, runs: list[uuid.UUID]) -> dict[uuid.UUID, tuple[str, int, int]]:
        """Per run: its status, the pages it has written so far and their records."""
        with psycopg.connect(libpq(self.owner_url), autocommit=True) as db:
            statuses: dict[uuid.UUID, str] = dict(
                db.execute(
                    "SELECT id, status FROM integration_logs WHERE id = ANY(%s)", (runs,)
                ).fetchall()
            )
            written = {
                run: (pages, records)
                for run, pages, records in db.execute(
                    "SELECT run_id, count(*), coalesce(sum(succeeded + failed), 0) "
                    "FROM sync_page_outcomes WHERE run_id = ANY(%s) GROUP BY run_id",
                    (runs,),
                ).fetchall()
            }
        return {r: (statuses.get(r, "?"), *written.get(r, (0, 0))) for r in runs}

    def timeline(self, integration_id: uuid.UUID) -> tuple[float, float, float]:
        """Seconds from the opening of the integration's latest run to its first written
        page, its last written page and its end (the worker's own timestamps)."""
        with psycopg.connect(libpq(self.owner_url), autocommit=True) as db:
            found = db.execute(
                "SELECT extract(epoch FROM min(o.created_at) - l.created_at), "
                "extract(epoch FROM max(o.created_at) - l.created_at), "
                "extract(epoch FROM l.completed_at - l.created_at) "
                "FROM integration_logs l JOIN sync_page_outcomes o ON o.run_id = l.id "
                "WHERE l.id = (SELECT id FROM integration_logs WHERE integration_id = %s "
                "ORDER BY created_at DESC LIMIT 1) GROUP BY l.id",
                (integration_id,),
            ).fetchone()
        assert found is not None, "the run wrote no page"
        first, last, end = (float(value) for value in found)
        return first, last, end

    def check_worker(self) -> None:
        if self.ours.worker.process.poll() is not None:
            raise SystemExit(f"the worker died; its log:\n{tail(self.ours.worker.log)}")


def resident_mib(pid: int) -> float:
    """The current resident set (VmRSS) of a process in MiB; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@contextmanager
def platform(contacts: int, concurrency: int = 2, timeout: float = 600.0) -> Iterator[Platform]:
    """Everything a run of ours needs, seeded with ``contacts``; all of it removed after."""
    from connectors.credentials import new_key_entry

    with ExitStack() as stack:
        folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="plugs-bench-")))
        seeding = time.perf_counter()
        vendor = stack.enter_context(simulator(contacts, folder))
        print(
            f"simulator: {contacts:,} contacts at {vendor.url} (own process, no rate limits, "
            f"seeded in {time.perf_counter() - seeding:.1f} s)",
            flush=True,
        )
        database = stack.enter_context(scratch_database())
        broker = stack.enter_context(scratch_redis())
        env = {
            "PLUGS_DATABASE_URL": database["app_url"],
            "PLUGS_SYSTEM_DATABASE_URL": database["system_url"],
            "PLUGS_MIGRATION_DATABASE_URL": database["owner_url"],
            "PLUGS_BROKER_URL": broker,
            "PLUGS_RESULT_BACKEND": broker,
            "PLUGS_REDIS_URL": broker,
            "PLUGS_SECRET_KEYS": new_key_entry(),
            "PLUGS_ALLOW_PRIVATE_URLS": "true",
            "PLUGS_DATA_DIR": str(folder / "var"),
        }
        os.environ.update(env)
        services.reload_settings()
        stack.callback(_dispose_database)
        running = stack.enter_context(worker(env, folder, concurrency))
        ours = Ours(database["owner_url"], folder, timeout, running)
        yield Platform(vendor, database["owner_url"], ours, folder)


def run_benchmark(
    measure: Callable[[Platform], None],
    contacts: int,
    concurrency: int = 2,
    timeout: float = 600.0,
) -> None:
    """``measure`` on a fresh :func:`platform`; Ctrl-C or SIGTERM end it through every
    cleanup."""
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        with platform(contacts, concurrency, timeout) as bench:
            measure(bench)
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything the benchmark made is removed") from None


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _dispose_database() -> None:
    from models.session import get_database

    if get_database.cache_info().currsize:
        get_database().dispose()
