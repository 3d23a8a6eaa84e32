"""One Kafka session of the service: from connect to a failure or stop.

Contract. A `Session` holds what exists only while connected: the consumer and producer, the
partitions assigned and their learners, the partitions waiting to be restored, and the open
`Checkpoint`. `run(stop)` loops: poll; restore what was assigned; start each partition's
learner call on a worker (`consumer.processing`: partitions in parallel, and the polling goes
on meanwhile); send the results of the calls that finished; once per commit interval finish
every call in flight, commit the checkpoint and open the next. At stop it does the same, then
closes the clients. After a failure the service calls `teardown` and drops the session,
learners included: the next session restores them from the state topic, which agrees with the
committed offsets.

Rebalances: kafka-python runs the listener on its IO thread while `poll` blocks the main thread.
Revocation finishes the learner calls in flight and commits there (the producer has its own
threads; consumer calls would deadlock); assignment only records the partitions, and the main
thread restores them after `poll` returns, seeks to each snapshot's offset and drops what that
poll returned for them. Loss: discard the calls in flight, abort, drop, restore. A group join
that does not complete within `join_limit_s` (a member stuck rejoining was seen with
kafka-python 3.0.12: it never rejoined and held no partitions) fails the session, so it
reconnects.
"""

from __future__ import annotations

import logging
import threading
import time
from math import ceil
from typing import Any

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import MemberState

from consumer.checkpoint import Checkpoint, new_checkpoint
from consumer.clients import Clients, check_feedback_topic, wait_for_topic
from consumer.health import Probe
from consumer.logs import fields
from consumer.partition import Partition
from consumer.processing import Processor, Target
from consumer.query import Publisher
from consumer.restore import Restorer
from consumer.settings import RunSettings
from consumer.stats import Stats
from consumer.watchdog import deadline

__all__ = ["GroupJoinStuckError", "Session", "abandon"]

log = logging.getLogger("consumer.service")


class GroupJoinStuckError(KafkaError):  # type: ignore[misc]
    """The consumer has been rejoining its group for too long: reconnect."""


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, session: Session) -> None:
        self.session = session

    def on_partitions_revoked(self, revoked: Any) -> None:
        self.session._on_revoked({tp.partition for tp in revoked})

    def on_partitions_assigned(self, assigned: Any) -> None:
        self.session._on_assigned({tp.partition for tp in assigned})

    def on_partitions_lost(self, lost: Any) -> None:
        self.session._on_lost({tp.partition for tp in lost})


class Session:
    """The clients, partitions and open checkpoint of one connection to Kafka."""

    def __init__(
        self,
        clients: Clients,
        settings: RunSettings,
        probe: Probe,
        stats: Stats,
        processor: Processor,
        restorer: Restorer,
        store: Publisher,
    ) -> None:
        self.consumer, self.producer = clients.consumer, clients.producer
        self.dead_letter_limit = clients.dead_letter_limit
        self.settings, self.probe, self.stats = settings, probe, stats
        self.processor, self.restorer, self.store = processor, restorer, store
        self.partitions: dict[int, Partition] = {}
        self.checkpoint: Checkpoint = new_checkpoint(self.producer, self.consumer, settings, stats)
        self._to_restore: set[int] = set()
        self._lost = False
        self._listener_error: BaseException | None = None
        self._closing = False  # torn down or closing: a revocation has nothing left to commit
        self._joining_since: float | None = None
        self.join_limit_s = max(60.0, 3 * settings.session_timeout_ms / 1000)
        self.commits = 0  # checkpoints committed with something in them: the session worked

    def run(self, stop: threading.Event) -> None:
        """Consume until `stop`, then commit and close."""
        s = self.settings
        wait_for_topic(self.consumer, s, stop)
        topics = [s.input_topic, *([s.feedback_topic] if s.anomaly_top_g else [])]
        if s.anomaly_top_g:
            check_feedback_topic(self.consumer, s)
        self.consumer.subscribe(topics, listener=_Listener(self))
        log.info(
            "consuming %s as group %s (%s, transactional id %s, %d workers)",
            s.input_topic,
            s.group_id,
            s.processing_guarantee,
            s.transactional_id if s.processing_guarantee == "exactly_once" else "none",
            self.processor.workers,
        )
        poll_ms = min(s.commit_interval_ms, 200)
        while not stop.is_set():
            # While calls are in flight, poll briefly: their results are sent as they finish.
            # Otherwise wait no later than the commit is due, so a poll never delays it.
            timeout = 1 if self.processor.busy else max(1, min(poll_ms, ceil(self.checkpoint.due_in_ms())))
            polled = self.consumer.poll(timeout_ms=timeout, max_records=s.max_poll_records)
            self._raise_listener_error()
            self.probe.beat()
            self._check_group()
            batch = {tp.partition: records for tp, records in polled.items() if tp.topic == s.input_topic}
            marks = {tp.partition: records for tp, records in polled.items() if tp.topic != s.input_topic}
            batch, marks = self._apply_assignment(batch, marks)
            self.processor.submit(batch, self.partitions, self._target(), marks)
            self.processor.collect(self._target(), wait_s=0 if batch else 0.01)
            if self.checkpoint.due():
                self._commit()
            self.stats.maybe_report(self.lag, self.learners)
        self._commit()
        self.close()

    def _target(self) -> Target:
        return Target(self.checkpoint, self.dead_letter_limit, self._lag_of)

    def learners(self) -> list[Any]:
        return [part.learner for part in list(self.partitions.values())]

    def lag(self) -> dict[int, int]:
        """Records behind the end of each assigned partition, as of its last poll."""
        return {p: part.lag for p, part in list(self.partitions.items()) if part.lag is not None}

    # -- commits -----------------------------------------------------------------------------
    def _commit(self) -> None:
        """Finish the calls in flight, commit the open checkpoint and open the next; restore
        everything if it aborted."""
        self.processor.drain(self._target())
        checkpoint, self.checkpoint = self.checkpoint, self.checkpoint.next()
        processed = dict(checkpoint.partitions)
        if not checkpoint.commit():
            self._restore_all()
            return
        self.commits += bool(processed)
        for p, part in processed.items():  # committed: what the query endpoint may now show
            self.store.publish(p, part.take_staged())

    def _restore_all(self) -> None:
        self.processor.discard()
        self.checkpoint.abort()
        self._to_restore |= set(self.partitions)
        self._drop(set(self.partitions))
        self.probe.set_ready(False, "restoring after an aborted transaction")

    # -- rebalances (IO thread) --------------------------------------------------------------
    def _on_revoked(self, revoked: set[int]) -> None:
        try:
            self.probe.set_ready(False, "rebalancing")
            if self._closing:
                self.processor.discard(revoked)
            else:
                self._commit()
        except BaseException as exc:
            self._listener_error = exc
        self._drop(revoked)
        self.store.dropped(revoked)
        self._to_restore -= revoked
        if revoked:
            self.stats.rebalanced()
            log.info("partitions revoked", extra=fields(partitions=sorted(revoked)))

    def _on_assigned(self, assigned: set[int]) -> None:
        self._to_restore |= assigned - set(self.partitions)
        log.info("partitions assigned", extra=fields(partitions=sorted(assigned)))

    def _on_lost(self, lost: set[int]) -> None:
        self._lost = True
        self.processor.discard(lost)
        self.checkpoint.forget(lost)
        self._drop(lost)
        self.store.dropped(lost)
        self._to_restore -= lost
        self.stats.rebalanced()
        log.warning("partitions lost", extra=fields(partitions=sorted(lost)))

    def _drop(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.partitions.pop(partition, None)

    def _raise_listener_error(self) -> None:
        error, self._listener_error = self._listener_error, None
        if error is not None:
            raise error

    def _check_group(self) -> None:
        """Fail the session when the group join has not completed for `join_limit_s`."""
        if self.consumer.group_metadata().state == MemberState.STABLE:
            self._joining_since = None
            return
        now = time.monotonic()
        if self._joining_since is None:
            self._joining_since = now
        elif now - self._joining_since > self.join_limit_s:
            raise GroupJoinStuckError(
                f"joining the group {self.settings.group_id} has not completed in {self.join_limit_s:.0f} s"
            )

    # -- restore -----------------------------------------------------------------------------
    def _apply_assignment(
        self, batch: dict[int, list[Any]], marks: dict[int, list[Any]]
    ) -> tuple[dict[int, list[Any]], dict[int, list[Any]]]:
        if self._lost:
            self._lost = False
            self._restore_all()
        if not self._to_restore:
            return batch, marks
        assigned = {tp.partition for tp in self.consumer.assignment()}
        wanted = sorted(self._to_restore & assigned)
        self._to_restore.clear()
        for p, part in self.restorer.take(self.consumer, wanted).items():
            self.partitions[p] = part
            if part.dirty:  # reset: its fresh state is committed with the next checkpoint
                self.checkpoint.processed(p, part)
            batch.pop(p, None)  # fetched before the seek: read again from the learner's offset
            marks.pop(p, None)
        count = len(self.consumer.partitions_for_topic(self.settings.input_topic) or ())
        self.store.assigned(set(wanted), count)
        self.probe.set_ready(True)
        return batch, marks

    def _lag_of(self, partition: int) -> int | None:
        end = self.consumer.highwater(TopicPartition(self.settings.input_topic, partition))
        part = self.partitions.get(partition)
        return None if end is None or part is None else max(end - part.next_offset, 0)

    # -- closing -----------------------------------------------------------------------------
    def close(self) -> None:
        """Leave the group and close the clients (after the last commit)."""
        self.probe.set_ready(False, "stopping")
        timeout = self.settings.transaction_timeout_s
        self._closing = True  # nothing left to commit: the revocation on close is a no-op
        with deadline(timeout, "closing the Kafka clients"):
            self.consumer.close(autocommit=False, timeout_ms=int(timeout * 1000))
            self.producer.close(timeout=timeout)
        self.partitions.clear()
        self.store.dropped(set(self.store.owned()))
        log.info("stopped")

    def teardown(self) -> None:
        """Drop the clients without committing (after a failure)."""
        self._closing = True
        self.probe.set_ready(False, "restarting")
        self.processor.discard()
        self.store.dropped(set(self.store.owned()))
        try:
            self.consumer.close(autocommit=False, timeout_ms=5000)
        except Exception:
            log.warning("closing a failed Kafka consumer raised", exc_info=True)
        # Exactly-once: what the producer still holds belongs to a transaction given up (the next
        # session's producer fences it), so it is not waited for.
        abandon(self.producer, 1.0 if self.settings.processing_guarantee == "exactly_once" else 5.0)
        self.partitions.clear()
        self._to_restore.clear()


def abandon(producer: Any, timeout_s: float) -> None:
    """Close a producer after a failure, whatever it still holds. kafka-python's `close` raises
    when its flush times out and then leaves the producer's sender thread running, retrying its
    requests for ever: one such thread and its connections per failed session. Stop it here."""
    try:
        producer.close(timeout=timeout_s)
        return
    except Exception as exc:
        log.info("dropping the failed session's producer with records it still held: %s", exc)
    sender = getattr(producer, "_sender", None)
    if sender is not None and sender.is_alive():
        sender.force_close()
        sender.join(timeout_s)
