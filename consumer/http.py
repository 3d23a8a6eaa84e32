"""The consumer's HTTP endpoints: a small server on one thread, non-blocking sockets.

`HealthServer` answers, in the processing process:

- ``/healthz``: 200 while the processing loop is alive (it went round within the stall limit), 503 if not;
- ``/readyz``: 200 once every assigned partition's learner is restored, 503 before and during rebalances;
- ``/metrics``: whatever the `metrics` callable renders (Prometheus text format).

The consumer's port itself is served by `consumer.front` (a process of its own, which answers
``/v1/...`` and forwards the rest here), on the same `Server`.

Only GET is served: any other method gets 405, an unknown path 404.

>>> probe = Probe(stall_limit_s=60)
>>> probe.health()[0], probe.readiness()[0]
(200, 503)
>>> probe.set_ready(True)
>>> probe.readiness()
(200, 'ready')
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from consumer.http_response import response, text

__all__ = ["HealthServer", "Probe", "Reply", "Server"]

log = logging.getLogger(__name__)
Metrics = Callable[[], tuple[bytes, str]]
Reply = bytes | Future[bytes]


class Probe:
    """What the endpoints report, updated by the processing loop."""

    def __init__(self, stall_limit_s: float) -> None:
        self.stall_limit_s = stall_limit_s
        self._beat = time.monotonic()
        self._ready = False
        self._reason = "starting"

    def beat(self) -> None:
        self._beat = time.monotonic()

    def set_ready(self, ready: bool, reason: str = "") -> None:
        self._ready, self._reason = ready, reason

    def health(self) -> tuple[int, str]:
        silent = time.monotonic() - self._beat
        if silent > self.stall_limit_s:
            return 503, f"processing loop silent for {silent:.0f} s"
        return 200, "ok"

    def readiness(self) -> tuple[int, str]:
        return (200, "ready") if self._ready else (503, self._reason or "not ready")


class Server:
    """An HTTP/1.1 server for small GET endpoints on one thread (`route` answers a path).

    Each request costs one short hold of the GIL (about 0.1 ms: accept, one read, one write),
    not a thread and `http.server`'s header parsing (about 0.4 ms). Requests are answered once
    their head has arrived (no body is read: only GET is served) and the connection is closed
    after the reply (``Connection: close``). A route may answer later (a `Future`, completed on
    another thread) without holding up the others. A head larger than `MAX_HEAD` gets 431; a
    connection not answered within `TIMEOUT_S` is dropped; at most `MAX_CONNECTIONS` are open at
    once (more wait in the listen backlog).
    """

    MAX_HEAD = 16 * 1024
    TIMEOUT_S = 10.0
    MAX_CONNECTIONS = 128

    def __init__(self, listener: socket.socket) -> None:
        self._listener = listener
        self._listener.setblocking(False)
        address = listener.getsockname()
        self.port: int = address[1] if isinstance(address, tuple) else 0
        self._wake_read, self._wake_write = socket.socketpair()
        self._wake_read.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._selector.register(self._listener, selectors.EVENT_READ, "listen")
        self._selector.register(self._wake_read, selectors.EVENT_READ, "wake")
        self._open: dict[socket.socket, _Connection] = {}
        self._answered: collections.deque[_Connection] = collections.deque()  # by other threads
        self._accepting = True
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="http", daemon=True)
        self._thread.start()

    def route(self, path: str) -> Reply:
        """The reply to ``GET path`` (a whole response: `response`)."""
        raise NotImplementedError

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wake()
        self._thread.join(5)
        for sock in list(self._open):
            sock.close()
        for sock in (self._listener, self._wake_read, self._wake_write):
            sock.close()
        self._selector.close()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # full (already woken) or closed
            self._wake_write.send(b"x")

    # -- the serving thread ----------------------------------------------------------------
    def _serve(self) -> None:
        while not self._closed.is_set():
            for key, mask in self._selector.select(timeout=1.0):
                if key.data == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_read.recv(4096)
                elif key.data == "listen":
                    self._accept()
                elif mask & selectors.EVENT_WRITE:
                    self._write(key.data)
                else:
                    self._read(key.data)
            while self._answered:
                connection = self._answered.popleft()
                if self._open.get(connection.sock) is connection and connection.later is not None:
                    self._reply(connection, _result(connection.later), registered=False)
            self._expire(time.monotonic())

    def _accept(self) -> None:
        while len(self._open) < self.MAX_CONNECTIONS:
            try:
                sock, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors, for one: the connection waits
                log.warning("http: cannot accept a connection: %s", exc)
                return
            sock.setblocking(False)
            connection = _Connection(sock, time.monotonic() + self.TIMEOUT_S)
            self._open[sock] = connection
            self._read(connection, registered=False)
        if self._accepting:  # full: leave the rest in the backlog until a connection closes
            self._selector.unregister(self._listener)
            self._accepting = False

    def _read(self, connection: _Connection, registered: bool = True) -> None:
        try:
            chunk = connection.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            if not registered:
                self._selector.register(connection.sock, selectors.EVENT_READ, connection)
            return
        except OSError:
            chunk = b""
        if not chunk or connection.reply is not None or connection.later is not None:
            if not chunk:  # the client left (or finished sending what we drain)
                self._drop(connection)
            return
        connection.received += chunk
        end = connection.received.find(b"\r\n\r\n")
        if end < 0 and len(connection.received) <= self.MAX_HEAD:
            if not registered:
                self._selector.register(connection.sock, selectors.EVENT_READ, connection)
            return
        # Anything beyond the head (a body we do not read) is drained before closing, so that
        # the client sees the reply rather than a reset.
        connection.linger = len(connection.received) > end + 4 or not connection.received.startswith(b"GET ")
        if end < 0 or end > self.MAX_HEAD:
            reply: Reply = response(*text(431, "request head too large"))
        else:
            reply = self._respond(bytes(connection.received[:end]))
        if isinstance(reply, Future):
            if registered:
                self._selector.unregister(connection.sock)
            connection.later = reply

            def answered(_: Future[bytes]) -> None:
                self._answered.append(connection)
                self._wake()

            reply.add_done_callback(answered)
            return
        self._reply(connection, reply, registered)

    def _reply(self, connection: _Connection, reply: bytes, registered: bool) -> None:
        connection.later = None
        connection.reply = memoryview(reply)
        self._write(connection, registered)

    def _write(self, connection: _Connection, registered: bool = True) -> None:
        assert connection.reply is not None
        try:
            sent = connection.sock.send(connection.reply)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._drop(connection)
            return
        connection.reply = connection.reply[sent:]
        if connection.reply:
            events = selectors.EVENT_WRITE
        elif connection.linger:
            connection.linger = False
            try:
                connection.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self._drop(connection)
                return
            events = selectors.EVENT_READ
        else:
            self._drop(connection)
            return
        if registered:
            self._selector.modify(connection.sock, events, connection)
        else:
            self._selector.register(connection.sock, events, connection)

    def _drop(self, connection: _Connection) -> None:
        if self._open.pop(connection.sock, None) is None:
            return
        with contextlib.suppress(KeyError):  # not registered: answered at once, or answering later
            self._selector.unregister(connection.sock)
        connection.sock.close()
        if not self._accepting:
            self._selector.register(self._listener, selectors.EVENT_READ, "listen")
            self._accepting = True

    def _expire(self, now: float) -> None:
        for connection in [c for c in self._open.values() if c.deadline < now]:
            self._drop(connection)

    def _respond(self, head: bytes) -> Reply:
        line = head.split(b"\r\n", 1)[0].decode("iso-8859-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[1]:
            return response(*text(400, "bad request line"))
        method, path, _ = parts
        if method != "GET":
            return response(*text(405, "only GET"), head=method == "HEAD", allow=True)
        try:
            return self.route(path)
        except Exception:  # a bug in a route: the caller gets 500, the server goes on
            log.exception("http: %s failed", path[:200])
            return response(*text(500, "internal error"))


class HealthServer(Server):
    """Serves a `Probe` and metrics until `close`, on ``host:port`` or on `listener`."""

    def __init__(
        self,
        host: str,
        port: int,
        probe: Probe,
        metrics: Metrics | None = None,
        listener: socket.socket | None = None,
    ) -> None:
        self._routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: text(*probe.health()),
            "/readyz": lambda: text(*probe.readiness()),
        }
        if metrics is not None:
            render = metrics
            self._routes["/metrics"] = lambda: (200, *render())
        super().__init__(listener or socket.create_server((host, port), backlog=128))

    def route(self, path: str) -> Reply:
        found = self._routes.get(path.split("?", 1)[0])
        return response(*(found() if found else text(404, "not found")))


def _result(later: Future[bytes]) -> bytes:
    try:
        return later.result()
    except Exception:
        log.exception("http: a reply failed")
        return response(*text(500, "internal error"))


@dataclass(eq=False)
class _Connection:
    sock: socket.socket
    deadline: float
    received: bytearray = field(default_factory=bytearray)
    reply: memoryview | None = None
    later: Future[bytes] | None = None
    linger: bool = False
