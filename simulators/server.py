"""Serve any ``handler(httpx.Request) -> httpx.Response`` over real HTTP on loopback.

Vendor simulators are plain callables, so the same object works in-process as
``httpx.MockTransport(handler)`` and over a socket through :func:`serve`::

    with serve(sim) as server, httpx.Client(base_url=server.base_url) as client:
        client.get("/crm/v3/objects/contacts")

The server speaks HTTP/1.1 with keep-alive (so httpx clients reuse connections),
answers each request in a single write with ``TCP_NODELAY`` set (no Nagle stalls),
and on exit closes the connections that are still open.
"""

from __future__ import annotations

import socket
import socketserver
import sys
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http import HTTPStatus

import httpx

Handler = Callable[[httpx.Request], httpx.Response]


@dataclass(frozen=True)
class RunningServer:
    """A server started by :func:`serve`: where to reach it."""

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """``http://host:port`` without a trailing slash."""
        return f"http://{self.host}:{self.port}"


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: Handler) -> None:
        super().__init__(address, _Connection)
        self.handler = handler
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()

    def close_connections(self) -> None:
        """Shut down keep-alive connections so their threads finish."""
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Connection(socketserver.StreamRequestHandler):
    """One client connection: HTTP/1.1 requests answered in turn until it closes."""

    server: _Server

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.request)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.request)
        try:
            super().finish()
        except OSError:
            pass

    def handle(self) -> None:
        try:
            while self._exchange():
                pass
        except (OSError, ValueError):
            pass  # the client went away or spoke something other than HTTP/1.x

    def _exchange(self) -> bool:
        """Read one request, write its response; False when the connection should close."""
        line = self.rfile.readline(_MAX_LINE)
        if not line.strip():
            return bool(line)  # tolerate a stray CRLF between requests
        method, target, version = line.decode("latin-1").split()
        headers = self._headers()
        body = self._body(headers)
        connection = _header(headers, "connection").lower()
        keep = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
        host = _header(headers, "host") or "{}:{}".format(*self.server.server_address[:2])
        request = httpx.Request(method, f"http://{host}{target}", headers=headers, content=body)
        self.wfile.write(_encode(_respond(self.server.handler, request), keep))
        return keep

    def _headers(self) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        while True:
            raw = self.rfile.readline(_MAX_LINE)
            if raw in (b"\r\n", b"\n", b""):
                return headers
            name, _, value = raw.decode("latin-1").partition(":")
            headers.append((name.strip(), value.strip()))

    def _body(self, headers: list[tuple[str, str]]) -> bytes:
        if "chunked" in _header(headers, "transfer-encoding").lower():
            chunks = []
            while size := int(self.rfile.readline(_MAX_LINE).split(b";")[0], 16):
                chunks.append(self.rfile.read(size))
                self.rfile.readline(_MAX_LINE)
            while self.rfile.readline(_MAX_LINE) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(chunks)
        length = int(_header(headers, "content-length") or 0)
        return self.rfile.read(length) if length else b""


def _header(headers: list[tuple[str, str]], name: str) -> str:
    return next((value for key, value in headers if key.lower() == name), "")


def _respond(handler: Handler, request: httpx.Request) -> httpx.Response:
    try:
        response = handler(request)
        response.read()
    except Exception:  # noqa: BLE001 - a simulator bug must reach the test as a 500
        traceback.print_exc(file=sys.stderr)
        response = httpx.Response(500, text="simulator error")
    return response


def _encode(response: httpx.Response, keep_alive: bool) -> bytes:
    """Status line, headers and body as one buffer (a single write, no Nagle stall)."""
    content = response.content
    status = response.status_code
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, '')}"]
    lines += [f"{k}: {v}" for k, v in response.headers.multi_items() if k.lower() not in _HOP]
    lines += [f"Content-Length: {len(content)}"]
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + content


_MAX_LINE = 65_537
_HOP = frozenset({"content-length", "transfer-encoding", "connection", "keep-alive"})
_REASONS = {status.value: status.phrase for status in HTTPStatus}


class HttpServer:
    """``handler`` served on ``host:port`` (0 = a free port) in a daemon thread from now
    until :meth:`stop`; ``address`` says where.  Binding fails with :class:`OSError`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._server = _Server((host, port), handler)
        bound_host, bound_port = self._server.server_address[:2]
        self.address = RunningServer(host=str(bound_host), port=int(bound_port))
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="simulator-server", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Stop accepting, close the open connections and release the socket."""
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def serve(handler: Handler, host: str = "127.0.0.1", port: int = 0) -> Iterator[RunningServer]:
    """Serve ``handler`` on ``host:port`` (0 = a free port) in a daemon thread.

    Yields a :class:`RunningServer` whose ``base_url`` clients use; on exit the
    server stops accepting, open connections are closed and the socket is released.
    """
    server = HttpServer(handler, host, port)
    try:
        yield server.address
    finally:
        server.stop()
