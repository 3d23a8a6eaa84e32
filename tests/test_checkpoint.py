"""The commit cycle in-process: the order of the Kafka calls each guarantee makes, and what an abort
restores. The clients are `MagicMock(spec_set=...)` of kafka-python's own classes, so a call they
do not have fails; the real-broker tests (test_consumer_service, test_consumer_crash, test_faults)
check the same paths against Kafka."""

from __future__ import annotations

import json
import threading
import time
from typing import Any, cast
from unittest.mock import MagicMock

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from consumer.checkpoint import AtLeastOnceCheckpoint, ExactlyOnceCheckpoint, new_checkpoint
from consumer.clients import Clients
from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner, Prediction
from consumer.health import Probe
from consumer.partition import Partition
from consumer.processing import Processor, Target
from consumer.query import Store
from consumer.restore import Restorer
from consumer.session import Session
from consumer.settings import PREFIX, RunSettings
from consumer.stats import Stats
from lstm_stream.settings import load

SMALL = LearnerConfig(window=8, units=4, embedding_dim=2, capacity=8)


def _settings(*argv: str) -> RunSettings:
    return load(RunSettings, PREFIX, ["--group-id", "g", "--input-topic", "in", *argv], env={})


def _clients() -> tuple[MagicMock, MagicMock, MagicMock]:
    """(parent, producer, consumer): the parent records both clients' calls in one order."""
    parent = MagicMock()
    producer = MagicMock(spec_set=KafkaProducer)
    consumer = MagicMock(spec_set=KafkaConsumer)
    producer.partitions_for.return_value = {0, 1}
    consumer.group_metadata.return_value = "group-metadata"
    parent.attach_mock(producer, "producer")
    parent.attach_mock(consumer, "consumer")
    return parent, producer, consumer


def _calls(parent: MagicMock) -> list[str]:
    return [name for name, _, _ in parent.mock_calls if "(" not in name]  # not calls on what they returned


def _partition(offset: int) -> Partition:
    return Partition(Learner(SMALL), offset)


def test_exactly_once_commits_records_snapshots_offsets_in_one_transaction_in_that_order() -> None:
    parent, producer, consumer = _clients()
    checkpoint = new_checkpoint(producer, consumer, _settings(), Stats(0, None))
    assert isinstance(checkpoint, ExactlyOnceCheckpoint)
    part = _partition(41)
    checkpoint.send("predictions", b"k", b"p1")
    checkpoint.send("sequence-dlq", b"k", b"bad", [("h", b"v")])
    checkpoint.processed(0, part)

    assert checkpoint.commit() is True
    assert _calls(parent) == [
        "producer.begin_transaction",
        "producer.send",
        "producer.send",
        "producer.partitions_for",
        "producer.send",  # the snapshot
        "consumer.group_metadata",
        "producer.send_offsets_to_transaction",
        "producer.commit_transaction",
    ]
    snapshot = producer.send.call_args_list[2]
    assert snapshot.args[0] == "lstm-stream-state"
    assert snapshot.kwargs["key"] == b"g/in/0"
    assert snapshot.kwargs["partition"] == 0
    assert dict(snapshot.kwargs["headers"])  # carries the offset the snapshot continues from
    offsets, metadata = producer.send_offsets_to_transaction.call_args.args
    assert offsets == {TopicPartition("in", 0): OffsetAndMetadata(41, "", -1)}
    assert metadata == "group-metadata"
    assert part.dirty is False
    assert part.snapshot_size > 0
    producer.abort_transaction.assert_not_called()


def test_exactly_once_empty_cycle_makes_no_call() -> None:
    parent, producer, consumer = _clients()
    assert ExactlyOnceCheckpoint(producer, consumer, _settings(), Stats(0, None)).commit() is True
    assert parent.mock_calls == []


@pytest.mark.parametrize("failing", ["send_offsets_to_transaction", "commit_transaction"])
def test_a_failed_transaction_is_aborted_and_nothing_of_it_stays(failing: str) -> None:
    parent, producer, consumer = _clients()
    getattr(producer, failing).side_effect = KafkaTimeoutError("broker gone")
    checkpoint = ExactlyOnceCheckpoint(producer, consumer, _settings(), Stats(0, None))
    checkpoint.send("predictions", b"k", b"p1")
    checkpoint.processed(3, _partition(7))

    assert checkpoint.commit() is False
    calls = _calls(parent)
    assert calls[-1] == "producer.abort_transaction"
    assert calls.index(f"producer.{failing}") < calls.index("producer.abort_transaction")
    assert checkpoint.partitions == {}
    assert checkpoint.in_transaction is False
    if failing == "send_offsets_to_transaction":
        producer.commit_transaction.assert_not_called()


def test_a_fenced_producer_is_raised_not_aborted() -> None:
    _, producer, consumer = _clients()
    producer.commit_transaction.side_effect = ProducerFencedError("fenced")
    checkpoint = ExactlyOnceCheckpoint(producer, consumer, _settings(), Stats(0, None))
    checkpoint.send("predictions", b"k", b"p")
    with pytest.raises(ProducerFencedError):
        checkpoint.commit()
    producer.abort_transaction.assert_not_called()


def test_a_reset_partition_opens_the_transaction_and_its_fresh_state_is_committed() -> None:
    parent, producer, consumer = _clients()
    checkpoint = ExactlyOnceCheckpoint(producer, consumer, _settings(), Stats(0, None))
    checkpoint.processed(1, Partition(Learner(SMALL), 0, dirty=True))
    assert checkpoint.commit() is True
    assert _calls(parent)[0] == "producer.begin_transaction"
    assert producer.send.call_args.kwargs["partition"] == 1
    assert "producer.commit_transaction" in _calls(parent)


def test_at_least_once_flushes_before_committing_offsets_and_snapshots_only_when_due() -> None:
    parent, producer, consumer = _clients()
    future = MagicMock()
    future.failed.return_value = False
    producer.send.return_value = future
    settings = _settings("--processing-guarantee", "at_least_once", "--snapshot-interval-s", "3600")
    checkpoint = new_checkpoint(producer, consumer, settings, Stats(0, None))
    assert isinstance(checkpoint, AtLeastOnceCheckpoint)
    checkpoint.send("predictions", b"k", b"p")
    checkpoint.processed(0, _partition(5))
    assert checkpoint.commit() is True
    assert _calls(parent) == ["producer.send", "producer.flush", "consumer.commit"]
    assert consumer.commit.call_args.args[0] == {TopicPartition("in", 0): OffsetAndMetadata(5, "", -1)}

    later = checkpoint.next()  # the snapshot is carried until it is due
    assert isinstance(later, AtLeastOnceCheckpoint)
    assert set(later.unsnapshotted) == {0}
    later.last_snapshot -= 7200
    parent.reset_mock()
    assert later.commit() is True
    assert _calls(parent) == ["producer.partitions_for", "producer.send", "producer.flush"]


def test_at_least_once_does_not_commit_offsets_when_a_record_was_not_delivered() -> None:
    _, producer, consumer = _clients()
    future = MagicMock()
    future.failed.return_value = True
    future.exception = KafkaTimeoutError("not delivered")
    producer.send.return_value = future
    checkpoint = AtLeastOnceCheckpoint(producer, consumer, _settings(), Stats(0, None))
    checkpoint.send("predictions", b"k", b"p")
    checkpoint.processed(0, _partition(5))
    with pytest.raises(KafkaError, match="1 records could not be delivered"):
        checkpoint.commit()
    consumer.commit.assert_not_called()


def test_at_least_once_on_the_io_thread_flushes_but_never_commits() -> None:
    _, producer, consumer = _clients()
    producer.send.return_value = MagicMock(**{"failed.return_value": False})
    checkpoint = AtLeastOnceCheckpoint(producer, consumer, _settings(), Stats(0, None))
    checkpoint.send("predictions", b"k", b"p")
    checkpoint.processed(0, _partition(5))
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(checkpoint.commit()))
    thread.start()
    thread.join(30)
    assert result == [True]
    producer.flush.assert_called_once()
    consumer.commit.assert_not_called()


def test_a_session_whose_commit_aborts_restores_every_partition_from_the_state_topic() -> None:
    _, producer, consumer = _clients()
    producer.commit_transaction.side_effect = KafkaTimeoutError("broker gone")
    settings, stats = _settings(), Stats(0, None)
    session = Session(
        Clients(consumer, producer, None),
        settings,
        Probe(stall_limit_s=60),
        stats,
        Processor(settings, stats, workers=1),
        Restorer(settings, SMALL, lambda: Learner(SMALL)),
        Store("test", 256),
    )
    session.partitions = {0: _partition(10), 1: _partition(20)}
    for p, part in session.partitions.items():
        session.checkpoint.processed(p, part)
    session.checkpoint.send("predictions", b"k", b"p")
    first = session.checkpoint

    session._commit()
    producer.abort_transaction.assert_called_once()
    assert session.partitions == {}
    assert session._to_restore == {0, 1}
    assert session.checkpoint is not first
    assert session.checkpoint.partitions == {}


def _record(partition: int, offset: int, value: bytes = b"4") -> Any:
    record = MagicMock()
    record.partition, record.offset, record.key, record.value, record.headers = (
        partition,
        offset,
        None,
        value,
        [],
    )
    record.timestamp = 0
    return record


class _SlowLearner:
    """Records which thread learned what, and when; sleeps in its call as a compiled call would."""

    def __init__(self, log: list[tuple[str, int, float, float]], name: str) -> None:
        self.log, self.name = log, name

    def learn_predict_many(self, records: list[tuple[str | None, str]]) -> list[Prediction]:
        started = time.monotonic()
        time.sleep(0.2)
        self.log.append((self.name, len(records), started, time.monotonic()))
        return [Prediction(key, "4", 1.0, 1, None, "4", 0.1, "4", 1.0, None, None) for key, _ in records]


def test_partitions_learn_at_the_same_time_each_in_order_and_results_go_out_on_the_callers_thread() -> None:
    _, producer, consumer = _clients()
    settings, stats = _settings(), Stats(0, None)
    calls: list[tuple[str, int, float, float]] = []
    partitions = {p: Partition(cast(Learner, _SlowLearner(calls, f"p{p}")), 0) for p in (0, 1)}
    checkpoint = ExactlyOnceCheckpoint(producer, consumer, settings, stats)
    target = Target(checkpoint, None, lambda p: 0)
    processor = Processor(settings, stats, workers=2)
    try:
        processor.submit({0: [_record(0, o) for o in range(3)], 1: [_record(1, 0)]}, partitions, target)
        assert processor.busy
        producer.send.assert_not_called()  # nothing is sent from a worker
        processor.submit({0: [_record(0, 3), _record(0, 4, b"")]}, partitions, target)  # waits for p0's first
        processor.drain(target)
    finally:
        processor.close()
    # By partition and start, not by the order the calls ended in (two 0.2 s calls on 2 cores
    # may end either way round).
    first0, second0 = sorted((c for c in calls if c[0] == "p0"), key=lambda c: c[2])
    (first1,) = [c for c in calls if c[0] == "p1"]
    assert (len(calls), first0[1], first1[1], second0[1]) == (3, 3, 1, 1)
    assert first1[2] < first0[3]  # p1 ran while p0's first call did
    assert second0[2] >= first0[3]  # p0's calls one after the other, in offset order
    topics = [c.args[0] for c in producer.send.call_args_list]
    assert topics.count("predictions") == 5
    assert topics.count("sequence-dead-letters") == 1
    sent = [json.loads(c.kwargs["value"]) for c in producer.send.call_args_list if c.args[0] == "predictions"]
    assert [(d["partition"], d["offset"]) for d in sent] == [(0, 0), (0, 1), (0, 2), (1, 0), (0, 3)]
    assert (partitions[0].next_offset, partitions[1].next_offset) == (5, 1)
    assert set(checkpoint.partitions) == {0, 1}


def test_discarded_calls_send_nothing() -> None:
    _, producer, consumer = _clients()
    settings, stats = _settings(), Stats(0, None)
    calls: list[tuple[str, int, float, float]] = []
    partitions = {0: Partition(cast(Learner, _SlowLearner(calls, "p0")), 0)}
    checkpoint = ExactlyOnceCheckpoint(producer, consumer, settings, stats)
    processor = Processor(settings, stats, workers=2)
    try:
        processor.submit({0: [_record(0, 0)]}, partitions, Target(checkpoint, None, lambda p: 0))
        processor.discard()
        assert not processor.busy
    finally:
        processor.close()
    assert len(calls) == 1  # the call ran to its end (a compiled call cannot be interrupted)
    producer.send.assert_not_called()
    assert partitions[0].next_offset == 0
    assert checkpoint.partitions == {}


def test_a_failed_sessions_producer_is_stopped_even_when_its_close_times_out() -> None:
    """kafka-python's close() raises when its flush times out, before it stops its sender thread:
    the thread would stay, retrying for ever, one more after each failed session."""
    from consumer.session import abandon

    class Sender(threading.Thread):
        def __init__(self) -> None:
            super().__init__(daemon=True)
            self.stop = threading.Event()

        def run(self) -> None:
            self.stop.wait(60)

        def force_close(self) -> None:
            self.stop.set()

    class StuckProducer:
        def __init__(self) -> None:
            self._sender = Sender()
            self._sender.start()
            self.timeouts: list[float] = []

        def close(self, timeout: float) -> None:
            self.timeouts.append(timeout)
            raise KafkaTimeoutError("Timeout waiting for future")

    producer = StuckProducer()
    started = time.monotonic()
    abandon(producer, 1.0)
    assert producer.timeouts == [1.0]
    assert not producer._sender.is_alive()
    assert time.monotonic() - started < 5
    healthy = MagicMock(spec_set=KafkaProducer)
    abandon(healthy, 1.0)
    healthy.close.assert_called_once_with(timeout=1.0)
