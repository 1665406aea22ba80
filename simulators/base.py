"""What every vendor simulator shares: the request log, injected faults and serving.

A simulator is a ``handler(httpx.Request) -> httpx.Response``: use it in-process with
``httpx.MockTransport(sim)``, or over loopback HTTP with ``with sim:`` (``sim.url``),
``sim.start()``/``sim.stop()`` or ``simulators.server.serve(sim)``.  A vendor subclasses
:class:`Simulator` and writes three things: ``handle`` (its API), ``fault_response`` (its
own error for an injected status) and, if it has a login endpoint that faults should
spare, ``is_api_call``.  Each request is answered by the next matching injected fault, or
else by ``handle``, and then recorded in ``sim.requests``::

    sim.fail_next(2, status=503)                      # the next two API calls: 503
    sim.fail_next(status=429, retry_after=3)          # then one 429 with Retry-After: 3
    sim.fail_next(UNTIL_CLEARED, status=503)          # down until sim.clear_faults()
    [r.status for r in sim.requests.where(path_contains="/contacts")]
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx

from simulators.server import HttpServer

#: A fault count that never runs out: the vendor is down until ``clear_faults()``.
UNTIL_CLEARED = sys.maxsize


@dataclass(frozen=True)
class RecordedRequest:
    """One request a simulator answered, and the status it answered with."""

    method: str
    path: str
    query: dict[str, str]
    headers: httpx.Headers
    body: bytes
    status: int
    time: float  # the simulator's clock when it answered (epoch seconds)


class RequestLog:
    """Every request a simulator answered, oldest first; safe to read while it serves.

    Iterating, ``len`` and indexing see a snapshot taken at that moment.
    """

    def __init__(self) -> None:
        self._entries: list[RecordedRequest] = []
        self._lock = threading.Lock()

    def record(self, request: httpx.Request, status: int, at: float) -> None:
        entry = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=dict(request.url.params),
            headers=httpx.Headers(request.headers),
            body=request.content,
            status=status,
            time=at,
        )
        with self._lock:
            self._entries.append(entry)

    def where(
        self,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        status: int | None = None,
    ) -> list[RecordedRequest]:
        """The requests matching every filter given."""
        return [
            entry
            for entry in self
            if (method is None or entry.method == method)
            and (path_contains is None or path_contains in entry.path)
            and (status is None or entry.status == status)
        ]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def _snapshot(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._entries)

    def __iter__(self) -> Iterator[RecordedRequest]:
        return iter(self._snapshot())

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def __getitem__(self, index: int) -> RecordedRequest:
        with self._lock:
            return self._entries[index]


@dataclass
class Fault:
    """An injected failure waiting for the requests it will answer."""

    remaining: int
    status: int
    path_prefix: str
    retry_after: float | None
    body: Any

    def matches(self, path: str, api_call: bool) -> bool:
        return path.startswith(self.path_prefix) if self.path_prefix else api_call


class FaultInjector:
    """Injected failures, first in first out; each answers its next ``remaining`` requests."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        if fault.remaining < 1:
            raise ValueError("a fault answers at least one request (count >= 1)")
        with self._lock:
            self._faults.append(fault)

    def take(self, path: str, api_call: bool) -> Fault | None:
        """The oldest fault for this request, counted as used; None to answer normally."""
        with self._lock:
            fault = next((f for f in self._faults if f.matches(path, api_call)), None)
            if fault is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._faults.remove(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()


class Simulator:
    """The base of every vendor simulator: request log, faults, start/stop and ``url``.

    ``clock`` (epoch seconds) is the simulator's time; ``_lock`` is there for a vendor
    that keeps its state behind one lock.
    """

    #: The vendor's name in the line ``serve_forever`` prints.
    name = "Vendor"

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.requests = RequestLog()
        self._faults = FaultInjector()
        self._lock = threading.RLock()
        self._server: HttpServer | None = None

    # ----------------------------------------------------------- the vendor's part

    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request as the vendor would."""
        raise NotImplementedError

    def fault_response(self, status: int) -> httpx.Response:
        """The vendor's own answer with ``status`` (429: its rate-limit answer)."""
        return httpx.Response(status, json={"error": "injected failure", "status": status})

    def is_api_call(self, request: httpx.Request) -> bool:
        """Whether a fault without ``path_prefix`` applies (the API, not the login)."""
        return True

    # ------------------------------------------------------------------ HTTP

    def __call__(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (an injected fault first, else the vendor) and record it."""
        fault = self._faults.take(request.url.path, self.is_api_call(request))
        response = self.handle(request) if fault is None else self._injected(fault)
        response.read()
        self.requests.record(request, response.status_code, self.clock())
        return response

    def _injected(self, fault: Fault) -> httpx.Response:
        if fault.body is None:
            response = self.fault_response(fault.status)
        elif isinstance(fault.body, bytes | str):
            response = httpx.Response(fault.status, content=fault.body)
        else:
            response = httpx.Response(fault.status, json=fault.body)
        if fault.retry_after is not None:
            seconds = fault.retry_after
            response.headers["Retry-After"] = str(
                int(seconds) if seconds == int(seconds) else seconds
            )
        return response

    # ------------------------------------------------------------- faults

    def fail_next(
        self,
        count: int = 1,
        *,
        status: int = 500,
        path_prefix: str = "",
        retry_after: float | None = None,
        body: bytes | str | dict[str, Any] | list[Any] | None = None,
    ) -> None:
        """Answer the next ``count`` requests with ``status`` instead of the vendor.

        ``path_prefix``: only requests whose path starts with it (default: every API call,
        not the vendor's login endpoint).  The answer is the vendor's own error for that
        status (429: its rate-limit answer), or ``body`` (bytes, text or JSON) when given;
        ``retry_after`` (seconds) adds a ``Retry-After`` header.  Faults queue up: each
        request takes the oldest one that matches.  ``UNTIL_CLEARED`` never runs out.
        """
        self._faults.add(Fault(count, status, path_prefix, retry_after, body))

    def clear_faults(self) -> None:
        """Forget every injected fault: requests reach the vendor again."""
        self._faults.clear()

    # ------------------------------------------------------------- serving

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve over HTTP on ``host:port`` (0 = a free port); returns :attr:`url`."""
        if self._server is not None:
            raise RuntimeError(f"{self.name} simulator is already serving on {self.url}")
        self._server = HttpServer(self, host, port)
        return self.url

    def stop(self) -> None:
        """Stop serving (open connections are closed); nothing if not serving."""
        server, self._server = self._server, None
        if server is not None:
            server.stop()

    @property
    def url(self) -> str:
        """``http://host:port`` of the running server, without a trailing slash."""
        if self._server is None:
            raise RuntimeError(f"{self.name} simulator is not serving; start() it first")
        return self._server.address.base_url

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def serve_forever(self, host: str, port: int, describe: Callable[[str], str]) -> None:
        """Serve in the foreground: print ``describe(url)`` once, then wait for Ctrl-C or
        SIGTERM and print ``stopped``.  A port that cannot be bound is one error line."""
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            url = self.start(host, port)
        except OSError as exc:
            sys.exit(f"{self.name} simulator cannot listen on {host}:{port}: {exc.strerror}")
        try:
            print(describe(url), flush=True)
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopped", flush=True)
        finally:
            self.stop()


def command_line(vendor: str) -> argparse.ArgumentParser:
    """The arguments every ``python -m simulators.<vendor>`` takes: ``--host``, ``--port``."""
    parser = argparse.ArgumentParser(
        prog=f"python -m simulators.{vendor.lower()}",
        description=f"Serve a seeded {vendor} simulator in the foreground until Ctrl-C.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1")
    parser.add_argument("--port", type=_port, default=0, help="default 0: a free port")
    return parser


def non_negative(text: str) -> int:
    """An argparse type: a whole number, 0 or more."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number (0 or more)")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65_535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535)")
    return int(text)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
