"""`lstm-consumer run`: the online-learning service on Kafka.

One learner per assigned input partition (each key keeps its own window in it). Everything one
poll returns for a partition goes to its learner in one call; each valid record yields exactly
one prediction on the output topic, each invalid one a dead letter (`consumer.records`).

Commit order, exactly_once (default), once per commit interval, in ONE Kafka transaction:
predictions and dead letters (sent as they are made), then the snapshot of every partition
processed since the last commit (state topic, `consumer.state`), then the input offsets
(`send_offsets_to_transaction` with the consumer's group metadata), then commit. A failed commit
is aborted and the partitions are restored from the state topic, which agrees with the committed
offsets, so nothing is lost or doubled. at_least_once: flush the predictions, commit the offsets;
snapshots every `--snapshot-interval-s` (a restore resumes at the snapshot's offset).

Rebalances: kafka-python runs listeners on its IO thread while `poll` blocks the main thread.
Revocation commits there (the producer has its own threads; consumer calls would deadlock);
assignment only records the partitions, and the main thread restores them after `poll` returns,
seeks to each snapshot's offset and drops what that poll returned for them. Loss: abort, drop,
restore. Blocking Kafka calls run under `consumer.watchdog.deadline`.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError, ProducerFencedError
from kafka.structs import OffsetAndMetadata

from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.core.snapshot import restore, snapshot_bytes
from consumer.core.snapshot_read import SnapshotError
from consumer.http import Probe
from consumer.logs import fields
from consumer.records import Decoder, Rejected, dead_letter_headers, encode_prediction, fit_dead_letter
from consumer.settings import RunSettings
from consumer.state import (
    DEAD_LETTER_TOPIC_CONFIG,
    STATE_MAX_BYTES,
    STATE_TOPIC_CONFIG,
    encode_state,
    ensure_topic,
    max_message_bytes,
    read_states,
    state_headers,
)
from consumer.stats import Stats
from consumer.watchdog import WatchdogTimeoutError, deadline

__all__ = ["FatalError", "Service"]

log = logging.getLogger("consumer.service")
BOOTSTRAP_TIMEOUT_MS = 15_000  # an unreachable or refusing broker is reported (and retried) this soon


class FatalError(RuntimeError):
    """A failure a restart cannot fix (a refused snapshot, a fenced instance): exit 1."""


class ConnectError(KafkaError):  # type: ignore[misc]
    """The Kafka clients could not be created: the broker is unreachable or refuses us."""


@dataclass
class Partition:
    learner: Learner
    next_offset: int | None  # the next input offset to process; None until known
    dirty: bool = False  # processed (or reset) since the last snapshot


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, service: Service) -> None:
        self.service = service

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.service._on_revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.service._on_assigned({tp.partition for tp in assigned})

    def on_partitions_lost(self, lost: Any) -> None:
        self.service._on_lost({tp.partition for tp in lost})


class Service:
    """Consume, learn, predict, commit; `run` until `stop` is set."""

    def __init__(self, settings: RunSettings, config: LearnerConfig, probe: Probe, stats: Stats) -> None:
        self.settings, self.config, self.probe, self.stats = settings, config, probe, stats
        self.stop = threading.Event()
        self.exactly_once = settings.processing_guarantee == "exactly_once"
        self.decoder = Decoder(
            settings.value_format, settings.value_field, settings.max_value_bytes, settings.max_key_bytes
        )
        self.kafka = settings.client_kwargs()
        stats.learners = lambda: [part.learner for part in list(self.partitions.values())]
        self.partitions: dict[int, Partition] = {}
        self._to_restore: set[int] = set()
        self._reset_done: set[int] = set()
        self._lost = False
        self._listener_error: BaseException | None = None
        self._in_txn = False
        self._broken = False
        self._warm = False
        self._futures: list[Any] = []
        self._dead_letter_limit: int | None = None  # the dead-letter topic's max.message.bytes
        self._last_commit = self._last_snapshot = time.monotonic()
        self.consumer: KafkaConsumer | None = None
        self.producer: KafkaProducer | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def run(self) -> None:
        """Process until `stop`; restart the Kafka session after a recoverable failure."""
        backoff = 1.0
        while not self.stop.is_set():
            try:
                self._session()
                return
            except ProducerFencedError:
                raise FatalError(
                    f"another instance uses the transactional id {self.settings.transactional_id!r}: "
                    "give each instance its own --instance-id"
                ) from None
            except ConnectError as exc:
                log.error(
                    "cannot connect to Kafka at %s (check --bootstrap-servers, --security-protocol %s and, "
                    "with SASL, the mechanism and credentials); retrying in %.0f s: %s",
                    self.settings.bootstrap_servers,
                    self.settings.security_protocol,
                    backoff,
                    exc,
                )
                self.stats.restarted()
                self._teardown()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
            except (WatchdogTimeoutError, KafkaError) as exc:
                log.error("Kafka session failed, restarting in %.0f s: %s", backoff, exc, exc_info=True)
                self.stats.restarted()
                self._teardown()
                self.stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)

    def _session(self) -> None:
        self._connect()
        poll_ms = min(self.settings.commit_interval_ms, 200)
        while not self.stop.is_set():
            assert self.consumer is not None
            batch = self.consumer.poll(timeout_ms=poll_ms, max_records=self.settings.max_poll_records)
            self._raise_listener_error()
            self.probe.beat()
            self._apply_assignment(batch)
            for tp, records in batch.items():
                if records and tp.partition in self.partitions:
                    self._process(tp.partition, records)
            if self._commit_due():
                self._commit()
            self.stats.maybe_report(self._lag)
        self._commit()
        self._close()

    def _new_learner(self) -> Learner:
        # Every call padded to the bucket of a full poll: one compiled program per process.
        return Learner(self.config, min_batch=self.settings.max_poll_records)

    def _warm_up(self) -> None:
        """Compile the learner's program before joining the group, not while partitions wait."""
        started = time.monotonic()
        log.info("compiling the model (the first start on a machine takes a while)")
        self._new_learner().program.warm_up(self.settings.max_poll_records)
        log.info("model compiled in %.1f s", time.monotonic() - started)

    def _connect(self) -> None:
        s = self.settings
        self._broken = False
        timeout = s.transaction_timeout_s
        try:
            with deadline(timeout + 30, "connecting to Kafka"):
                self._create_clients()
        except KafkaError as exc:
            raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
        if not self._warm:  # after the clients connected (a bad address fails fast), before joining
            self._warm_up()
            self._warm = True
        self._wait_for_input_topic()
        assert self.consumer is not None
        self.consumer.subscribe([s.input_topic], listener=_Listener(self))
        log.info(
            "consuming %s as group %s (%s, transactional id %s)",
            s.input_topic,
            s.group_id,
            s.processing_guarantee,
            s.transactional_id if self.exactly_once else "none",
        )

    def _create_clients(self) -> None:
        s = self.settings
        self._ensure_topics()
        self.producer = KafkaProducer(
            **self.kafka,
            acks="all",
            enable_idempotence=True,
            transactional_id=s.transactional_id if self.exactly_once else None,
            linger_ms=5,
            max_request_size=STATE_MAX_BYTES,
            bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
        )
        if self.exactly_once:
            self.producer.init_transactions()
        self.consumer = KafkaConsumer(
            **self.kafka,
            group_id=s.group_id,
            enable_auto_commit=False,
            isolation_level="read_committed",
            auto_offset_reset=s.auto_offset_reset,
            max_poll_records=s.max_poll_records,
            max_poll_interval_ms=s.max_poll_interval_ms,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=max(s.session_timeout_ms // 3, 100),
        )

    def _wait_for_input_topic(self) -> None:
        """Subscribe once the input topic's metadata is known: a group formed before that assigns nothing."""
        assert self.consumer is not None
        waited = 0.0
        while not self.stop.is_set():
            with deadline(self.settings.transaction_timeout_s, "reading the input topic's metadata"):
                if self.consumer.partitions_for_topic(self.settings.input_topic):
                    return
            if waited % 30 == 0:
                log.warning("waiting for the input topic %s to exist", self.settings.input_topic)
            self.stop.wait(1.0)
            waited += 1.0

    def _ensure_topics(self) -> None:
        """Create the missing output topics (unless told not to); learn the dead-letter topic's size limit."""
        s = self.settings
        admin = KafkaAdminClient(**self.kafka, bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
        try:
            if s.create_topics:
                topics = admin.list_topics()
                described = admin.describe_topics([s.input_topic]) if s.input_topic in topics else []
                count = max((len(t.get("partitions", [])) for t in described), default=1)
                ensure_topic(admin, s.output_topic, count)
                ensure_topic(admin, s.dead_letter_topic, count, DEAD_LETTER_TOPIC_CONFIG)
                ensure_topic(admin, s.state_topic, count, STATE_TOPIC_CONFIG)
            self._dead_letter_limit = max_message_bytes(admin, s.dead_letter_topic)
        finally:
            admin.close()

    def _teardown(self) -> None:
        """Drop the clients without committing (after a failure)."""
        self._broken = True
        self.probe.set_ready(False, "restarting")
        for client in (self.consumer, self.producer):
            if client is None:
                continue
            try:
                if isinstance(client, KafkaConsumer):
                    client.close(autocommit=False, timeout_ms=5000)
                else:
                    client.close(timeout=5)
            except Exception:
                log.warning("closing a failed Kafka client raised", exc_info=True)
        self.consumer = self.producer = None
        for partition in list(self.partitions):
            self._drop_partition(partition)
        self._to_restore.clear()
        self._in_txn = False
        self._futures.clear()

    def _close(self) -> None:
        self.probe.set_ready(False, "stopping")
        timeout = self.settings.transaction_timeout_s
        with deadline(timeout, "closing the Kafka clients"):
            if self.consumer is not None:
                self._broken = True  # nothing left to commit: the revocation on close is a no-op
                self.consumer.close(autocommit=False, timeout_ms=int(timeout * 1000))
            if self.producer is not None:
                self.producer.close(timeout=timeout)
        self.consumer = self.producer = None
        log.info("stopped")

    # -- rebalances (IO thread) ----------------------------------------------------------------
    def _on_revoked(self, revoked: set[int]) -> None:
        try:
            self.probe.set_ready(False, "rebalancing")
            if not self._broken:
                self._commit()
        except BaseException as exc:
            self._listener_error = exc
        for partition in revoked:
            self._drop_partition(partition)
            self._to_restore.discard(partition)
        if revoked:
            self.stats.rebalanced()
            log.info("partitions revoked", extra=fields(partitions=sorted(revoked)))

    def _on_assigned(self, assigned: set[int]) -> None:
        self._to_restore |= assigned - set(self.partitions)
        log.info("partitions assigned", extra=fields(partitions=sorted(assigned)))

    def _on_lost(self, lost: set[int]) -> None:
        self._lost = True
        for partition in lost:
            self._drop_partition(partition)
            self._to_restore.discard(partition)
        self.stats.rebalanced()
        log.warning("partitions lost", extra=fields(partitions=sorted(lost)))

    def _add_partition(self, partition: int, part: Partition) -> None:
        self.partitions[partition] = part
        self.stats.partition_assigned(partition, part.learner)

    def _drop_partition(self, partition: int) -> None:
        if self.partitions.pop(partition, None) is not None:
            self.stats.partition_removed(partition)

    def _raise_listener_error(self) -> None:
        error, self._listener_error = self._listener_error, None
        if error is not None:
            raise error

    # -- restore ---------------------------------------------------------------------------
    def _apply_assignment(self, batch: dict[TopicPartition, list[Any]]) -> None:
        if self._lost:
            self._lost = False
            self._abort()
        if not self._to_restore:
            return
        assert self.consumer is not None
        assigned = {tp.partition for tp in self.consumer.assignment()}
        wanted = sorted(self._to_restore & assigned)
        self._to_restore.clear()
        self._restore(wanted)
        for partition in wanted:
            batch.pop(TopicPartition(self.settings.input_topic, partition), None)
        self.probe.set_ready(True)

    def _restore(self, wanted: list[int]) -> None:
        s, consumer = self.settings, self.consumer
        assert consumer is not None
        fresh = [p for p in wanted if s.reset_state and p not in self._reset_done]
        with deadline(s.transaction_timeout_s, f"reading the state topic {s.state_topic}"):
            stored = read_states(
                s, [p for p in wanted if p not in fresh], self.kafka, s.transaction_timeout_s
            )
        for p in wanted:
            tp = TopicPartition(s.input_topic, p)
            state = stored.get(p)
            if state is None:
                self._add_partition(p, self._fresh(tp, reset=p in fresh))
                continue
            try:
                learner = restore(state.snapshot(), self.config, into=self._new_learner())
            except SnapshotError as exc:
                raise FatalError(
                    f"partition {p}: the stored learner (state topic {s.state_topic}, offset "
                    f"{state.state_offset}) is refused: {exc}. Start with --reset-state to discard it."
                ) from None
            consumer.seek(tp, state.offset)
            self._add_partition(p, Partition(learner, state.offset))
            log.info(
                "learner restored",
                extra=fields(
                    partition=p, offset=state.offset, messages=learner.messages, bytes=len(state.value)
                ),
            )

    def _fresh(self, tp: TopicPartition, reset: bool) -> Partition:
        """A new learner, from the group's committed offset (or --auto-offset-reset without one).

        Seeking explicitly matters after an aborted transaction: the fetch position is already
        past the records the aborted transaction processed.
        """
        consumer, timeout = self.consumer, self.settings.transaction_timeout_s
        assert consumer is not None
        with deadline(timeout, "reading the committed offset"):
            committed = consumer.committed(tp)
            if committed is not None:
                consumer.seek(tp, committed)
            elif self.settings.auto_offset_reset == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)
            offset = consumer.position(tp)
        part = Partition(self._new_learner(), offset, dirty=reset)
        if reset:  # the fresh state is written at the next commit, so the reset persists
            self._reset_done.add(tp.partition)
            log.warning("learner reset (--reset-state)", extra=fields(partition=tp.partition, offset=offset))
        else:
            log.info("no stored learner: starting fresh", extra=fields(partition=tp.partition, offset=offset))
        return part

    # -- processing ------------------------------------------------------------------------
    def _process(self, partition: int, records: list[Any]) -> None:
        s, producer, part = self.settings, self.producer, self.partitions[partition]
        assert producer is not None
        self._begin()
        started = time.perf_counter()
        valid: list[tuple[Any, str | None]] = []
        tokens: list[tuple[str | None, str]] = []
        for record in records:
            decoded = self.decoder.decode(record.key, record.value)
            if isinstance(decoded, Rejected):
                self._dead_letter(partition, record, decoded)
            else:
                valid.append((record, decoded[0]))
                tokens.append(decoded)
        predictions = part.learner.learn_predict_many(tokens) if tokens else []
        for (record, key), p in zip(valid, predictions, strict=True):
            value = encode_prediction(
                key,
                partition,
                record.offset,
                p.predicted,
                p.probability,
                p.model_step,
                p.previous_hit,
                p.baseline,
                p.lstm,
                p.lstm_probability,
            )
            self._send(s.output_topic, record.key, value)
        part.next_offset = records[-1].offset + 1
        part.dirty = True
        self.stats.processed(partition, records, predictions, part.learner, time.perf_counter() - started)
        self._report_lag(partition, part)

    def _dead_letter(self, partition: int, record: Any, rejected: Rejected) -> None:
        s = self.settings
        headers = dead_letter_headers(rejected, s.input_topic, partition, record.offset, record.headers or [])
        value, headers = fit_dead_letter(record.key, record.value, headers, self._dead_letter_limit)
        if value is None and record.value is not None:
            log.warning(
                "dead letter too large for %s: sent without its value",
                s.dead_letter_topic,
                extra=fields(partition=partition, offset=record.offset),
            )
        self._send(s.dead_letter_topic, record.key, value, headers)
        self.stats.dead_letter(rejected.reason)
        log.debug("dead letter: %s", rejected.reason, extra=fields(partition=partition, offset=record.offset))

    def _send(
        self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None, **kw: Any
    ) -> None:
        assert self.producer is not None
        future = self.producer.send(topic, key=key, value=value, headers=headers or [], **kw)
        if not self.exactly_once:
            self._futures.append(future)

    # -- commits ---------------------------------------------------------------------------
    def _begin(self) -> None:
        if self.exactly_once and not self._in_txn:
            assert self.producer is not None
            self.producer.begin_transaction()
            self._in_txn = True

    def _commit_due(self) -> bool:
        return (time.monotonic() - self._last_commit) * 1000 >= self.settings.commit_interval_ms

    def _commit(self) -> None:
        self._last_commit = time.monotonic()
        dirty = {
            p: part for p, part in self.partitions.items() if part.dirty and part.next_offset is not None
        }
        if self.exactly_once:
            self._commit_transaction(dirty)
        else:
            self._commit_at_least_once(dirty)

    def _write_snapshots(self, dirty: dict[int, Partition]) -> None:
        s, producer = self.settings, self.producer
        assert producer is not None
        count = len(producer.partitions_for(s.state_topic))
        for p, part in dirty.items():
            started = time.perf_counter()
            value = encode_state(snapshot_bytes(part.learner))
            assert part.next_offset is not None
            self._send(
                s.state_topic,
                s.state_key(p).encode(),
                value,
                state_headers(part.next_offset),
                partition=p % count,
            )
            self.stats.snapshot(p, len(value), time.perf_counter() - started)
            part.dirty = False

    def _commit_transaction(self, dirty: dict[int, Partition]) -> None:
        if not dirty and not self._in_txn:
            return
        s, producer, consumer = self.settings, self.producer, self.consumer
        assert producer is not None
        assert consumer is not None
        try:
            self._begin()
            self._write_snapshots(dirty)
            offsets = {
                TopicPartition(s.input_topic, p): OffsetAndMetadata(part.next_offset, "", -1)
                for p, part in dirty.items()
            }
            with deadline(s.transaction_timeout_s, "send_offsets_to_transaction"):
                if offsets:
                    producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
            with deadline(s.transaction_timeout_s, "commit_transaction"):
                producer.commit_transaction()
            self._in_txn = False
            self.stats.committed()
        except (KafkaError, SnapshotError) as exc:
            if isinstance(exc, ProducerFencedError):
                raise
            log.warning("transaction failed, aborting and restoring the partitions: %s", exc)
            self._abort()

    def _abort(self) -> None:
        """Abort the open transaction; the partitions go back to their committed state."""
        if self._in_txn:
            assert self.producer is not None
            with deadline(self.settings.transaction_timeout_s, "abort_transaction"):
                self.producer.abort_transaction()
            self._in_txn = False
            self.stats.aborted()
        self._to_restore |= set(self.partitions)
        for partition in list(self.partitions):
            self._drop_partition(partition)
        self.probe.set_ready(False, "restoring after an aborted transaction")

    def _commit_at_least_once(self, dirty: dict[int, Partition]) -> None:
        s, producer, consumer = self.settings, self.producer, self.consumer
        assert producer is not None
        assert consumer is not None
        if dirty and time.monotonic() - self._last_snapshot >= s.snapshot_interval_s:
            self._last_snapshot = time.monotonic()
            self._write_snapshots(dirty)
        with deadline(s.transaction_timeout_s, "flushing the producer"):
            producer.flush(timeout=s.transaction_timeout_s)
        failed = [f.exception for f in self._futures if f.failed()]
        self._futures.clear()
        if failed:
            raise KafkaError(f"{len(failed)} records could not be delivered: {failed[0]}")
        offsets = {
            TopicPartition(s.input_topic, p): OffsetAndMetadata(part.next_offset, "", -1)
            for p, part in self.partitions.items()
            if part.next_offset is not None
        }
        if offsets and threading.current_thread() is threading.main_thread():
            # (kafka-python forbids a blocking commit on its IO thread: a revocation only flushes)
            with deadline(s.transaction_timeout_s, "committing offsets"):
                consumer.commit(offsets)

    # -- reporting -------------------------------------------------------------------------
    def _report_lag(self, partition: int, part: Partition) -> None:
        assert self.consumer is not None
        end = self.consumer.highwater(TopicPartition(self.settings.input_topic, partition))
        if end is not None and part.next_offset is not None:
            self.stats.lag(partition, max(end - part.next_offset, 0))

    def _lag(self) -> dict[int, int]:
        """Messages behind the end of each assigned partition, from the consumer's fetch metadata."""
        if self.consumer is None:
            return {}
        lag = {}
        for p, part in self.partitions.items():
            end = self.consumer.highwater(TopicPartition(self.settings.input_topic, p))
            if end is not None and part.next_offset is not None:
                lag[p] = max(end - part.next_offset, 0)
        return lag
