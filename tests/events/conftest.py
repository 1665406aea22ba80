"""The host product's side of events, for real: a receiver on loopback that records
every request (and answers what a test tells it), and a worker of this module's own whose
retries are a second apart (``PLUGS_EVENT_RETRY_SCHEDULE``) on a broker of its own, so
the session's shared worker (default schedule) never takes its tasks; its email goes to a
closed port, tried once."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests import services


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


class Receiver:
    """An HTTP server on 127.0.0.1: ``answers[path]`` are the statuses to give, in order
    (then 200); every request is kept in ``received``."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.answers: dict[str, deque[int]] = defaultdict(deque)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                with receiver._lock:
                    receiver.received.append(
                        Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                    )
                    queued = receiver.answers[self.path]
                    status = queued.popleft() if queued else 200
                self.send_response(status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "it") -> object:
    """``check()``'s first truthy value, polled until ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"waited {timeout}s for {what}")


@pytest.fixture(scope="module")
def events_worker(
    platform_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[services.WorkerProcess]:
    """A worker with retries a second apart and endpoints disabled after two failed
    deliveries, on a Redis db of its own; this process publishes there too meanwhile."""
    base = os.environ.get("PLUGS_TEST_REDIS_URL", "redis://127.0.0.1:6379")
    broker, release = services.claim_redis_db(base)
    env = {
        **platform_env,
        "PLUGS_BROKER_URL": broker,
        "PLUGS_RESULT_BACKEND": broker,
        "PLUGS_EVENT_RETRY_SCHEDULE": "[1, 1]",
        "PLUGS_EVENT_DISABLE_AFTER_FAILURES": "2",
        # email to a closed port on loopback, tried once: a notification that fails for good
        "PLUGS_SMTP_SERVERS": json.dumps(
            [{"host": "127.0.0.1", "port": services.free_port(), "starttls": False}]
        ),
        "PLUGS_NOTIFICATION_MAX_ATTEMPTS": "1",
    }
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        services.reload_settings()
        worker = services.start_worker(env, Path(tmp_path_factory.mktemp("events-worker")))
        try:
            yield worker
        finally:
            worker.stop()
    services.reload_settings()
    release()
