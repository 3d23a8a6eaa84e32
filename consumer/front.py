"""The consumer's HTTP port, served by a process of its own: the front.

The processing loop is Python that holds the GIL most of the time, and a thread of its process
waits for the GIL at each step of a request (up to the 5 ms switch interval each time): queries
answered in that process waited 10-20 ms at the 99th percentile while it learned, and each one
took its GIL time from the loop. So the port is served by a second process, which never runs the
learner and never waits for it:

- the consumer binds the port (a bad address is still exit 2, naming the option) and listens on a
  Unix socket for what only it can answer (`consumer.http.HealthServer`: ``/healthz``,
  ``/readyz``, ``/metrics``); then it starts ``python -m consumer.front`` with both;
- the front answers ``/v1/...`` from its own copy of the committed predictions
  (`consumer.query.Store`), which the consumer sends it through a pipe at each commit
  (`Feed`: the one cost left on the loop, one small write per commit), and forwards every other
  request to the consumer's Unix socket on a thread of its own, so a scrape never holds up a
  query;
- the front exits when the pipe closes (the consumer stopped, or died); the consumer stops
  (exit 1) when the front exits on its own.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import logging
import os
import pickle
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import IO, Any

from consumer import logs
from consumer.http import Reply, Server
from consumer.http_response import JSON, response, text
from consumer.query import Staged, Store

__all__ = ["Feed", "Front", "FrontServer"]

log = logging.getLogger(__name__)
FRAME = struct.Struct("!I")
PIPE_BYTES = 1 << 20  # the feed's pipe buffer, where the system allows it
F_SETPIPE_SZ = 1031  # Linux


class FrontServer(Server):
    """``/v1/...`` from `store`; anything else forwarded to the Unix socket `upstream`."""

    def __init__(self, listener: socket.socket, store: Store, upstream: str, timeout_s: float = 10.0) -> None:
        self.store, self.upstream, self.timeout_s = store, upstream, timeout_s
        self._pool = ThreadPoolExecutor(2, "forward")
        super().__init__(listener)

    def route(self, path: str) -> Reply:
        if path.startswith("/v1/"):
            status, document = self.store.answer(path)
            return response(status, _json(document), JSON)
        return self._pool.submit(self._forward, path)

    def accepts_post(self, path: str) -> bool:
        return path.startswith("/v1/streams/") and path.split("?", 1)[0].endswith("/feedback")

    def route_post(self, path: str, body: bytes) -> Reply:
        """A mark on an anomaly (``POST /v1/streams/{key}/feedback``), forwarded as it is to the
        consumer's process, which sends it to the feedback topic (`consumer.feedback_http`)."""
        return self._pool.submit(self._forward, path, body)

    def _forward(self, path: str, body: bytes | None = None) -> bytes:
        if body is None:
            request = f"GET {path} HTTP/1.1\r\nHost: consumer\r\n\r\n".encode("iso-8859-1")
        else:
            head = f"POST {path} HTTP/1.1\r\nHost: consumer\r\nContent-Length: {len(body)}\r\n\r\n"
            request = head.encode("iso-8859-1") + body
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout_s)
                sock.connect(self.upstream)
                sock.sendall(request)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
        except OSError as exc:
            return response(*text(503, f"the consumer's processing process does not answer: {exc}"))
        return reply or response(*text(502, "the consumer's processing process sent nothing"))

    def close(self) -> None:
        super().close()
        self._pool.shutdown(wait=False, cancel_futures=True)


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode()


# -- the consumer's side ---------------------------------------------------------------------------
class Feed:
    """The loop's side of `consumer.query.Store` (`assigned`, `owned`, `dropped`, `publish`),
    sent to the front through a pipe. Frames: 4-byte length, then a pickled tuple."""

    def __init__(self, pipe: IO[bytes]) -> None:
        self._pipe = pipe
        self._owned: set[int] = set()
        self._lock = threading.Lock()

    def assigned(self, owned: set[int], partitions: int) -> None:
        self._owned |= owned
        self._send(("assigned", set(owned), partitions))

    def owned(self) -> list[int]:
        return sorted(self._owned)

    def dropped(self, partitions: set[int]) -> None:
        self._owned -= partitions
        self._send(("dropped", set(partitions)))

    def publish(self, partition: int, latest: dict[str | None, Staged]) -> None:
        if partition in self._owned and latest:
            self._send(("publish", partition, latest))

    def _send(self, message: tuple[Any, ...]) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        with self._lock, contextlib.suppress(BrokenPipeError, ValueError):  # the front is gone: Front says so
            self._pipe.write(FRAME.pack(len(body)) + body)
            self._pipe.flush()

    def close(self) -> None:
        with self._lock, contextlib.suppress(OSError):
            self._pipe.close()


def apply(store: Store, message: tuple[Any, ...]) -> None:
    """One `Feed` message, applied to the front's store."""
    kind = message[0]
    if kind == "assigned":
        store.assigned(message[1], message[2])
    elif kind == "dropped":
        store.dropped(message[1])
    elif kind == "publish":
        store.publish(message[1], message[2])
    else:
        raise ValueError(f"unknown feed message {kind!r}")


class Front:
    """Starts the front on ``host:port`` (OSError if it cannot be bound), answers what it forwards
    with `probe` and `metrics`, and feeds it: `feed` is the store the loop publishes into.
    `on_exit` is called (on a thread) if the front exits before `close`."""

    def __init__(
        self,
        host: str,
        port: int,
        upstream: Callable[[socket.socket], Server],
        instance: str,
        max_key_bytes: int,
        log_format: str,
        log_level: str,
        on_exit: Callable[[int], None],
        abstract_socket: bool = sys.platform.startswith("linux"),
        keys_from_values: bool = False,
    ) -> None:
        self._listener = socket.create_server((host, port), backlog=128)
        self.port: int = self._listener.getsockname()[1]
        # On Linux an abstract Unix socket: nothing on disk, reachable from this network
        # namespace only, like a loopback port, but not one more port. Elsewhere (macOS) a
        # socket file in a directory only this user may enter.
        name = f"lstm-consumer-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        self._socket_dir = None if abstract_socket else tempfile.mkdtemp(prefix="lstm-consumer-")
        self._address = f"\0{name}" if self._socket_dir is None else f"{self._socket_dir}/upstream.sock"
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(self._address)
        unix.listen(16)
        self._upstream = upstream(unix)
        read_end, write_end = os.pipe()
        with contextlib.suppress(OSError):
            fcntl.fcntl(write_end, F_SETPIPE_SZ, PIPE_BYTES)
        command = [
            *(sys.executable, "-m", "consumer.front"),
            *("--listen-fd", str(self._listener.fileno()), "--feed-fd", str(read_end)),
            *("--upstream", _argument(self._address), "--instance", instance),
            *("--max-key-bytes", str(max_key_bytes), "--log-format", log_format, "--log-level", log_level),
            *(["--keys-from-values"] if keys_from_values else []),
        ]
        self._closing = False
        self.process = subprocess.Popen(
            command, pass_fds=(self._listener.fileno(), read_end), stdin=subprocess.DEVNULL
        )
        os.close(read_end)
        self.feed = Feed(os.fdopen(write_end, "wb"))
        self._on_exit = on_exit
        self._watcher = threading.Thread(target=self._watch, name="front-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        code = self.process.wait()
        if not self._closing:
            self._on_exit(code)

    def close(self, timeout_s: float = 5.0) -> None:
        """Close the feed (the front exits) and wait for it; then stop serving what it forwarded."""
        self._closing = True
        self.feed.close()
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._upstream.close()
        self._listener.close()
        if self._socket_dir is not None:
            shutil.rmtree(self._socket_dir, ignore_errors=True)


def _argument(address: str) -> str:
    """A Unix socket address as a command-line argument: `@name` for an abstract one."""
    return "@" + address[1:] if address.startswith("\0") else address


def _address(argument: str) -> str:
    return "\0" + argument[1:] if argument.startswith("@") else argument


# -- the front process ------------------------------------------------------------------------------
def _read_feed(pipe: IO[bytes], store: Store) -> None:
    """Apply the consumer's messages until the pipe closes."""
    while len(header := pipe.read(FRAME.size)) == FRAME.size:
        (size,) = FRAME.unpack(header)
        body = pipe.read(size)
        if len(body) < size:
            return
        apply(store, pickle.loads(body))  # trusted: the parent process, by a pipe


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m consumer.front", description=__doc__)
    parser.add_argument("--listen-fd", type=int, required=True)
    parser.add_argument("--feed-fd", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="Unix socket: a path, or @name (abstract)")
    parser.add_argument("--instance", required=True)
    parser.add_argument("--max-key-bytes", type=int, required=True)
    parser.add_argument("--log-format", default="text")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--keys-from-values", action="store_true", help="the consumer runs with --key-field")
    args = parser.parse_args(argv)
    logs.setup(args.log_format, args.log_level)
    # Signals are for the consumer, which stops in order and then closes the feed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    store = Store(args.instance, args.max_key_bytes, args.keys_from_values)
    listener = socket.socket(fileno=args.listen_fd)
    server = FrontServer(listener, store, _address(args.upstream))
    try:
        with os.fdopen(args.feed_fd, "rb") as pipe:
            _read_feed(pipe, store)
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
