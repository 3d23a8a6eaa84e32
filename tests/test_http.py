"""The consumer's HTTP servers on their own: real sockets on 127.0.0.1, clients that misbehave,
and the front process (`consumer.front`) started, fed, killed and closed for real."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from consumer.front import Front, FrontServer
from consumer.health import HealthServer, Probe
from consumer.http import Server
from consumer.http_response import response, text
from consumer.query import Staged, Store


class _Metrics:
    def __init__(self) -> None:
        self.fail = False
        self.delay_s = 0.0

    def __call__(self) -> tuple[bytes, str]:
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("a bug in a route")
        return b"metric 1\n", "text/plain"


@pytest.fixture
def metrics() -> _Metrics:
    return _Metrics()


@pytest.fixture
def server(metrics: _Metrics) -> Iterator[HealthServer]:
    served = HealthServer("127.0.0.1", 0, Probe(stall_limit_s=60), metrics)
    yield served
    served.close()


def _get(port: int, path: str) -> tuple[int, bytes, dict[str, str]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def _raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_routes_answer_and_close_the_connection(server: HealthServer) -> None:
    status, body, headers = _get(server.port, "/healthz")
    assert (status, body, headers["Connection"]) == (200, b"ok\n", "close")
    assert _get(server.port, "/readyz")[0] == 503  # the probe is not ready yet
    assert _get(server.port, "/metrics?x=1")[:2] == (200, b"metric 1\n")
    assert _get(server.port, "/nothing")[0] == 404


def test_other_methods_get_405_and_a_body_sent_along_does_not_reset_the_reply(server: HealthServer) -> None:
    body = b"x" * 200_000  # more than the socket buffers take: the server must drain it
    reply = _raw(server.port, b"POST /healthz HTTP/1.1\r\nContent-Length: 200000\r\n\r\n" + body)
    assert reply.startswith(b"HTTP/1.1 405 ")
    assert b"\r\nAllow: GET\r\n" in reply
    head = _raw(server.port, b"HEAD /healthz HTTP/1.1\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ")
    assert head.endswith(b"\r\n\r\n")


def test_malformed_heads_get_400_or_431(server: HealthServer) -> None:
    assert _raw(server.port, b"GARBAGE\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    assert _raw(server.port, b"GET /healthz SPDY/3\r\n\r\n").startswith(b"HTTP/1.1 400 ")
    huge = b"GET /healthz HTTP/1.1\r\n" + b"X-Pad: " + b"p" * 20_000 + b"\r\n\r\n"
    assert _raw(server.port, huge).startswith(b"HTTP/1.1 431 ")


def test_a_failing_route_is_a_500_and_the_server_goes_on(server: HealthServer, metrics: _Metrics) -> None:
    metrics.fail = True
    assert _get(server.port, "/metrics")[0] == 500
    assert _get(server.port, "/healthz")[0] == 200


def test_idle_and_slow_clients_do_not_hold_up_others(server: HealthServer) -> None:
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(20)]
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        slow.sendall(b"GET /healthz HT")  # half a request line, then nothing
        began = time.monotonic()
        assert _get(server.port, "/healthz")[0] == 200
        assert time.monotonic() - began < 2
        slow.sendall(b"TP/1.1\r\n\r\n")  # the rest arrives: answered
        assert slow.recv(4096).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in [*idle, slow]:
            sock.close()


class _Small(HealthServer):
    TIMEOUT_S = 0.5
    MAX_CONNECTIONS = 4


def test_connections_beyond_the_limit_wait_and_idle_ones_are_dropped() -> None:
    server = _Small("127.0.0.1", 0, Probe(stall_limit_s=60))
    idle = [socket.create_connection(("127.0.0.1", server.port), timeout=5) for _ in range(4)]
    try:
        began = time.monotonic()
        assert _get(server.port, "/healthz")[0] == 200  # queued until the idle ones time out
        assert 0.3 < time.monotonic() - began < 4
        assert idle[0].recv(4096) == b""  # dropped: closed without a reply
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_close_stops_listening() -> None:
    server = HealthServer("127.0.0.1", 0, Probe(stall_limit_s=60))
    port = server.port
    server.close()
    server.close()  # twice is harmless
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# -- the front ----------------------------------------------------------------------------------
def _unix(name: str) -> tuple[str, socket.socket]:
    address = f"\0lstm-stream-test-{name}-{os.getpid()}-{time.monotonic_ns()}"
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(address)
    unix.listen(16)
    return address, unix


def _store() -> Store:
    store = Store(instance="t", max_key_bytes=64)
    store.assigned({0, 1}, partitions=2)
    store.publish(0, {"k": Staged(5, 6, (("a", 0.75),))})
    store.publish(1, {"k": Staged(5, 6, (("a", 0.75),))})
    return store


def test_the_front_answers_queries_and_forwards_the_rest(metrics: _Metrics) -> None:
    address, unix = _unix("forward")
    upstream = HealthServer("", 0, Probe(stall_limit_s=60), metrics, listener=unix)
    front = FrontServer(socket.create_server(("127.0.0.1", 0)), _store(), address)
    try:
        status, body, headers = _get(front.port, "/v1/streams/k/next")
        assert status == 200
        assert json.loads(body)["top"] == [{"token": "a", "probability": 0.75}]
        assert headers["Content-Type"] == "application/json"
        assert _get(front.port, "/healthz")[:2] == (200, b"ok\n")
        assert _get(front.port, "/metrics")[:2] == (200, b"metric 1\n")
        assert _get(front.port, "/nothing")[0] == 404  # the upstream's answer
        metrics.delay_s = 2.0  # a slow scrape holds up no query
        scrape = threading.Thread(target=_get, args=(front.port, "/metrics"))
        scrape.start()
        time.sleep(0.2)
        began = time.monotonic()
        assert _get(front.port, "/v1/streams/k/next")[0] == 200
        assert time.monotonic() - began < 1
        scrape.join()
    finally:
        front.close()
        upstream.close()
    front = FrontServer(socket.create_server(("127.0.0.1", 0)), _store(), address)
    try:  # nobody upstream any more
        assert _get(front.port, "/healthz")[0] == 503
        assert _get(front.port, "/v1/streams/k/next")[0] == 200
    finally:
        front.close()


def _front(on_exit: list[int], abstract_socket: bool = True) -> Front:
    probe = Probe(stall_limit_s=60)
    probe.set_ready(True)
    return Front(
        "127.0.0.1",
        0,
        lambda unix: HealthServer("", 0, probe, lambda: (b"metric 2\n", "text/plain"), listener=unix),
        "inst",
        64,
        "text",
        "INFO",
        on_exit.append,
        abstract_socket=abstract_socket,
    )


def _eventually(check: object, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not callable(check) or not check():
        assert time.monotonic() < deadline, "not within the time limit"
        time.sleep(0.05)


@pytest.mark.parametrize("abstract_socket", [True, False], ids=["linux-abstract-socket", "socket-file"])
def test_the_front_process_is_fed_answers_and_exits_with_its_feed(abstract_socket: bool) -> None:
    """On Linux the front reaches the consumer by an abstract Unix socket; elsewhere (macOS) by
    a socket file in a directory of its own, removed at close: both ways, here."""
    exits: list[int] = []
    front = _front(exits, abstract_socket)
    socket_dir = front._socket_dir
    assert (socket_dir is None) == abstract_socket
    try:
        assert _get(front.port, "/readyz")[:2] == (200, b"ready\n")  # the backlog holds it until up
        assert _get(front.port, "/metrics")[1] == b"metric 2\n"
        assert _get(front.port, "/v1/streams/k/next")[0] == 404  # nothing owned yet
        front.feed.assigned({0, 1}, 2)
        front.feed.publish(0, {"k": Staged(9, 3, (("x", 0.5), (None, 0.25)))})
        front.feed.publish(1, {"k": Staged(9, 3, (("x", 0.5), (None, 0.25)))})

        def answered() -> bool:
            return _get(front.port, "/v1/streams/k/next")[0] == 200

        _eventually(answered)
        document = json.loads(_get(front.port, "/v1/streams/k/next")[1])
        assert (document["offset"], document["model_step"], document["instance"]) == (9, 3, "inst")
        front.feed.dropped({0, 1})
        _eventually(lambda: _get(front.port, "/v1/streams/k/next")[0] == 404)
        assert front.feed.owned() == []
    finally:
        front.close()
    assert front.process.returncode == 0
    assert exits == []
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", front.port), timeout=2).close()
    assert socket_dir is None or not os.path.exists(socket_dir)


def test_a_front_that_dies_is_reported() -> None:
    exits: list[int] = []
    front = _front(exits)
    try:
        assert _get(front.port, "/healthz")[0] == 200
        os.kill(front.process.pid, signal.SIGKILL)
        _eventually(lambda: exits == [-signal.SIGKILL])
        front.feed.publish(0, {"k": Staged(1, 1, ())})  # a broken pipe does not reach the loop
    finally:
        front.close()


def test_a_server_without_a_route_is_a_500() -> None:
    server = Server(socket.create_server(("127.0.0.1", 0)))
    try:
        assert _get(server.port, "/")[0] == 500
    finally:
        server.close()


class _Echo(Server):
    """POSTs answered with their path and body."""

    def route(self, path: str) -> bytes:
        return response(*text(200, path))

    def accepts_post(self, path: str) -> bool:
        return path.startswith("/v1/")

    def route_post(self, path: str, body: bytes) -> bytes:
        return response(202, path.encode() + b" " + body, "text/plain")


def test_a_post_is_answered_once_its_whole_body_has_arrived() -> None:
    echo = _Echo(socket.create_server(("127.0.0.1", 0)))
    try:
        with socket.create_connection(("127.0.0.1", echo.port), timeout=5) as sock:
            sock.sendall(b"POST /v1/x HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello")
            time.sleep(0.2)  # the body's rest comes later: no reply yet
            sock.sendall(b" world")
            reply = b""
            while chunk := sock.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 202 ")
        assert reply.endswith(b"/v1/x hello world")
        assert _raw(echo.port, b"POST /v1/x HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 411 ")
        assert _raw(echo.port, b"POST /other HTTP/1.1\r\n\r\n").startswith(b"HTTP/1.1 405 ")
        big = b"POST /v1/x HTTP/1.1\r\nContent-Length: 200000\r\n\r\n" + b"x" * 200_000
        assert _raw(echo.port, big).startswith(b"HTTP/1.1 413 ")  # past MAX_BODY, and no reset
        assert _raw(echo.port, b"POST /v1/x HTTP/1.1\r\nContent-Length: x\r\n\r\n").startswith(
            b"HTTP/1.1 411 "
        )
    finally:
        echo.close()
