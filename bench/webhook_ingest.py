"""Webhook ingest: requests/s and p50/p99 latency of the real receiver (`plugs webhooks`:
integration lookup, HubSpot v3 signature verification, inbox INSERT ... ON CONFLICT, commit,
enqueue to Redis) at 64 connections, against the limit measured in the same run on the same
machine: a bare ASGI endpoint on the same uvicorn that only INSERTs the body into PostgreSQL.

    .venv/bin/python bench/webhook_ingest.py [--requests 5000] [--connections 64] [--repeat 3]

Both servers run in their own process; the load comes from this process (keep-alive
connections on asyncio streams), the same generator for both.  Prints medians and the ratio (goal >= 0.5, p99 < 50 ms).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.environment import scratch_database, scratch_redis  # noqa: E402
from simulators.hubspot.webhooks import delivery  # noqa: E402

SECRET = "bench-client-secret"
BARE_APP = """
import os
from sqlalchemy import create_engine, text

# the same pool as the receiver (PLUGS_DATABASE_POOL_SIZE 10, 10 more on bursts)
engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=10, max_overflow=10)
with engine.begin() as c:
    c.execute(text("CREATE TABLE IF NOT EXISTS bench_raw_webhooks (id bigserial primary key, body bytea)"))


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


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _server(command: list[str], env: dict[str, str], port: int, log: Path) -> Iterator[str]:
    with log.open("wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(base + "/", timeout=1)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


async def _load(base: str, requests: list[tuple[str, dict, bytes]], connections: int) -> dict:
    """Send ``requests`` over ``connections`` keep-alive HTTP/1.1 connections.

    A minimal client on asyncio streams: a general-purpose client (httpx) tops out near
    200 requests/s at 64 connections on this machine, below what the servers do, so it
    would measure itself."""
    host, port = base.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors: dict[int, int] = {}
    pending = list(reversed(requests))

    async def connection() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while pending:
                path, headers, body = pending.pop()
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                request = (
                    f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{head}"
                    f"Content-Length: {len(body)}\r\n\r\n"
                ).encode() + body
                started = time.perf_counter()
                writer.write(request)
                status_line = await reader.readline()
                length, chunked = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    if name.lower() == "content-length":
                        length = int(value)
                    elif name.lower() == "transfer-encoding":
                        chunked = "chunked" in value.lower()
                if chunked:
                    while (size := int((await reader.readline()).strip() or b"0", 16)) > 0:
                        await reader.readexactly(size + 2)
                    await reader.readline()
                elif length:
                    await reader.readexactly(length)
                latencies.append(time.perf_counter() - started)
                status = int(status_line.split()[1])
                if status >= 300:
                    errors[status] = errors.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "rps": len(requests) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "errors": sum(errors.values()),
        "error_statuses": errors,
    }


def _signed_requests(base: str, integration_id: str, count: int, offset: int) -> list:
    path = f"/webhooks/hubspot/{integration_id}"
    now = int(time.time() * 1000)
    requests = []
    for n in range(offset, offset + count):
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
        requests.append((path, headers, body))
    return requests


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


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    from connectors.credentials import new_key_entry

    with (
        scratch_database() as database,
        scratch_redis() as redis_url,
        tempfile.TemporaryDirectory() as tmp,
    ):
        folder = Path(tmp)
        env = {k: v for k, v in os.environ.items() if not k.startswith("PLUGS_")}
        env.update(
            PLUGS_DATABASE_URL=database["app_url"],
            PLUGS_SYSTEM_DATABASE_URL=database["system_url"],
            PLUGS_BROKER_URL=redis_url,
            PLUGS_RESULT_BACKEND=redis_url,
            PLUGS_REDIS_URL=redis_url,
            PLUGS_SECRET_KEYS=new_key_entry(),
            PLUGS_DATA_DIR=str(folder / "var"),
            PLUGS_LOG_LEVEL="WARNING",
        )
        integration_id = _setup_integration(env)
        bare_file = folder / "bare_app.py"
        bare_file.write_text(BARE_APP)
        ours_port, bare_port = _free_port(), _free_port()
        ours_cmd = [sys.executable, "-m", "workers.cli", "webhooks", "--port", str(ours_port)]
        bare_cmd = [
            sys.executable, "-m", "uvicorn", "bare_app:app", "--port", str(bare_port),
            "--no-access-log", "--log-level", "warning", "--app-dir", str(folder),
        ]  # fmt: skip
        bare_env = {**env, "BENCH_DATABASE_URL": database["owner_url"]}
        results: dict[str, list[dict]] = {"limit": [], "ours": []}
        offset = 0
        with (
            _server(ours_cmd, env, ours_port, folder / "ours.log") as ours,
            _server(bare_cmd, bare_env, bare_port, folder / "bare.log") as bare,
        ):
            for _ in range(args.repeat):
                for name, base in (("limit", bare), ("ours", ours)):
                    warmup = _signed_requests(base, integration_id, 300, offset)
                    offset += 300
                    asyncio.run(_load(base, warmup, args.connections))
                    batch = _signed_requests(base, integration_id, args.requests, offset)
                    offset += args.requests
                    result = asyncio.run(_load(base, batch, args.connections))
                    results[name].append(result)
                    shown = {
                        k: round(v, 1) if isinstance(v, float) else v for k, v in result.items()
                    }
                    print(f"{name:5s} {json.dumps(shown)}", flush=True)
        if any(r["errors"] for r in results["ours"]):
            print("\nreceiver log (tail):\n" + (folder / "ours.log").read_text()[-3000:])
    summary = {
        name: {key: statistics.median(r[key] for r in runs) for key in ("rps", "p50_ms", "p99_ms")}
        for name, runs in results.items()
    }
    ratio = summary["ours"]["rps"] / summary["limit"]["rps"]
    print(
        f"\nmedians over {args.repeat} runs of {args.requests} requests at {args.connections} connections:\n"
        f"  limit (bare INSERT): {summary['limit']['rps']:.0f} req/s, p50 {summary['limit']['p50_ms']:.1f} ms, "
        f"p99 {summary['limit']['p99_ms']:.1f} ms\n"
        f"  ours (receiver):     {summary['ours']['rps']:.0f} req/s, p50 {summary['ours']['p50_ms']:.1f} ms, "
        f"p99 {summary['ours']['p99_ms']:.1f} ms\n"
        f"  ratio ours/limit: {ratio:.2f} (goal >= 0.5); errors: "
        f"{sum(r['errors'] for runs in results.values() for r in runs)}"
    )


if __name__ == "__main__":
    main()
