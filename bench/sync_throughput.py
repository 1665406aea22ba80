"""Sync throughput: HubSpot contacts into PostgreSQL, ours against the limit and a peer.

    .venv/bin/pip install -e '.[bench]'      # dlt, the peer (benchmarks only)
    .venv/bin/python bench/sync_throughput.py [--contacts 100000] [--repeat 3] [--incremental]

The HubSpot simulator runs in a process of its own, seeded with ``--contacts`` and with no
rate limits (``bench/hubspot_unlimited.py``, which says why not plain ``python -m
simulators.hubspot --no-limits``).  Against it, in the same run, each repeat measures a full
load of every contact into a scratch PostgreSQL database by:

1. the plain loop (the limit): httpx GET of a page of 100, psycopg ``executemany`` upsert
   into a plain table, commit per page, one process;
2. dlt's ``rest_api`` source (cursor paginator on ``paging.next.after``) with
   ``write_disposition="merge"`` on ``id``, into the same database;
3. ours: a real worker (``python -m workers.cli worker -c 2``, the scratch Redis db as
   broker, the application role under row-level security, the system role; ``plugs beat``
   beside it as in any deployment) syncing a fresh organization's integration with
   ``--stream contacts --full``, timed from the start of the run (``runs.sync.start_run``,
   what ``plugs sync`` calls) until the run has ended.

All three read the same properties.  Prints records/s of each (medians), ours/dlt and
ours/plain, and the peak resident memory of every worker process.

``--incremental`` then changes 1% of the contacts at the vendor (HubSpot's batch upsert
over HTTP) and runs the last organization's sync again without ``--full``: prints the
records it wrote (audit rows, the run's counts, contacts that carry the change) and its
time against the plain loop fetching only the changed pages (the same search on
``lastmodifieddate``) and upserting them.

Everything made (simulator and worker processes, database, roles, Redis db, temporary
files) is removed at the end, also after Ctrl-C.  The machine's other load counts: run it
on a quiet machine and read the three figures of one run together.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.hubspot.mapping import CONTACT_PROPERTIES, parse_time  # noqa: E402
from connectors.testing import processes  # noqa: E402

CONTACTS_PATH = "/crm/v3/objects/contacts"
PAGE = 100  # HubSpot's largest list page
SEARCH_PAGE = 200  # HubSpot's largest search page (what our incremental sync asks)
PROPERTIES = ",".join(CONTACT_PROPERTIES)
PLAIN_TABLE = """CREATE TABLE IF NOT EXISTS bench_plain_contacts (
    external_id text PRIMARY KEY, first_name text, last_name text, email text, phone text,
    company text, job_title text, industry text, lifecycle_stage text, lead_status text,
    metadata jsonb, updated_at timestamptz DEFAULT now())"""
PLAIN_UPSERT = """INSERT INTO bench_plain_contacts (external_id, first_name, last_name, email,
    phone, company, job_title, industry, lifecycle_stage, lead_status, metadata)
    VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
    ON CONFLICT (external_id) DO UPDATE SET first_name = EXCLUDED.first_name,
    last_name = EXCLUDED.last_name, email = EXCLUDED.email, phone = EXCLUDED.phone,
    company = EXCLUDED.company, job_title = EXCLUDED.job_title, industry = EXCLUDED.industry,
    lifecycle_stage = EXCLUDED.lifecycle_stage, lead_status = EXCLUDED.lead_status,
    metadata = EXCLUDED.metadata, updated_at = now()"""


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


# --- the simulator, in a process of its own ------------------------------------------------


@dataclass(frozen=True)
class Vendor:
    url: str
    token: str

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def simulator(contacts: int, folder: Path) -> Iterator[Vendor]:
    """The HubSpot simulator without limits, seeded with ``contacts``, until exit
    (``bench/hubspot_unlimited.py``: ``python -m simulators.hubspot --no-limits`` would
    still tell our client to pause once per 100 requests)."""
    token = f"pat-bench-{secrets.token_hex(8)}"
    log = folder / "simulator.log"
    command = [sys.executable, "-m", "bench.hubspot_unlimited"]
    command += ["--contacts", str(contacts), "--token", token]
    with log.open("wb") as errors:
        process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=errors,
            cwd=ROOT,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()  # "HubSpot simulator on URL (token T)"
        if " on " not in line:
            process.wait(10)
            raise SystemExit(f"the HubSpot simulator did not start: {log.read_text()[-400:]}")
        yield Vendor(line.split(" on ", 1)[1].split()[0], token)
    finally:
        stop(process, grace=10)


def stop(process: subprocess.Popen[bytes], grace: float) -> None:
    """SIGTERM, then after ``grace`` seconds SIGKILL to its whole process group."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # whatever of its group is left
    except ProcessLookupError:
        pass
    process.wait()


def change_contacts(vendor: Vendor, ids: list[str], title: str) -> None:
    """Change ``ids`` at the vendor as a HubSpot user would (batch upsert, 100 per call):
    their ``jobtitle`` and ``lastmodifieddate`` change."""
    with httpx.Client(base_url=vendor.url, headers=vendor.headers(), timeout=60) as http:
        for start in range(0, len(ids), 100):
            inputs = [
                {"id": i, "properties": {"jobtitle": title}} for i in ids[start : start + 100]
            ]
            answer = http.post(f"{CONTACTS_PATH}/batch/upsert", json={"inputs": inputs})
            if answer.status_code != 200:
                raise SystemExit(f"the simulator refused a change: {answer.status_code}")


def newest_modified(vendor: Vendor) -> int:
    """The latest ``lastmodifieddate`` at the vendor, in epoch milliseconds."""
    body = {
        "sorts": [{"propertyName": "lastmodifieddate", "direction": "DESCENDING"}],
        "properties": ["lastmodifieddate"],
        "limit": 1,
    }
    with httpx.Client(base_url=vendor.url, headers=vendor.headers(), timeout=60) as http:
        found = http.post(f"{CONTACTS_PATH}/search", json=body).json()["results"][0]
    moment = parse_time(found["properties"]["lastmodifieddate"])
    assert moment is not None
    return int(moment.timestamp() * 1000)


# --- 1. the plain loop ---------------------------------------------------------------------


def warm_up(vendor: Vendor, since_ms: int) -> None:
    """One untimed search: the simulator matches its contacts once and caches the result,
    so no contender's time includes the simulator's own search."""
    with httpx.Client(base_url=vendor.url, headers=vendor.headers(), timeout=60) as http:
        next(changed_pages(http, since_ms, limit=1))


def plain_row(record: dict[str, Any]) -> tuple[Any, ...]:
    p = record["properties"]
    return (
        record["id"],
        p.get("firstname"),
        p.get("lastname"),
        p.get("email"),
        p.get("phone"),
        p.get("company"),
        p.get("jobtitle"),
        p.get("industry"),
        p.get("lifecyclestage"),
        p.get("hs_lead_status"),
        Jsonb({"hubspot": {"id": record["id"]}}),
    )


def listed_pages(http: httpx.Client) -> Iterator[list[dict[str, Any]]]:
    """Every contact, a page of 100 at a time, following ``paging.next.after``."""
    after = None
    while True:
        params = {"limit": PAGE, "properties": PROPERTIES, **({"after": after} if after else {})}
        body = http.get(CONTACTS_PATH, params=params).raise_for_status().json()
        yield body["results"]
        after = ((body.get("paging") or {}).get("next") or {}).get("after")
        if not after:
            return


def changed_pages(
    http: httpx.Client, since_ms: int, limit: int = SEARCH_PAGE
) -> Iterator[list[dict[str, Any]]]:
    """Contacts modified at or after ``since_ms``: the search our incremental sync makes,
    to the byte (so the simulator answers both from the same cached result)."""
    after = 0
    while True:
        body = {
            "filterGroups": [
                {
                    "filters": [
                        {
                            "propertyName": "lastmodifieddate",
                            "operator": "GTE",
                            "value": str(since_ms),
                        }
                    ]
                }
            ],
            "sorts": [{"propertyName": "lastmodifieddate", "direction": "ASCENDING"}],
            "properties": list(CONTACT_PROPERTIES),
            "limit": limit,
            "after": str(after),
        }
        page = http.post(f"{CONTACTS_PATH}/search", json=body).raise_for_status().json()
        yield page["results"]
        following = ((page.get("paging") or {}).get("next") or {}).get("after")
        if not following:
            return
        after = int(following)


def plain_loop(
    vendor: Vendor, owner_url: str, pages: Callable[[httpx.Client], Iterator[list[Any]]]
) -> tuple[int, float]:
    """Records and seconds of: GET a page, upsert it (executemany), commit, next page."""
    with (
        psycopg.connect(libpq(owner_url)) as db,
        httpx.Client(base_url=vendor.url, headers=vendor.headers(), timeout=60) as http,
    ):
        count, started = 0, time.perf_counter()
        for records in pages(http):
            with db.cursor() as cursor:
                cursor.executemany(PLAIN_UPSERT, [plain_row(r) for r in records])
            db.commit()
            count += len(records)
        return count, time.perf_counter() - started


def fetch_only(
    vendor: Vendor, pages: Callable[[httpx.Client], Iterator[list[Any]]]
) -> tuple[int, float]:
    with httpx.Client(base_url=vendor.url, headers=vendor.headers(), timeout=60) as http:
        count, started = 0, time.perf_counter()
        for records in pages(http):
            count += len(records)
        return count, time.perf_counter() - started


def reset_plain(owner_url: str) -> None:
    with psycopg.connect(libpq(owner_url)) as db:
        db.execute(PLAIN_TABLE)
        db.execute("TRUNCATE bench_plain_contacts")


# --- 2. dlt ----------------------------------------------------------------------------------


def dlt_load(vendor: Vendor, owner_url: str, folder: Path, attempt: int) -> tuple[int, float]:
    """Records and seconds of one dlt pipeline run into a new dataset (schema) of its own."""
    import dlt
    from dlt.pipeline.exceptions import PipelineStepFailed
    from dlt.sources.rest_api import rest_api_source

    source = rest_api_source(
        {
            "client": {
                "base_url": vendor.url,
                "auth": {"type": "bearer", "token": vendor.token},
                "paginator": {
                    "type": "cursor",
                    "cursor_path": "paging.next.after",
                    "cursor_param": "after",
                },
            },
            "resource_defaults": {"primary_key": "id", "write_disposition": "merge"},
            "resources": [
                {
                    "name": "contacts",
                    "endpoint": {
                        "path": CONTACTS_PATH.lstrip("/"),
                        "params": {"limit": PAGE, "properties": PROPERTIES},
                        "data_selector": "results",
                    },
                }
            ],
        }
    )
    dataset = f"bench_dlt_{attempt}"
    pipeline = dlt.pipeline(
        pipeline_name=f"bench_sync_{attempt}",
        pipelines_dir=str(folder / "dlt-pipelines"),
        destination=dlt.destinations.postgres(credentials=dlt_credentials(owner_url)),
        dataset_name=dataset,
    )
    started = time.perf_counter()
    try:
        pipeline.run(source)
    except PipelineStepFailed as exc:
        raise SystemExit(f"dlt failed: {str(exc).splitlines()[0]}") from None
    seconds = time.perf_counter() - started
    with psycopg.connect(libpq(owner_url)) as db:
        count = db.execute(f"SELECT count(*) FROM {dataset}.contacts").fetchone()[0]  # type: ignore[index]
        for schema in (dataset, f"{dataset}_staging"):
            db.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    return int(count), seconds


def dlt_credentials(owner_url: str) -> str:
    """The owner's URL for dlt, which insists on a password: a placeholder when the server
    trusts the owner without one (the password is then never checked)."""
    url = make_url(libpq(owner_url))
    return url.set(password=url.password or "unused").render_as_string(hide_password=False)


# --- 3. ours ---------------------------------------------------------------------------------


class MemoryWatch(threading.Thread):
    """The peak resident set (the kernel's VmHWM) of every process of a tree, by pid."""

    def __init__(self, root: int) -> None:
        super().__init__(daemon=True)
        self.root, self.peaks, self.running = root, {root: 0}, True

    def run(self) -> None:
        while self.running:
            for pid in [self.root, *self._descendants(self.root)]:
                self.peaks[pid] = max(self.peaks.get(pid, 0), self._peak_kib(pid))
            time.sleep(0.25)

    def _descendants(self, pid: int) -> list[int]:
        found: list[int] = []
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            for child in children:
                found += [child, *self._descendants(child)]
        return found

    @staticmethod
    def _peak_kib(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0


@dataclass(frozen=True)
class Worker:
    process: subprocess.Popen[bytes]
    watch: MemoryWatch
    log: Path


def start_plugs(command: list[str], env: dict[str, str], folder: Path) -> subprocess.Popen[bytes]:
    """``python -m workers.cli COMMAND`` in a session of its own (dies with us), its output
    in ``folder/<command>.log``."""
    settings = processes.environment(env, PLUGS_DATA_DIR=str(folder / "var"))
    with (folder / f"{command[0]}.log").open("wb") as output:
        return subprocess.Popen(
            [*processes.PLUGS, *command],
            env=settings,
            cwd=folder,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=processes.die_with_parent,
        )


@contextmanager
def worker(env: dict[str, str], folder: Path, concurrency: int) -> Iterator[Worker]:
    """``plugs worker -c N`` (every queue) once it answers a ping, and ``plugs beat`` (the
    sweepers that resume parked or stalled pages, as in any deployment); the worker's
    memory is watched until it stops."""
    from workers.app import app

    process = start_plugs(["worker", "-c", str(concurrency)], env, folder)
    watch = MemoryWatch(process.pid)
    watch.start()
    beat: subprocess.Popen[bytes] | None = None
    try:
        deadline = time.monotonic() + 120
        while not app.control.ping(timeout=1.0):
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the worker did not start:\n{tail(folder / 'worker.log')}")
        beat = start_plugs(["beat"], env, folder)
        yield Worker(process, watch, folder / "worker.log")
    finally:
        if beat is not None:
            stop(beat, grace=10)
        stop(process, grace=30)
        watch.running = False


def tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-15:])


@dataclass
class Ours:
    owner_url: str
    folder: Path
    timeout: float
    worker: Worker
    orgs: list[tuple[uuid.UUID, uuid.UUID]] = field(default_factory=list)

    def connect(self, vendor: Vendor) -> tuple[uuid.UUID, uuid.UUID]:
        """A fresh organization with a HubSpot integration pointed at the simulator, no
        client-side rate limit (the simulator enforces none either)."""
        from connectors.integrations import add_integration
        from models.accounts import create_organization
        from models.session import get_database

        db = get_database()
        org = create_organization(db, f"Bench {uuid.uuid4().hex[:6]}")
        settings = {"base_url": vendor.url, "rate_limit": "1000000"}
        found = add_integration(
            db, org.id, "hubspot", {"private_app_token": vendor.token}, settings
        )
        self.orgs.append((org.id, found.id))
        return org.id, found.id

    def sync(self, org_id: uuid.UUID, integration_id: uuid.UUID, full: bool) -> Run:
        """Run the contacts stream (``plugs sync ID --stream contacts [--full]``) and wait."""
        from models.session import get_database
        from runs import sync

        with psycopg.connect(libpq(self.owner_url), autocommit=True) as db:
            started = time.perf_counter()
            run_id = sync.start_run(
                get_database(), org_id, integration_id, streams=["contacts"], full_refresh=full
            )
            while True:
                row = db.execute(
                    "SELECT status, records_processed, records_failed, message "
                    "FROM integration_logs WHERE id = %s",
                    (run_id,),
                ).fetchone()
                if row is not None and row[0] != "running":
                    return Run(time.perf_counter() - started, *row)
                if time.perf_counter() - started > self.timeout:
                    raise SystemExit(f"run {run_id} still running after {self.timeout:.0f} s")
                if self.worker.process.poll() is not None:
                    raise SystemExit(f"the worker died; its log:\n{tail(self.worker.log)}")
                time.sleep(0.02)  # the end is seen within 20 ms

    def count(self, org_id: uuid.UUID, sql: str, *args: Any) -> int:
        with psycopg.connect(libpq(self.owner_url)) as db:
            return int(db.execute(sql, (org_id, *args)).fetchone()[0])  # type: ignore[index]

    def contacts(self, org_id: uuid.UUID) -> int:
        return self.count(
            org_id, "SELECT count(*) FROM contacts WHERE organization_id = %s AND NOT is_deleted"
        )

    def audit_rows(self, org_id: uuid.UUID) -> int:
        return self.count(
            org_id,
            "SELECT count(*) FROM audit_logs WHERE organization_id = %s "
            "AND table_name = 'contacts'",
        )


@dataclass(frozen=True)
class Run:
    seconds: float
    status: str
    processed: int
    failed: int
    message: str | None


# --- the benchmark ---------------------------------------------------------------------------


def full_loads(
    args: argparse.Namespace, vendor: Vendor, database: dict[str, str], ours: Ours
) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"plain": [], "dlt": [], "ours": []}
    n = args.contacts
    for attempt in range(1, args.repeat + 1):
        reset_plain(database["owner_url"])
        count, plain_s = plain_loop(vendor, database["owner_url"], listed_pages)
        check("plain loop", count, n)
        count, dlt_s = dlt_load(vendor, database["owner_url"], ours.folder, attempt)
        check("dlt", count, n)
        org_id, integration_id = ours.connect(vendor)
        run = ours.sync(org_id, integration_id, full=True)
        if run.status != "success" or run.processed != n:
            raise SystemExit(
                f"our full sync ended {run.status} with {run.processed} processed, "
                f"{run.failed} failed: {run.message}"
            )
        check("ours", ours.contacts(org_id), n)
        for name, seconds in (("plain", plain_s), ("dlt", dlt_s), ("ours", run.seconds)):
            rates[name].append(n / seconds)
        print(
            f"full run {attempt}: plain {n / plain_s:,.0f} rec/s ({plain_s:.1f} s), "
            f"dlt {n / dlt_s:,.0f} rec/s ({dlt_s:.1f} s), "
            f"ours {n / run.seconds:,.0f} rec/s ({run.seconds:.1f} s)",
            flush=True,
        )
    return rates


def incremental(
    args: argparse.Namespace, vendor: Vendor, database: dict[str, str], ours: Ours
) -> None:
    """Change 1% at the vendor, then: the plain loop over the changed pages, and ours."""
    org_id, integration_id = ours.orgs[-1]  # fully synced by the last repeat
    with psycopg.connect(libpq(database["owner_url"])) as db:
        ids = [r[0] for r in db.execute("SELECT external_id FROM bench_plain_contacts")]
    ids.sort(key=int)
    changed = max(1, round(len(ids) * args.changed_percent / 100))
    step = max(1, len(ids) // changed)
    plains, fetches, times, written = [], [], [], []
    for attempt in range(1, args.repeat + 1):
        since = newest_modified(vendor)
        chosen = ids[attempt - 1 :: step][:changed]
        title = f"Bench change {attempt}"
        change_contacts(vendor, chosen, title)
        warm_up(vendor, since)
        pages = partial(changed_pages, since_ms=since)
        fetched, fetch_s = fetch_only(vendor, pages)
        upserted, plain_s = plain_loop(vendor, database["owner_url"], pages)
        audits = ours.audit_rows(org_id)
        run = ours.sync(org_id, integration_id, full=False)
        rows = ours.audit_rows(org_id) - audits
        carrying = ours.count(
            org_id,
            "SELECT count(*) FROM contacts WHERE organization_id = %s AND job_title = %s",
            title,
        )
        if run.status != "success":
            raise SystemExit(f"our incremental sync ended {run.status}: {run.message}")
        plains.append(plain_s)
        fetches.append(fetch_s)
        times.append(run.seconds)
        written.append(rows)
        print(
            f"incremental run {attempt}: {len(chosen):,} changed at the vendor; plain loop "
            f"{upserted:,} records in {plain_s:.2f} s (fetch alone {fetched:,} in "
            f"{fetch_s:.2f} s); ours {run.seconds:.2f} s, the run counted {run.processed:,} "
            f"processed and {run.failed:,} failed, wrote {rows:,} audit rows, "
            f"{carrying:,} contacts carry the change",
            flush=True,
        )
    plain, fetch, our = (statistics.median(v) for v in (plains, fetches, times))
    print(f"incremental changed records     : {changed:,} ({args.changed_percent:g}%)")
    print(
        f"incremental records written     : {statistics.median(written):,.0f} (audit rows, median)"
    )
    print(f"incremental plain loop (changed): {plain:.2f} s (fetch alone {fetch:.2f} s)")
    print(f"incremental ours                : {our:.2f} s")
    print(f"incremental ratio ours / plain  : {our / plain:.2f}x the time (goal <= 1.5x)")
    print(f"incremental ratio ours / fetch  : {our / fetch:.2f}x the time")


def check(name: str, found: int, expected: int) -> None:
    if found != expected:
        raise SystemExit(f"{name} loaded {found:,} contacts, not {expected:,}")


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of 1 or more")
    return int(text)


def percent(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1
    if not 0 < value <= 100:
        raise argparse.ArgumentTypeError(f"{text!r} is not a percentage above 0, at most 100")
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=positive, default=100_000)
    parser.add_argument("--repeat", type=positive, default=3, help="runs of each; medians")
    parser.add_argument("--concurrency", type=positive, default=2, help="our worker's -c")
    parser.add_argument("--incremental", action="store_true", help="also the 1%% re-run")
    parser.add_argument("--changed-percent", type=percent, default=1.0, help="with --incremental")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for one run of ours")
    args = parser.parse_args()
    try:
        import dlt  # noqa: F401
    except ImportError:
        raise SystemExit("dlt is missing: .venv/bin/pip install -e '.[bench]'") from None
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        run(args)
    except KeyboardInterrupt:
        raise SystemExit("interrupted; everything the benchmark made is removed") from None


def run(args: argparse.Namespace) -> None:
    from bench.harness import platform  # it builds on this module's pieces

    with tempfile.TemporaryDirectory(prefix="plugs-bench-dlt-") as dlt_folder:
        os.environ.update(
            {
                "RUNTIME__DLTHUB_TELEMETRY": "false",  # dlt sends nothing anywhere
                "DLT_DATA_DIR": str(Path(dlt_folder) / "dlt-data"),
                "RUNTIME__LOG_LEVEL": "ERROR",
            }
        )
        with platform(args.contacts, args.concurrency, args.timeout) as ready:
            vendor, ours = ready.vendor, ready.ours
            database = {"owner_url": ready.owner_url}
            rates = full_loads(args, vendor, database, ours)
            plain, peer, our = (statistics.median(rates[k]) for k in ("plain", "dlt", "ours"))
            print(f"contacts                        : {args.contacts:,} (median of {args.repeat})")
            print(f"plain loop (the limit)          : {plain:,.0f} records/s")
            print(f"dlt rest_api merge (the peer)   : {peer:,.0f} records/s")
            print(f"ours (worker -c {args.concurrency}, app role)    : {our:,.0f} records/s")
            print(f"ratio ours / dlt                : {our / peer:.3f} (goal >= 1.0)")
            print(f"ratio ours / plain              : {our / plain:.3f} (goal >= 0.6)")
            if args.incremental:
                incremental(args, vendor, database, ours)
    running = ours.worker
    for pid, kib in sorted(running.watch.peaks.items()):
        role = "main" if pid == running.process.pid else "pool"
        print(f"peak RSS of worker pid {pid:<7} ({role}): {kib / 1024:,.0f} MB")


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    main()
