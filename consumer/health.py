"""The processing process's own endpoints: `HealthServer` serves what a `Probe` (updated by the
processing loop) reports, the metrics, and the POST routes it is given, on the `consumer.http`
server; the front forwards them here.

- ``/healthz``: 200 while the processing loop is alive (it went round within the stall limit), 503 if not;
- ``/readyz``: 200 once every assigned partition's learner is restored, 503 before and during rebalances;
- ``/metrics``: whatever the `metrics` callable renders (Prometheus text format).

>>> probe = Probe(stall_limit_s=60)
>>> probe.health()[0], probe.readiness()[0]
(200, 503)
>>> probe.set_ready(True)
>>> probe.readiness()
(200, 'ready')
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

from consumer.http import Reply, Server
from consumer.http_response import response, text

__all__ = ["HealthServer", "Probe"]

Metrics = Callable[[], tuple[bytes, str]]


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


class HealthServer(Server):
    """Serves a `Probe` and metrics until `close`, on ``host:port`` or on `listener`."""

    def __init__(
        self,
        host: str,
        port: int,
        probe: Probe,
        metrics: Metrics | None = None,
        listener: socket.socket | None = None,
        post: Callable[[str, bytes], Reply] | None = None,
    ) -> None:
        self._post = post  # POST routes (`consumer.feedback_http`), if any
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

    def accepts_post(self, path: str) -> bool:
        return self._post is not None

    def route_post(self, path: str, body: bytes) -> Reply:
        assert self._post is not None
        return self._post(path, body)
