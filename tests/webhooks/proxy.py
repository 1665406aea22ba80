"""A TCP proxy in front of PostgreSQL or Redis that a test can cut, blackhole and restore:
the server "stops" for the process that connects through it, while it keeps serving the
other tests (and CI) on the same machine.

* ``cut()``: refuse new connections and close the open ones (the server went away);
* ``blackhole()``: the path goes silent: connections stay open and new ones are accepted,
  but every byte is dropped and no close reaches the other side (no RST, no FIN), as when
  a firewall or a dead router eats the packets;
* ``restore()``: bytes flow again; a side that closed during the blackhole is closed on
  the other side now, and connections accepted during it are closed.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Proxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        self._open = threading.Event()
        self._open.set()
        self._flowing = threading.Event()  # cleared during a blackhole
        self._flowing.set()
        self._held: set[socket.socket] = set()  # accepted during a blackhole
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._open.is_set():
                client.close()
                continue
            if not self._flowing.is_set():
                with self._lock:
                    self._held.add(client)
                threading.Thread(target=self._drop, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)  # the timeout was for connecting; idle is fine
            with self._lock:
                self._sockets |= {client, upstream}
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _drop(self, client: socket.socket) -> None:
        """A connection accepted during a blackhole: read and drop until it is closed."""
        try:
            while client.recv(65536):
                pass
        except OSError:
            pass

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                if self._flowing.is_set():
                    sink.sendall(data)
            self._flowing.wait()  # a close crosses a silent path only once it is back
        except OSError:
            pass
        finally:
            for s in (source, sink):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def blackhole(self) -> None:
        """Drop every byte from now on, without closing anything (see the module doc)."""
        self._flowing.clear()

    def cut(self) -> None:
        """Refuse new connections and break the open ones (the database went away)."""
        self._open.clear()
        self._flowing.set()
        with self._lock:
            sockets, self._sockets = self._sockets | self._held, set()
            self._held = set()
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def restore(self) -> None:
        self._open.set()
        self._flowing.set()
        with self._lock:
            held, self._held = self._held, set()
        for s in held:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        self._stopped = True
        self.cut()
        self._listener.close()


@contextmanager
def proxy_to(host: str, port: int) -> Iterator[Proxy]:
    proxy = Proxy((host, port))
    try:
        yield proxy
    finally:
        proxy.close()
