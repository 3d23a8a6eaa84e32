"""A partition's learner when this instance takes the partition: restored, or fresh.

Contract: `take(wanted)` returns a `Partition` for each wanted partition, and positions the
consumer at the offset that learner continues from. A partition with a snapshot on the state
topic gets that learner, at the snapshot's offset (which agrees with the committed offset under
exactly-once). Without one, or once with --reset-state, a new learner starts at the group's
committed offset, or where --auto-offset-reset says when there is none. A snapshot that cannot
be read, or was written by another model, is a `FatalError`: it is never silently replaced.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from kafka import KafkaConsumer, TopicPartition

from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.core.snapshot import restore
from consumer.core.snapshot_read import SnapshotError
from consumer.logs import fields
from consumer.partition import Partition
from consumer.settings import RunSettings
from consumer.state import read_states
from consumer.watchdog import deadline

__all__ = ["FatalError", "Restorer"]

log = logging.getLogger("consumer.service")


class FatalError(RuntimeError):
    """A failure a restart cannot fix (a refused snapshot, a fenced instance): exit 1."""


class Restorer:
    """Builds the partitions' learners; remembers which partitions --reset-state has reset."""

    def __init__(
        self, settings: RunSettings, config: LearnerConfig, new_learner: Callable[[], Learner]
    ) -> None:
        self.settings, self.config, self.new_learner = settings, config, new_learner
        self.reset_done: set[int] = set()  # reset once per process, not at every reassignment

    def take(self, consumer: KafkaConsumer, wanted: list[int]) -> dict[int, Partition]:
        s = self.settings
        fresh = [p for p in wanted if s.reset_state and p not in self.reset_done]
        with deadline(s.transaction_timeout_s, f"reading the state topic {s.state_topic}"):
            stored = read_states(
                s, [p for p in wanted if p not in fresh], s.client_kwargs(), s.transaction_timeout_s
            )
        taken = {}
        for p in wanted:
            tp = TopicPartition(s.input_topic, p)
            state = stored.get(p)
            if state is None:
                taken[p] = self._fresh(consumer, tp, reset=p in fresh)
                continue
            try:
                learner = restore(state.snapshot(), self.config, into=self.new_learner())
            except SnapshotError as exc:
                raise FatalError(
                    f"partition {p}: the stored learner (state topic {s.state_topic}, offset "
                    f"{state.state_offset}) is refused: {exc}. Start with --reset-state to discard it."
                ) from None
            consumer.seek(tp, state.offset)
            taken[p] = Partition.restored(learner, state.offset)
            taken[p].feedback_offset = self._feedback_from(consumer, p, state.feedback_offset)
            log.info(
                "learner restored",
                extra=fields(
                    partition=p, offset=state.offset, messages=learner.messages, bytes=len(state.value)
                ),
            )
        return taken

    def _fresh(self, consumer: KafkaConsumer, tp: TopicPartition, reset: bool) -> Partition:
        """A new learner, from the group's committed offset (or --auto-offset-reset without one).

        Seeking explicitly matters after an aborted transaction: the fetch position is already
        past the records the aborted transaction processed.
        """
        with deadline(self.settings.transaction_timeout_s, "reading the committed offset"):
            committed = consumer.committed(tp)
            if committed is not None:
                consumer.seek(tp, committed)
            elif self.settings.auto_offset_reset == "earliest":
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek_to_end(tp)
            offset = consumer.position(tp)
        part = Partition.fresh(self.new_learner(), offset, reset)
        part.feedback_offset = self._feedback_from(consumer, tp.partition, None, to_end=reset)
        if reset:  # the fresh state is written at the next commit, so the reset persists
            self.reset_done.add(tp.partition)
            log.warning("learner reset (--reset-state)", extra=fields(partition=tp.partition, offset=offset))
        else:
            log.info("no stored learner: starting fresh", extra=fields(partition=tp.partition, offset=offset))
        return part

    def _feedback_from(
        self, consumer: KafkaConsumer, partition: int, stored: int | None, to_end: bool = False
    ) -> int | None:
        """Position the partition's feedback records (with --anomaly-top-g): at the snapshot's
        offset, else the group's committed one; a new or reset learner flagged nothing the
        marks before it name, so it starts at the end."""
        if not self.settings.anomaly_top_g:
            return None
        tp = TopicPartition(self.settings.feedback_topic, partition)
        with deadline(self.settings.transaction_timeout_s, "positioning the feedback topic"):
            committed = None if to_end or stored is not None else consumer.committed(tp)
            where = stored if stored is not None else committed
            if where is not None:
                consumer.seek(tp, where)
            else:
                consumer.seek_to_end(tp)
            return int(consumer.position(tp))
