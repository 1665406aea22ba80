"""The HTTP API under load: requests/s and p50/p99 latency of listing runs
(``GET /api/v1/runs?limit=50``: key check, rate limit, one keyset page under row-level
security) and of starting syncs (``POST /api/v1/runs``: a run, its stream runs and the
first page tasks written and handed to the broker), against the same server's
``/healthz`` measured in the same run at the same concurrency.

    .venv/bin/python bench/api.py [--connections 64] [--seconds 8] [--repeat 3] [--runs 5000] [--workers 1]

The load comes from ``wrk`` (Debian's package ``wrk``), a C load generator that is not the
bottleneck, one thread.  The server is `plugs webhooks` (``--workers`` uvicorn processes) on a scratch
database holding ``--runs`` runs of the organization; no worker runs, so started syncs
stay queued.  Prints medians and the ratios to /healthz (goal: list p99 < 50 ms).
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import (  # noqa: E402
    free_port,
    http_server,
    scratch_database,
    scratch_redis,
    server_env,
)  # noqa: E402

#: Seeds the organization, its integration, ``runs`` finished runs and a key; prints the
#: integration's id and the key (in a process of its own, with the benchmark's settings).
SETUP = """
import sys, uuid
from datetime import timedelta
from connectors.integrations import add_integration
from models.accounts import create_organization
from models.api_keys import create_api_key
from models.base import utcnow
from models.integrations import IntegrationLog
from models.session import get_database
from sqlalchemy import insert

db = get_database()
org = create_organization(db, "Bench API")
integration = add_integration(
    db, org.id, "hubspot", {"private_app_token": "x"}, {"base_url": "http://127.0.0.1:9"}
)
now = utcnow()
rows = [
    {
        "id": uuid.uuid4(), "organization_id": org.id, "integration_id": integration.id,
        "operation": "sync", "status": ("success", "partial", "failed")[i % 3],
        "started_at": now - timedelta(minutes=i), "completed_at": now - timedelta(minutes=i),
        "created_at": now - timedelta(minutes=i), "records_processed": i, "records_failed": 0,
        "message": "bench", "request_data": {"trigger": "schedule"}, "response_data": {},
        "error_details": {},
    }
    for i in range(int(sys.argv[1]))
]
with db.tenant(org.id) as session:
    session.execute(insert(IntegrationLog), rows)
_, secret = create_api_key(db, org.id, "bench", rate_limit=10**9)
print(integration.id)
print(secret)
"""

POST_LUA = """
wrk.method = "POST"
wrk.body = '{"integration_id": "%s"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %s"
"""


@contextmanager
def _server(env: dict[str, str], port: int, log: Path, workers: int) -> Iterator[str]:
    command = [sys.executable, "-m", "workers.cli", "webhooks", "--port", str(port)]
    command += ["--workers", str(workers)]
    with http_server(command, env, port, log, "/healthz") as (base, _pid):
        yield base


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def _wrk(url: str, connections: int, seconds: int, extra: list[str]) -> dict[str, float]:
    """One wrk run: requests/s, p50 and p99 in ms, and the non-2xx answers."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
         *extra, url],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    text = out.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", text).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    errors = re.search(r"Socket errors:.*", text)
    return {
        "rps": rps,
        "p50_ms": p50,
        "p99_ms": p99,
        "non_2xx": float(bad.group(1)) if bad else 0.0,
        "socket_errors": 1.0 if errors else 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5000, help="runs seeded in the database")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn processes")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    with (
        scratch_database() as database,
        scratch_redis() as redis_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        env = server_env(database, redis_url, folder / "var", PLUGS_ALLOW_PRIVATE_URLS="true")
        setup = subprocess.run(
            [sys.executable, "-c", SETUP, str(args.runs)],
            env=env, cwd=ROOT, capture_output=True, text=True,
        )  # fmt: skip
        if setup.returncode != 0:
            raise RuntimeError(setup.stderr[-3000:])
        integration_id, secret = setup.stdout.split()[-2:]
        lua = folder / "post.lua"
        lua.write_text(POST_LUA % (integration_id, secret))
        auth = ["-H", f"Authorization: Bearer {secret}"]
        port = free_port()
        targets = {
            "healthz": ("/healthz", []),
            "list": ("/api/v1/runs?limit=50", auth),
            "start": ("/api/v1/runs", ["-s", str(lua)]),
        }
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        with _server(env, port, folder / "server.log", args.workers) as base:
            checked = httpx.get(
                base + targets["list"][0], headers={"authorization": f"Bearer {secret}"}
            )
            assert checked.status_code == 200 and len(checked.json()["items"]) == 50, checked.text
            _wrk(base + "/healthz", args.connections, 2, [])  # warm-up
            for _ in range(args.repeat):
                for name, (path, extra) in targets.items():
                    result = _wrk(base + path, args.connections, args.seconds, extra)
                    results[name].append(result)
                    shown = {k: round(v, 1) for k, v in result.items()}
                    print(f"{name:8s} {json.dumps(shown)}", flush=True)
                    if not result["rps"] or result["non_2xx"] or result["socket_errors"]:
                        print((folder / "server.log").read_text()[-3000:], flush=True)
    medians = {
        name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
        for name, runs in results.items()
    }
    errors = sum(r["non_2xx"] + r["socket_errors"] for runs in results.values() for r in runs)
    health = medians["healthz"]
    print(
        f"\nmedians over {args.repeat} runs of {args.seconds} s at {args.connections} "
        f"connections (wrk), {args.workers} server process(es), {args.runs} runs in the database:"
    )
    for name in ("healthz", "list", "start"):
        m = medians[name]
        print(
            f"  {name:8s} {m['rps']:7.0f} req/s  p50 {m['p50_ms']:6.1f} ms  "
            f"p99 {m['p99_ms']:6.1f} ms  ratio to /healthz {m['rps'] / health['rps']:.2f}"
        )
    goal = "met" if medians["list"]["p99_ms"] < 50 else "NOT met"
    print(
        f"  list p99 {medians['list']['p99_ms']:.1f} ms vs goal < 50 ms: {goal}; "
        f"non-2xx answers and socket errors: {errors:.0f}"
    )


if __name__ == "__main__":
    main()
