"""The commit cycle in-process: the order of the Kafka calls each guarantee makes, and what an abort
restores. The clients are `MagicMock(spec_set=...)` of kafka-python's own classes, so a call they
do not have fails; the real-broker tests (test_consumer_service, test_consumer_crash, test_faults)
check the same paths against Kafka."""

from __future__ import annotations

import threading
from typing import Any
from unittest.mock import MagicMock

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, KafkaTimeoutError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from consumer.checkpoint import AtLeastOnceCheckpoint, ExactlyOnceCheckpoint, new_checkpoint
from consumer.clients import Clients
from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.http import Probe
from consumer.processing import Partition, Processor
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
