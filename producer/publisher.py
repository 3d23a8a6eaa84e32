"""Publishing records to Kafka: pacing, backpressure, delivery counting, graceful stop.

The producer is idempotent with ``acks=all``, so a retried batch is never duplicated and the
records of one key keep their order. A run ends when its source does, after ``--count``
messages, or on SIGTERM/SIGINT; then it flushes, and its `Stats` say whether every message was
acknowledged. A second signal stops at once without flushing.

>>> encode_value("4", "text"), encode_value("dé", "json"), encode_value("click", "json", "event.type")
(b'4', b'{"token": "d\\xc3\\xa9"}', b'{"event": {"type": "click"}}')
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any, TextIO

from kafka import KafkaAdminClient, KafkaProducer
from kafka.errors import KafkaError, TopicAlreadyExistsError, for_code

from lstm_stream.diagnose import Diagnosis, diagnose, unless_misconfigured
from lstm_stream.json_fields import nest, parse_path
from producer.progress import Pacer, Progress, Stats, Tally
from producer.settings import ProducerSettings
from producer.sources import ENCODING_ERRORS, InputError, PartitionedSource, Record, Source

__all__ = ["STOP_SIGNALS", "PublishError", "Publisher", "create_topic", "encode_value"]

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
# What can go wrong while connecting: Kafka's own errors, sockets and files (SSL), bad values.
_CONNECT_ERRORS = (KafkaError, OSError, ValueError)


class PublishError(RuntimeError):
    """Kafka cannot be used for this run (unreachable broker, missing topic). Exit code 1."""


class _StopSignalError(Exception):
    """Raised by the signal handler to cut short a wait for input or for the pace."""


def encode_value(token: str, value_format: str, value_field: str = "token") -> bytes:
    """A message value: the token itself, or a JSON object holding it at the path `value_field`
    (``{"token": token}`` by default: what the consumer reads with its defaults)."""
    if value_format == "text":
        return token.encode("utf-8", ENCODING_ERRORS)
    text = json.dumps(nest(parse_path(value_field), token), ensure_ascii=False)
    return text.encode("utf-8", ENCODING_ERRORS)


def _encode_key(key: str | None) -> bytes | None:
    return None if key is None else key.encode("utf-8", ENCODING_ERRORS)


def create_topic(
    settings: ProducerSettings,
    admin_factory: Callable[..., Any] = KafkaAdminClient,
    diagnose: Callable[[ProducerSettings], Diagnosis | None] = diagnose,
) -> None:
    """Create the topic with `settings.partitions` partitions and --replication-factor replicas
    (unset: the broker's default); one that exists already is fine."""
    try:
        admin = admin_factory(**settings.admin_kwargs())
    except _CONNECT_ERRORS as exc:
        raise _unreachable(settings, exc, diagnose) from None
    try:
        replicas = settings.replication_factor or -1  # -1: the broker's default.replication.factor
        spec = {settings.topic: {"num_partitions": settings.partitions, "replication_factor": replicas}}
        result = admin.create_topics(spec, raise_errors=False)
        code = result["topics"][0]["error_code"]
        if code and for_code(code) is not TopicAlreadyExistsError:
            raise PublishError(f"cannot create topic {settings.topic!r}: {for_code(code).__name__}")
    except KafkaError as exc:
        raise PublishError(f"cannot create topic {settings.topic!r}: {exc}") from None
    finally:
        admin.close()


def _unreachable(
    settings: ProducerSettings, exc: BaseException, diagnose: Callable[[ProducerSettings], Diagnosis | None]
) -> Exception:
    """The error to raise when the clients could not connect: a `PublishError` (exit 1), unless a
    connection of our own names a certificate problem: then a `ConfigError` (exit 2) is raised."""
    found = unless_misconfigured(settings, diagnose)
    cause = f" ({found.message})" if found is not None else ""
    return PublishError(
        f"cannot reach Kafka at {settings.bootstrap_servers} within {settings.connect_timeout_s:g} s "
        f"(--connect-timeout-s): {exc}{cause}; check --bootstrap-servers, --security-protocol "
        f"({settings.security_protocol}) and, with SASL, the mechanism and credentials"
    )


class Publisher:
    """Sends a source's records to `settings.topic` and reports on stderr (`out`)."""

    def __init__(
        self,
        settings: ProducerSettings,
        *,
        producer_factory: Callable[..., Any] = KafkaProducer,
        admin_factory: Callable[..., Any] = KafkaAdminClient,
        diagnose: Callable[[ProducerSettings], Diagnosis | None] = diagnose,
        out: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.producer_factory, self.admin_factory = producer_factory, admin_factory
        self.diagnose = diagnose
        self.out = sys.stderr if out is None else out
        self.clock, self.sleep = clock, sleep
        self.stopped_by = ""
        self._interruptible = False
        self._previous_handlers: dict[int, Any] = {}

    def connect(self) -> Any:
        """A producer whose topic exists (created first with --create-topic), or a `PublishError`."""
        s = self.settings
        unless_misconfigured(s, self.diagnose)  # a certificate problem: exit 2 now, not after a timeout
        if s.create_topic:
            create_topic(s, self.admin_factory, self.diagnose)
        try:
            producer = self.producer_factory(**s.producer_kwargs())
        except _CONNECT_ERRORS as exc:
            raise _unreachable(s, exc, self.diagnose) from None
        try:
            producer.partitions_for(s.topic)
        except KafkaError as exc:
            producer.close(timeout=1)
            hint = "" if s.create_topic else "; --create-topic creates it"
            raise PublishError(
                f"topic {s.topic!r} not available within {s.connect_timeout_s:g} s{hint}: {exc}"
            ) from None
        return producer

    def run(self, source: Source | PartitionedSource) -> Stats:
        """Connect, publish every record, flush; a `PublishError` when Kafka cannot be used."""
        producer = self.connect()
        tally = Tally()
        s = self.settings
        progress = Progress(
            self._total(source), quiet=s.quiet, interval_s=s.report_interval_s, out=self.out, clock=self.clock
        )
        started = self.clock()
        with self._stop_on_signals():
            records = source.open(len(producer.partitions_for(s.topic)))
            error = self._produce(producer, records, tally, progress)
            error = self._flush(producer) or error
        progress.close()
        return Stats(
            sent=tally.sent,
            delivered=tally.ok,
            failed=tally.bad,
            seconds=self.clock() - started,
            error=error,
            first_failure=tally.first_error,
            stopped_by=self.stopped_by,
        )

    def _total(self, source: Source | PartitionedSource) -> int | None:
        count = self.settings.count
        if count is None or source.total is None:
            return source.total if count is None else count
        return min(count, source.total)

    def _produce(self, producer: Any, records: Iterator[Record], tally: Tally, progress: Progress) -> str:
        """Send until the source ends, the count is reached or a signal came; the error, if any."""
        s = self.settings
        pacer = Pacer(s.rate, self.clock, self.sleep)
        while s.count is None or tally.sent < s.count:
            try:
                record = self._next(records, pacer)
            except InputError as exc:
                return str(exc)
            if record is None:
                return ""
            self._wait_for_room(tally)
            key, token = record
            try:
                future = producer.send(
                    s.topic, value=encode_value(token, s.value_format, s.value_field), key=_encode_key(key)
                )
            except KafkaError as exc:
                return f"cannot send to {s.topic!r}: {exc}"
            future.add_callback(tally.delivered)
            future.add_errback(tally.failed)
            tally.sent += 1
            progress.update(tally)
        return ""

    def _next(self, records: Iterator[Record], pacer: Pacer) -> Record | None:
        """The next record at its time, or None at the end or on a stop signal."""
        try:
            return self._next_interruptibly(records, pacer)
        except _StopSignalError:
            return None

    def _next_interruptibly(self, records: Iterator[Record], pacer: Pacer) -> Record | None:
        # Waiting for a line of stdin or for the pace may take forever: a signal raises _StopSignalError
        # here (and only here: elsewhere it just sets stopped_by, checked before each record).
        self._interruptible = True
        try:
            if self.stopped_by:
                return None
            record = next(records, None)
            if record is not None:
                pacer.wait()
            return record
        finally:
            self._interruptible = False

    def _wait_for_room(self, tally: Tally) -> None:
        """Backpressure: with too many messages unacknowledged, wait until half are."""
        limit = self.settings.max_pending
        if tally.pending < limit:
            return
        while tally.pending > limit // 2 and not self.stopped_by:
            self.sleep(0.001)

    def _flush(self, producer: Any) -> str:
        # Batches expire after delivery_timeout_ms, so a flush a little longer always completes.
        timeout_s = self.settings.delivery_timeout_ms / 1000 + 5
        error = ""
        try:
            producer.flush(timeout=timeout_s)
        except KafkaError as exc:
            error = f"flush: {exc}"
        producer.close(timeout=5)
        return error

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield  # signal handlers can only be set from the main thread
            return
        self._previous_handlers = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            self._restore_handlers()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        self.stopped_by = signal.Signals(signum).name
        self._restore_handlers()  # so a second signal stops at once, without the flush
        if self._interruptible:
            raise _StopSignalError

    def _restore_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers = {}
