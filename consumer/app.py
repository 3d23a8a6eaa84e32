"""`lstm-consumer run` wired together: logs, HTTP endpoints, signals, the service.

SIGTERM or SIGINT: the in-flight batch finishes, the last transaction commits and the clients
close, each step bounded by `--transaction-timeout-s`; a second Ctrl-C stops at once.
Exit codes: 0 stopped; 1 a fatal failure (a refused snapshot, a fenced instance); 2 bad
configuration (including an HTTP address that cannot be bound).
"""

from __future__ import annotations

import logging
import signal
from types import FrameType

from consumer import logs
from consumer.core.config import LearnerConfig
from consumer.feedback_http import FeedbackSender
from consumer.front import Front
from consumer.health import HealthServer, Probe
from consumer.metrics import Metrics
from consumer.service import FatalError, Service
from consumer.settings import RunSettings
from consumer.stats import Stats
from lstm_stream import __version__
from lstm_stream.settings import ConfigError, describe

__all__ = ["run"]

log = logging.getLogger("consumer")


def run(settings: RunSettings, config: LearnerConfig) -> int:
    logs.setup(settings.log_format, settings.log_level)
    log.info(
        "lstm-consumer %s starting", __version__, extra=logs.fields(**describe(settings), **describe(config))
    )
    probe = Probe(stall_limit_s=max(60.0, settings.max_poll_interval_ms / 1000))
    service: Service | None = None
    metrics = Metrics(
        config.model_fields() | {"mode": config.mode},
        __version__,
        partitions=lambda: service.partitions() if service is not None else {},
        deployment={
            "group": settings.group_id,
            "input_topic": settings.input_topic,
            "output_topic": settings.output_topic,
        },
    )
    stats = Stats(settings.status_interval_s, metrics)
    failed: list[str] = []

    def front_exited(code: int) -> None:
        failed.append(f"the HTTP front process exited on its own (code {code}): stopping")
        log.error("%s", failed[-1])
        if service is not None:
            service.stop.set()

    feedback = FeedbackSender(settings)
    try:
        front = Front(
            settings.http_host,
            settings.http_port,
            lambda unix: HealthServer("", 0, probe, metrics.render, listener=unix, post=feedback),
            settings.instance_name,
            settings.max_key_bytes,
            settings.log_format,
            settings.log_level,
            front_exited,
            keys_from_values=bool(settings.key_field),
        )
    except OSError as exc:
        raise ConfigError(
            f"--http-host/--http-port: cannot listen on {settings.http_host}:{settings.http_port}: {exc}"
        ) from None
    service = Service(settings, config, probe, stats, front.feed)
    log.info("serving /healthz, /readyz and /metrics on http://%s:%d", settings.http_host, front.port)
    log.info("serving /v1/streams/{key}/next on http://%s:%d", settings.http_host, front.port)
    if settings.anomaly_top_g:
        log.info("taking POST /v1/streams/{key}/feedback on http://%s:%d", settings.http_host, front.port)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if service.stop.is_set():
            if signum == signal.SIGINT:  # a second Ctrl-C: stop now
                raise KeyboardInterrupt
            return  # repeated SIGTERMs (`timeout` signals the child and its group) change nothing
        log.info("%s: finishing the batch in flight, committing, stopping", signal.Signals(signum).name)
        service.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        service.run()
    except FatalError as exc:
        log.error("%s", exc)
        return 1
    finally:
        front.close()
        feedback.close()
    return 1 if failed else 0
