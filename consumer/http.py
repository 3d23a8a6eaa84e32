"""The consumer's HTTP endpoints, on daemon threads.

- ``/healthz``: 200 while the processing loop is alive (it went round within the stall limit), 503 if not;
- ``/readyz``: 200 once every assigned partition's learner is restored, 503 before and during rebalances;
- ``/metrics``: whatever the `metrics` callable renders (Prometheus text format);
- ``/v1/...``: JSON answers of the `answer` callable (`consumer.query`: what comes next for a stream).

Only GET is served: any other method gets 405, an unknown path 404.

>>> probe = Probe(stall_limit_s=60)
>>> probe.health()[0], probe.readiness()[0]
(200, 503)
>>> probe.set_ready(True)
>>> probe.readiness()
(200, 'ready')
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["HealthServer", "Probe"]

log = logging.getLogger(__name__)
Metrics = Callable[[], tuple[bytes, str]]
Answer = Callable[[str], tuple[int, dict[str, Any]]]
JSON = "application/json"


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


class HealthServer:
    """Serves a `Probe` (and metrics) until `close`."""

    def __init__(
        self, host: str, port: int, probe: Probe, metrics: Metrics | None = None, answer: Answer | None = None
    ) -> None:
        routes: dict[str, Callable[[], tuple[int, bytes, str]]] = {
            "/healthz": lambda: _text(*probe.health()),
            "/readyz": lambda: _text(*probe.readiness()),
        }
        if metrics is not None:
            render = metrics
            routes["/metrics"] = lambda: (200, *render())

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if answer is not None and self.path.startswith("/v1/"):
                    status, document = answer(self.path)
                    self._reply(status, json.dumps(document, ensure_ascii=False).encode(), JSON)
                    return
                route = routes.get(self.path.split("?", 1)[0])
                self._reply(*(route() if route else _text(404, "not found")))

            def _reply(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if status == 405:
                    self.send_header("Allow", "GET")
                self.end_headers()
                if not head:
                    self.wfile.write(body)

            def __getattr__(self, name: str) -> Callable[[], None]:
                # Every other method (do_POST, do_HEAD, do_FOO ...): 405, never the 501 of http.server.
                if name.startswith("do_"):
                    return lambda: self._reply(*_text(405, "only GET"), head=name == "do_HEAD")
                raise AttributeError(name)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("http: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _text(status: int, text: str) -> tuple[int, bytes, str]:
    return status, (text + "\n").encode(), "text/plain; charset=utf-8"
