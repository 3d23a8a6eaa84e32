"""The publisher against a fake KafkaProducer: counting, pacing, backpressure, errors, signals."""

from __future__ import annotations

import io
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError

from producer.progress import Progress, Tally
from producer.publisher import Publisher, PublishError, create_topic
from producer.settings import ProducerSettings
from producer.sources import Record, Source

SETTINGS = ProducerSettings(topic="t", quiet=True)


class FakeFuture:
    def __init__(self) -> None:
        self.callbacks: list[Callable[[Any], None]] = []
        self.errbacks: list[Callable[[BaseException], None]] = []

    def add_callback(self, f: Callable[[Any], None]) -> FakeFuture:
        self.callbacks.append(f)
        return self

    def add_errback(self, f: Callable[[BaseException], None]) -> FakeFuture:
        self.errbacks.append(f)
        return self

    def resolve(self, error: BaseException | None) -> None:
        if error is None:
            for callback in self.callbacks:
                callback(None)
        else:
            for errback in self.errbacks:
                errback(error)


class FakeProducer:
    """Acknowledges on flush (or on `settle`), failing the values listed in `fail`."""

    def __init__(
        self, fail: frozenset[bytes] = frozenset(), send_error: int | None = None, **config: Any
    ) -> None:
        self.config = config
        self.fail = fail
        self.send_error = send_error
        self.sent: list[tuple[str, bytes | None, bytes]] = []
        self.waiting: list[tuple[FakeFuture, bytes]] = []
        self.max_waiting = 0
        self.closed = False

    def partitions_for(self, topic: str) -> set[int]:
        return {0}

    def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
        if self.send_error is not None and len(self.sent) == self.send_error:
            raise KafkaTimeoutError("Failed to update metadata after 15.0 secs.")
        self.sent.append((topic, key, value))
        future = FakeFuture()
        self.waiting.append((future, value))
        self.max_waiting = max(self.max_waiting, len(self.waiting))
        return future

    def settle(self) -> None:
        for future, value in self.waiting:
            future.resolve(NotLeaderForPartitionError("no") if value in self.fail else None)
        self.waiting = []

    def flush(self, timeout: float | None = None) -> None:
        self.settle()

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def publish(
    records: list[Record] | Iterator[Record], settings: ProducerSettings = SETTINGS, **fake: Any
) -> tuple[Any, FakeProducer]:
    producers: list[FakeProducer] = []

    def factory(**config: Any) -> FakeProducer:
        producers.append(FakeProducer(**fake, **config))
        return producers[0]

    stats = Publisher(settings, producer_factory=factory, out=io.StringIO()).run(Source(iter(records)))
    return stats, producers[0]


def test_every_record_is_sent_keyed_and_counted() -> None:
    stats, producer = publish([(None, "4"), ("k", "8"), ("k", "dé")])
    assert producer.sent == [("t", None, b"4"), ("t", b"k", b"8"), ("t", b"k", "dé".encode())]
    assert (stats.sent, stats.delivered, stats.failed, stats.ok) == (3, 3, 0, True)
    assert producer.closed
    assert producer.config["enable_idempotence"] is True
    assert producer.config["acks"] == "all"


def test_json_values() -> None:
    _, producer = publish([(None, "a")], replace(SETTINGS, value_format="json"))
    assert producer.sent[0][2] == b'{"token": "a"}'
    nested = replace(SETTINGS, value_format="json", value_field=r"event.the\.type")
    _, producer = publish([(None, "a")], nested)
    assert producer.sent[0][2] == b'{"event": {"the.type": "a"}}'


def test_count_stops_early() -> None:
    stats, producer = publish([(None, str(i)) for i in range(10)], replace(SETTINGS, count=4))
    assert stats.sent == 4
    assert [v for _, _, v in producer.sent] == [b"0", b"1", b"2", b"3"]


def test_delivery_failures_are_counted_and_fail_the_run() -> None:
    stats, _ = publish([(None, "a"), (None, "b"), (None, "a")], fail=frozenset({b"a"}))
    assert (stats.sent, stats.delivered, stats.failed, stats.ok) == (3, 1, 2, False)
    assert "NotLeaderForPartitionError" in stats.first_failure


def test_a_send_error_stops_the_run_and_flushes_what_was_sent() -> None:
    stats, producer = publish([(None, "a")] * 5, send_error=2)
    assert (stats.sent, stats.delivered, stats.ok) == (2, 2, False)
    assert "cannot send to 't'" in stats.error
    assert "metadata" in stats.error
    assert producer.closed


def test_backpressure_bounds_unacknowledged_messages() -> None:
    producers: list[FakeProducer] = []

    def sleep(_seconds: float) -> None:  # the "sender thread" acknowledges while we wait
        producers[0].settle()

    def factory(**config: Any) -> FakeProducer:
        producers.append(FakeProducer(**config))
        return producers[0]

    settings = replace(SETTINGS, max_pending=10)
    stats = Publisher(settings, producer_factory=factory, sleep=sleep, out=io.StringIO()).run(
        Source(iter([(None, "x")] * 100))
    )
    assert stats.delivered == 100
    assert producers[0].max_waiting <= 10


def test_rate_spaces_messages() -> None:
    now = [100.0]
    sends: list[float] = []

    class Timed(FakeProducer):
        def send(self, topic: str, value: bytes, key: bytes | None = None) -> FakeFuture:
            sends.append(now[0])
            return super().send(topic, value, key)

    def sleep(seconds: float) -> None:
        now[0] += seconds

    records = [(None, str(i)) for i in range(5)]
    settings = replace(SETTINGS, rate=20)
    Publisher(settings, producer_factory=Timed, clock=lambda: now[0], sleep=sleep, out=io.StringIO()).run(
        Source(iter(records))
    )
    assert [round(t - sends[0], 6) for t in sends] == [0.0, 0.05, 0.1, 0.15, 0.2]


def test_unreachable_broker_is_a_publish_error() -> None:
    def factory(**config: Any) -> FakeProducer:
        raise KafkaTimeoutError("Unable to bootstrap from ['127.0.0.1:1']")

    settings = replace(SETTINGS, bootstrap_servers="127.0.0.1:1", connect_timeout_s=2)
    with pytest.raises(PublishError, match=r"cannot reach Kafka at 127.0.0.1:1 within 2 s"):
        Publisher(settings, producer_factory=factory).run(Source(iter([])))


def test_missing_topic_is_a_publish_error() -> None:
    class NoTopic(FakeProducer):
        def partitions_for(self, topic: str) -> set[int]:
            raise KafkaTimeoutError("Failed to update metadata after 2.0 secs.")

    with pytest.raises(PublishError, match="topic 't' not available within 15 s; --create-topic creates it"):
        Publisher(SETTINGS, producer_factory=NoTopic).run(Source(iter([])))


class FakeAdmin:
    def __init__(self, code: int, **config: Any) -> None:
        self.code, self.config, self.closed = code, config, False
        self.requests: list[dict[str, dict[str, int]]] = []

    def create_topics(self, topics: dict[str, dict[str, int]], raise_errors: bool) -> dict[str, Any]:
        self.requests.append(topics)
        return {"topics": [{"name": name, "error_code": self.code} for name in topics]}

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(("code", "ok"), [(0, True), (36, True), (37, False)])
def test_create_topic(code: int, ok: bool) -> None:
    admins: list[FakeAdmin] = []

    def factory(**config: Any) -> FakeAdmin:
        admins.append(FakeAdmin(code, **config))
        return admins[0]

    settings = replace(SETTINGS, partitions=3)
    if ok:
        create_topic(settings, factory)
    else:
        with pytest.raises(PublishError, match="cannot create topic 't': InvalidPartitionsError"):
            create_topic(settings, factory)
    assert admins[0].requests == [{"t": {"num_partitions": 3, "replication_factor": -1}}]
    assert admins[0].closed


def test_sigterm_stops_flushes_and_restores_handlers() -> None:
    before = signal.getsignal(signal.SIGTERM)

    def records() -> Iterator[Record]:
        for i in range(1000):
            if i == 7:
                os.kill(os.getpid(), signal.SIGTERM)
            yield None, str(i)

    stats, producer = publish(records())
    assert stats.stopped_by == "SIGTERM"
    assert stats.sent == len(producer.sent) <= 8
    assert stats.ok
    assert producer.closed
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_signal_interrupts_a_source_waiting_for_input() -> None:
    def records() -> Iterator[Record]:
        yield None, "a"
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(60)  # like a read from a quiet stdin
        yield None, "never"

    started = time.monotonic()
    stats, _ = publish(records())
    assert time.monotonic() - started < 30
    assert (stats.sent, stats.delivered, stats.stopped_by, stats.ok) == (1, 1, "SIGINT", True)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_rate_lines_without_a_terminal() -> None:
    now = [0.0]
    out = io.StringIO()
    progress = Progress(None, quiet=False, interval_s=5.0, out=out, clock=lambda: now[0])
    tally = Tally()
    for _ in range(100):
        now[0] += 0.125  # exact in binary
        tally.sent += 1
        tally.delivered(None)
        progress.update(tally)
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert lines[0] == "lstm-producer: sent 40 (8.0 msgs/s), delivered 40, failed 0"


def test_progress_bar_on_a_terminal_when_the_total_is_known() -> None:
    out = Terminal()
    progress = Progress(3, quiet=False, interval_s=5.0, out=out)
    tally = Tally()
    for _ in range(3):
        tally.sent += 1
        progress.update(tally)
    progress.close()
    assert "3/3" in out.getvalue()


@pytest.mark.parametrize("total", [None, 3])
def test_quiet_progress_says_nothing(total: int | None) -> None:
    out = Terminal()
    progress = Progress(total, quiet=True, interval_s=0.0, out=out)
    tally = Tally()
    tally.sent += 1
    progress.update(tally)
    progress.close()
    assert out.getvalue() == ""
