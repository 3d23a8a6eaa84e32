"""The consumer's HTTP server: small endpoints on one thread, non-blocking sockets.

Its servers: `consumer.health.HealthServer` in the processing process (``/healthz``,
``/readyz``, ``/metrics``, and the feedback POST), and the consumer's port itself, served by
`consumer.front` (a process of its own, which answers ``/v1/...`` and forwards the rest there).

GET is served, and POST with a body of at most `Server.MAX_BODY` bytes where a server takes it
(`route_post`); any other method gets 405, an unknown path 404.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import socket
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field

from consumer.http_response import response, text

__all__ = ["Reply", "Server"]

log = logging.getLogger(__name__)
Reply = bytes | Future[bytes]


class Server:
    """An HTTP/1.1 server for small endpoints on one thread (`route` answers a GET's path,
    `route_post` a POST's path and body).

    Each request costs one short hold of the GIL (about 0.1 ms: accept, one read, one write),
    not a thread and `http.server`'s header parsing (about 0.4 ms). Requests are answered once
    their head (and a POST's Content-Length of body) has arrived, and the connection is closed
    after the reply (``Connection: close``). A route may answer later (a `Future`, completed on
    another thread) without holding up the others. A head larger than `MAX_HEAD` gets 431, a
    body larger than `MAX_BODY` 413; a connection not answered within `TIMEOUT_S` is dropped;
    at most `MAX_CONNECTIONS` are open at once (more wait in the listen backlog)."""

    MAX_HEAD = 16 * 1024
    MAX_BODY = 64 * 1024  # of a POST
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

    def accepts_post(self, path: str) -> bool:
        """Whether `route_post` answers this path (any other POST gets 405, its body unread)."""
        return False

    def route_post(self, path: str, body: bytes) -> Reply:
        """The reply to ``POST path`` with `body` (a path `accepts_post` takes)."""
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
        body = b""
        if 0 <= end <= self.MAX_HEAD and self._posted(bytes(connection.received[:end])):
            length = _content_length(bytes(connection.received[:end]))
            if length is not None and 0 <= length <= self.MAX_BODY:
                if len(connection.received) < end + 4 + length:  # the body is still coming
                    if not registered:
                        self._selector.register(connection.sock, selectors.EVENT_READ, connection)
                    return
                body = bytes(connection.received[end + 4 : end + 4 + length])
                del connection.received[end + 4 + length :]  # a pipelined rest is not served
        # Anything beyond the head (a body we do not read) is drained before closing, so that
        # the client sees the reply rather than a reset.
        connection.linger = len(connection.received) > end + 4 + len(body) or not (
            connection.received.startswith(b"GET ") or body
        )
        if end < 0 or end > self.MAX_HEAD:
            reply: Reply = response(*text(431, "request head too large"))
        else:
            reply = self._respond(bytes(connection.received[:end]), body)
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

    def _posted(self, head: bytes) -> bool:
        """A POST to a path that takes one: its body is read before it is answered."""
        parts = head.split(b"\r\n", 1)[0].split(b" ")
        return len(parts) == 3 and parts[0] == b"POST" and self.accepts_post(parts[1].decode("iso-8859-1"))

    def _respond(self, head: bytes, body: bytes = b"") -> Reply:
        line = head.split(b"\r\n", 1)[0].decode("iso-8859-1")
        parts = line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/") or not parts[1]:
            return response(*text(400, "bad request line"))
        method, path, _ = parts
        if method == "POST" and self.accepts_post(path):
            length = _content_length(head)
            if length is None:
                return response(*text(411, "a POST needs a Content-Length"))
            if not 0 <= length <= self.MAX_BODY:
                return response(*text(413, f"a POST body is at most {self.MAX_BODY} bytes"))
        elif method != "GET":
            return response(*text(405, "only GET"), head=method == "HEAD", allow=True)
        try:
            return self.route_post(path, body) if method == "POST" else self.route(path)
        except Exception:  # a bug in a route: the caller gets 500, the server goes on
            log.exception("http: %s failed", path[:200])
            return response(*text(500, "internal error"))


def _content_length(head: bytes) -> int | None:
    """The head's Content-Length (None if it has none, or not a number)."""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value.strip()) if value.strip().isdigit() else None
    return None


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
