"""Webhook ingest: requests/s and p50/p99 latency of the real receiver (`plugs webhooks`:
integration lookup, HubSpot v3 signature verification, inbox INSERT ... ON CONFLICT, commit,
hand-off to the workers) at 64 connections, against the limit measured in the same run on the
same machine: a bare ASGI endpoint on the same uvicorn that only INSERTs the body into
PostgreSQL.

    .venv/bin/python bench/webhook_ingest.py [--requests 10000] [--connections 64] [--repeat 3] [--workers 1,2]

The load comes from ``wrk`` (Debian's package ``wrk``), a C load generator that is not the
bottleneck, one thread, with bench/webhook_ingest.lua: every request is a distinct HubSpot v3
delivery (its own event id), signed here in Python beforehand and sent exactly once.  Both
servers run with the same number of uvicorn processes, for each count in ``--workers``.
Afterwards the inbox must hold every acknowledged delivery.  Prints medians and the ratio
(goal >= 0.5, p99 < 50 ms, 0 errors), and the load average: wrk keeps every connection
busy, so the mean latency is connections / rate (64 / 1,000 req/s = 64 ms), and a p99
under 50 ms at 64 connections needs well over 1,280 req/s, whatever the server does per
request; on a machine shared with other work, the limit's p99 shows what is reachable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import (  # noqa: E402
    free_port,
    http_server,
    scratch_database,
    scratch_redis,
    server_env,
)  # noqa: E402
from simulators.hubspot.webhooks import delivery  # noqa: E402

SECRET = "bench-client-secret"
LUA = ROOT / "bench" / "webhook_ingest.lua"
WARMUP = 500
BARE_APP = """
import os
from sqlalchemy import create_engine, text

# the same pool as the receiver (PLUGS_DATABASE_POOL_SIZE 10, 10 more on bursts)
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=10, max_overflow=10)


def _insert(body):
    with engine.begin() as c:
        c.execute(text("INSERT INTO bench_raw_webhooks (body) VALUES (:b)"), {"b": body})


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    from starlette.concurrency import run_in_threadpool

    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await run_in_threadpool(_insert, body)
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})
"""


def _cpu_seconds(root: int) -> float:
    """CPU time (user + system) of process ``root`` and its descendants, from /proc."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    tree, total = {root}, 0.0
    for pid in sorted(parents):  # children have higher pids than their parents here
        if pid in tree or parents[pid] in tree:
            tree.add(pid)
            total += times.get(pid, 0.0)
    return total


@contextmanager
def _server(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    with http_server(command, env, port, log) as (base, pid):
        _pids[port] = pid
        yield base


def _prepare(file: Path, base: str, integration_id: str, first: int, count: int) -> None:
    """``count`` signed deliveries with event ids from ``first`` on, as raw HTTP requests
    (bench/webhook_ingest.lua's format), signed now: HubSpot's window is 5 minutes."""
    path = f"/webhooks/hubspot/{integration_id}"
    host = base.removeprefix("http://")
    now = int(time.time() * 1000)
    with file.open("wb") as out:
        for n in range(first, first + count):
            event = {
                "eventId": n,
                "subscriptionId": 2002,
                "portalId": 62515,
                "appId": 1,
                "occurredAt": now,
                "subscriptionType": "contact.creation",
                "attemptNumber": 0,
                "objectId": n,
            }
            headers, body = delivery([event], base + path, SECRET, now)
            head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
            request = (
                f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{head}Content-Length: {len(body)}\r\n\r\n"
            ).encode() + body
            out.write(b"%08d" % len(request) + request)


_pids: dict[int, int] = {}  # port -> server process


def _wrk(base: str, file: Path, connections: int) -> dict:
    """One wrk run sending every request of ``file`` once; its RESULT line as a dict, and
    the CPU time the server (all its processes) spent per request."""
    server = _pids[int(base.rsplit(":", 1)[1])]
    cpu_before = _cpu_seconds(server)
    command = [
        "wrk", "-t1", f"-c{connections}", "-d60s", "--timeout", "10s",
        "-s", str(LUA), base, "--", str(file),
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, timeout=180)
    cpu = _cpu_seconds(server) - cpu_before
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result: {out.stdout[-2000:]} {out.stderr[-2000:]}")
    raw = json.loads(line.removeprefix("RESULT "))
    errors = sum(raw[k] for k in ("connect", "read", "write", "timeout"))
    errors += raw["sent"] - raw["acknowledged"]  # not 2xx, or no answer
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "cpu_ms_per_request": cpu * 1000 / max(1, raw["requests"]),
        "errors": errors,
        "acknowledged": raw["acknowledged"],
    }


def _setup_integration(env: dict[str, str]) -> str:
    script = (
        "from connectors.integrations import add_integration\n"
        "from models.accounts import create_organization\n"
        "from models.session import get_database\n"
        "db = get_database()\n"
        "org = create_organization(db, 'Bench webhooks')\n"
        "i = add_integration(db, org.id, 'hubspot', {'private_app_token': 'x', "
        f"'client_secret': {SECRET!r}}})\n"
        "print(i.id)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(out.stderr)
    return out.stdout.strip().splitlines()[-1]


def _stored(owner_url: str, integration_id: str) -> int:
    with psycopg.connect(owner_url) as connection:
        row = connection.execute(
            "SELECT count(*) FROM webhook_inbox WHERE integration_id = %s",
            (integration_id,),
        ).fetchone()
    return int(row[0]) if row else 0


def _load(averages: tuple[float, float, float]) -> str:
    """The 1, 5 and 15-minute load averages: p99 depends on what else the machine runs."""
    return "/".join(f"{value:.1f}" for value in averages)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=10000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", default="1,2", help="uvicorn processes, comma-separated")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    worker_counts = [int(n) for n in args.workers.split(",")]
    load_before = os.getloadavg()
    with (
        scratch_database() as database,
        scratch_redis() as redis_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        env = server_env(database, redis_url, folder / "var")
        integration_id = _setup_integration(env)
        owner_url = database["owner_url"].replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(owner_url, autocommit=True) as connection:
            connection.execute(
                "CREATE TABLE bench_raw_webhooks (id bigserial primary key, body bytea)"
            )
        (folder / "bare_app.py").write_text(BARE_APP)
        bare_env = {**env, "BENCH_DATABASE_URL": database["owner_url"]}
        summaries: dict[int, dict[str, dict[str, float]]] = {}
        acknowledged, next_id, errors = 0, 0, {"limit": 0, "ours": 0}
        for workers in worker_counts:
            ours_port, bare_port = free_port(), free_port()
            ours_cmd = [
                sys.executable, "-m", "workers.cli", "webhooks", "--port", str(ours_port),
                "--workers", str(workers),
            ]  # fmt: skip
            bare_cmd = [
                sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
                "--workers", str(workers), "--no-access-log", "--log-level", "warning",
                "--app-dir", str(folder),
            ]  # fmt: skip
            results: dict[str, list[dict]] = {"limit": [], "ours": []}
            errors_before = dict(errors)
            logs = {name: folder / f"{name}-{workers}.log" for name in results}
            with (
                _server(ours_cmd, env, ours_port, logs["ours"]) as ours,
                _server(bare_cmd, bare_env, bare_port, logs["limit"]) as bare,
            ):
                for _ in range(args.repeat):
                    for name, base in (("limit", bare), ("ours", ours)):
                        for count, kept in ((WARMUP, False), (args.requests, True)):
                            file = folder / "requests.bin"
                            _prepare(file, ours, integration_id, next_id, count)
                            next_id += count
                            result = _wrk(base, file, args.connections)
                            if name == "ours":
                                acknowledged += result["acknowledged"]
                            errors[name] += result["errors"]
                            if kept:
                                results[name].append(result)
                        shown = {k: round(v, 1) for k, v in result.items()}
                        print(f"workers {workers} {name:5s} {json.dumps(shown)}", flush=True)
            for name, log in logs.items():  # warm-ups included
                if errors[name] > errors_before[name]:
                    print(f"\n{name} server log (tail):\n" + log.read_text()[-3000:])
            summaries[workers] = {
                name: {
                    key: statistics.median(r[key] for r in runs)
                    for key in ("rps", "p50_ms", "p99_ms", "cpu_ms_per_request")
                }
                for name, runs in results.items()
            }
        stored = _stored(owner_url, integration_id)
    print(f"\nmedians over {args.repeat} runs of {args.requests} requests at "
          f"{args.connections} connections (wrk); load average {_load(load_before)} before, "
          f"{_load(os.getloadavg())} after ({os.cpu_count()} CPUs):")  # fmt: skip
    for workers, summary in summaries.items():
        limit, ours = summary["limit"], summary["ours"]
        print(
            f"  {workers} process(es): limit (bare INSERT) {limit['rps']:.0f} req/s, "
            f"p50 {limit['p50_ms']:.1f} ms, p99 {limit['p99_ms']:.1f} ms, "
            f"{limit['cpu_ms_per_request']:.2f} CPU ms/request | ours {ours['rps']:.0f} req/s, "
            f"p50 {ours['p50_ms']:.1f} ms, p99 {ours['p99_ms']:.1f} ms, "
            f"{ours['cpu_ms_per_request']:.2f} CPU ms/request"
            f" | ratio {ours['rps'] / limit['rps']:.2f} (goal >= 0.5, p99 < 50 ms)"
        )
    if len(summaries) > 1:
        rates = ", ".join(f"{w}: {s['ours']['rps']:.0f} req/s" for w, s in summaries.items())
        print(f"  ours by receiver processes: {rates}")
    print(
        f"  errors: ours {errors['ours']}, limit {errors['limit']}; deliveries acknowledged "
        f"by ours {acknowledged}, in the inbox {stored}"
        f" ({'all there' if stored >= acknowledged else 'MISSING ' + str(acknowledged - stored)})"
    )


if __name__ == "__main__":
    main()
