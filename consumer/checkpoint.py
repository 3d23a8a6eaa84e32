"""One commit cycle of the service: what is produced and processed between two commits.

Contract. A checkpoint is opened empty; while it is open, every prediction and dead letter goes
out through `send`, and every partition a poll processed is handed to `processed`. At the end of
the commit interval (or at a revocation, or at stop) the session calls `commit()` once, then
opens the next checkpoint (`next()`). `commit()` makes the whole cycle durable in the order its
docstring lists, or, for exactly-once, aborts it and returns False: the session then restores
every partition from the state topic, which agrees with the committed offsets, so nothing is
lost or doubled. A checkpoint is used by one thread at a time (the main thread, or kafka-python's
IO thread during a revocation while the main thread is blocked in `poll`).

One kind per --processing-guarantee: `ExactlyOnceCheckpoint` (one Kafka transaction) and
`AtLeastOnceCheckpoint` (flush, then commit offsets; snapshots every --snapshot-interval-s).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from consumer.core.snapshot import snapshot_bytes
from consumer.core.snapshot_read import SnapshotError
from consumer.logs import fields
from consumer.state import encode_state, state_headers
from consumer.watchdog import deadline

if TYPE_CHECKING:
    from consumer.partition import Partition
    from consumer.settings import RunSettings
    from consumer.stats import Stats

__all__ = ["AtLeastOnceCheckpoint", "Checkpoint", "ExactlyOnceCheckpoint", "new_checkpoint"]

log = logging.getLogger("consumer.checkpoint")


class Checkpoint:
    """The records sent and the partitions processed since the last commit."""

    def __init__(
        self, producer: KafkaProducer, consumer: KafkaConsumer, settings: RunSettings, stats: Stats
    ) -> None:
        self.producer, self.consumer, self.settings, self.stats = producer, consumer, settings, stats
        self.partitions: dict[int, Partition] = {}  # processed in this cycle, by partition number
        self.started = time.monotonic()

    def due(self) -> bool:
        return self.due_in_ms() <= 0

    def due_in_ms(self) -> float:
        """Milliseconds until the commit interval ends (negative once it has)."""
        return self.settings.commit_interval_ms - (time.monotonic() - self.started) * 1000

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, **kw: Any) -> Any:
        return self.producer.send(topic, key=key, value=value, headers=headers or [], **kw)

    def processed(self, partition: int, part: Partition) -> None:
        """`part` advanced (or was reset) in this cycle: its offset and snapshot are part of it."""
        part.dirty = True
        self.partitions[partition] = part

    def forget(self, partitions: set[int]) -> None:
        """Partitions that left without a commit (lost): nothing of theirs is committed."""
        for partition in partitions:
            self.partitions.pop(partition, None)

    def commit(self) -> bool:
        raise NotImplementedError

    def abort(self) -> None:
        """Give up the cycle; the caller restores every partition it holds."""

    def next(self) -> Checkpoint:
        raise NotImplementedError

    def _offsets(self, partitions: dict[int, Partition]) -> dict[TopicPartition, OffsetAndMetadata]:
        topic, feedback = self.settings.input_topic, self.settings.feedback_topic
        offsets = {
            TopicPartition(topic, p): OffsetAndMetadata(part.next_offset, "", -1)
            for p, part in partitions.items()
        }
        for p, part in partitions.items():
            if part.feedback_offset is not None:
                offsets[TopicPartition(feedback, p)] = OffsetAndMetadata(part.feedback_offset, "", -1)
        return offsets

    def _write_snapshots(self, partitions: dict[int, Partition]) -> None:
        """Each partition's learner to the state topic, keyed by partition, with its next offset."""
        s = self.settings
        count = len(self.producer.partitions_for(s.state_topic))
        for p, part in partitions.items():
            started = time.perf_counter()
            value = encode_state(snapshot_bytes(part.learner))
            self.send(
                s.state_topic,
                s.state_key(p).encode(),
                value,
                state_headers(part.next_offset, part.feedback_offset),
                partition=p % count,
            )
            self.stats.snapshot(time.perf_counter() - started)
            part.snapshotted(len(value))


class ExactlyOnceCheckpoint(Checkpoint):
    """One Kafka transaction: predictions, dead letters, snapshots and input offsets, or none of them."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.in_transaction = False

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, **kw: Any) -> Any:
        self._begin()
        return super().send(topic, key, value, headers, **kw)

    def processed(self, partition: int, part: Partition) -> None:
        self._begin()  # a reset partition sends nothing before its snapshot
        super().processed(partition, part)

    def commit(self) -> bool:
        """Commit the cycle in one transaction; False if it was aborted instead.

        1. The transaction is open since the cycle's first record (`begin_transaction`); the
           predictions and dead letters are already in it, in the order they were made.
        2. Snapshot every partition processed in the cycle to the state topic, with the offset
           after its last processed record.
        3. Add those offsets, the feedback topic's too, to the transaction
           (`send_offsets_to_transaction` with the consumer's group metadata): the group's
           position moves only if the rest commits.
        4. `commit_transaction`: predictions, dead letters, snapshots and offsets become visible
           to read_committed readers together.
        A Kafka or snapshot failure in 2-4 aborts the transaction (`abort`) and returns False;
        a fenced producer (another instance took the transactional id) is raised.
        """
        if not self.in_transaction:
            return True  # nothing was sent and nothing processed
        s, timeout = self.settings, self.settings.transaction_timeout_s
        try:
            # step 2
            self._write_snapshots(self.partitions)
            # step 3
            offsets = self._offsets(self.partitions)
            if offsets:
                with deadline(timeout, "send_offsets_to_transaction"):
                    self.producer.send_offsets_to_transaction(offsets, self.consumer.group_metadata())
            # step 4
            with deadline(timeout, "commit_transaction"):
                self.producer.commit_transaction()
        except (KafkaError, SnapshotError) as exc:
            if isinstance(exc, ProducerFencedError):
                raise
            log.warning("transaction failed, aborting and restoring the partitions: %s", exc)
            self.abort()
            return False
        self.in_transaction = False
        self.stats.committed()
        log.debug("committed", extra=fields(topic=s.input_topic, partitions=sorted(self.partitions)))
        return True

    def abort(self) -> None:
        """Abort the open transaction: none of the cycle's records or offsets become visible."""
        if self.in_transaction:
            with deadline(self.settings.transaction_timeout_s, "abort_transaction"):
                self.producer.abort_transaction()
            self.in_transaction = False
            self.stats.aborted()
        self.partitions.clear()

    def next(self) -> Checkpoint:
        return ExactlyOnceCheckpoint(self.producer, self.consumer, self.settings, self.stats)

    def _begin(self) -> None:
        if not self.in_transaction:
            self.producer.begin_transaction()
            self.in_transaction = True


class AtLeastOnceCheckpoint(Checkpoint):
    """Flush, then commit the offsets: after a crash a record may be processed twice, never lost."""

    def __init__(
        self, *args: Any, unsnapshotted: dict[int, Partition] | None = None, last_snapshot: float = 0.0
    ):
        super().__init__(*args)
        self.futures: list[Any] = []
        self.unsnapshotted = dict(unsnapshotted or {})  # processed since their last snapshot
        self.last_snapshot = last_snapshot or time.monotonic()

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, **kw: Any) -> Any:
        future = super().send(topic, key, value, headers, **kw)
        self.futures.append(future)
        return future

    def processed(self, partition: int, part: Partition) -> None:
        super().processed(partition, part)
        self.unsnapshotted[partition] = part

    def forget(self, partitions: set[int]) -> None:
        super().forget(partitions)
        for partition in partitions:
            self.unsnapshotted.pop(partition, None)

    def commit(self) -> bool:
        """Make the cycle durable; a delivery failure raises (the session restarts and redelivers).

        1. Every --snapshot-interval-s: snapshot the partitions processed since their last
           snapshot (a restore resumes at a snapshot's offset and reprocesses what followed).
        2. Flush the producer and check every record sent in the cycle was delivered.
        3. Commit the processed partitions' offsets (on the main thread only: kafka-python forbids
           a blocking commit on its IO thread, so a revocation stops after step 2).
        """
        s, timeout = self.settings, self.settings.transaction_timeout_s
        # step 1
        if self.unsnapshotted and time.monotonic() - self.last_snapshot >= s.snapshot_interval_s:
            self.last_snapshot = time.monotonic()
            self._write_snapshots(self.unsnapshotted)
            self.unsnapshotted.clear()
        # step 2
        with deadline(timeout, "flushing the producer"):
            self.producer.flush(timeout=timeout)
        failed = [f.exception for f in self.futures if f.failed()]
        self.futures.clear()
        if failed:
            raise KafkaError(f"{len(failed)} records could not be delivered: {failed[0]}")
        # step 3
        offsets = self._offsets(self.partitions)
        if offsets and threading.current_thread() is threading.main_thread():
            with deadline(timeout, "committing offsets"):
                self.consumer.commit(offsets)
            self.partitions.clear()
        return True

    def abort(self) -> None:
        self.futures.clear()
        self.partitions.clear()
        self.unsnapshotted.clear()

    def next(self) -> Checkpoint:
        return AtLeastOnceCheckpoint(
            self.producer,
            self.consumer,
            self.settings,
            self.stats,
            unsnapshotted=self.unsnapshotted,
            last_snapshot=self.last_snapshot,
        )


def new_checkpoint(
    producer: KafkaProducer, consumer: KafkaConsumer, settings: RunSettings, stats: Stats
) -> Checkpoint:
    """The first checkpoint of a session, of the kind --processing-guarantee names."""
    kind = ExactlyOnceCheckpoint if settings.processing_guarantee == "exactly_once" else AtLeastOnceCheckpoint
    return kind(producer, consumer, settings, stats)
