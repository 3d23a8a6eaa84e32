"""One poll's records through the partitions' learners, several partitions at once.

Contract. The session hands each poll to `Processor.submit`, by partition. For each partition,
one call on a worker thread: decode every record (invalid ones become dead letters), pass the
valid ones to the partition's learner (in calls of --max-poll-records), encode the predictions
(and the anomaly records, with --anomaly-top-g). Up to --workers calls run at once, each
partition's alone (TensorFlow releases the GIL inside its compiled calls), while the session's
thread goes on polling: one process uses as many cores as it has partitions to learn, and its
Kafka work overlaps the learning. A partition's next records wait for its call in flight, so a
partition is learned by one thread at a time, in offset order: its results are those of a
single thread. Results are sent only by the session's thread (`collect`, `drain`), through the
open checkpoint: dead letters, then predictions in offset order, then anomalies. Each key's
latest prediction is staged on its partition for the query endpoint, which sees it once it is
committed (`consumer.query`). The session drains every call before it commits (at the commit
interval, at a revocation, at stop), so everything learned belongs to the checkpoint that
commits it: one transaction per interval holds. An abort or a loss discards the calls in flight
(their partitions are restored from the state topic).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumer.core.feedback import FeedbackError
from consumer.feedback_records import Mark, decode_mark
from consumer.partition import Partition
from consumer.query import Staged
from consumer.records import (
    INSTANCE_HEADER,
    Decoder,
    Rejected,
    dead_letter_headers,
    encode_anomaly,
    encode_prediction,
    fit_dead_letter,
    is_anomaly,
)

if TYPE_CHECKING:
    from consumer.checkpoint import Checkpoint
    from consumer.core.learner import Learner
    from consumer.core.prediction import Prediction
    from consumer.settings import RunSettings
    from consumer.stats import Stats

__all__ = ["Processor", "Target"]


@dataclass
class _Done:
    """What a partition's task made: sent by the calling thread."""

    records: list[Any]
    rejected: list[tuple[Any, Rejected]] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    values: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (key, prediction record)
    anomalies: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (key, anomaly record)
    latest: dict[str | None, Staged] = field(default_factory=dict)  # each key's last prediction
    marks: list[Any] = field(default_factory=list)  # feedback records, applied before `records`
    refused: list[tuple[Any, Rejected]] = field(default_factory=list)  # marks not applied
    seconds: float = 0.0


@dataclass
class Target:
    """Where a finished call's results go: the open checkpoint, and what the session knows."""

    checkpoint: Checkpoint
    dead_letter_limit: int | None
    lag: Callable[[int], int | None]


class Processor:
    """Each partition's learner calls on worker threads, their results sent on the caller's.

    At most one call per partition is in flight: a partition's next records wait for its
    previous call, so its records are learned in offset order. Calls of different partitions
    overlap each other, and the caller's polling and sending.
    """

    def __init__(self, settings: RunSettings, stats: Stats, workers: int) -> None:
        self.settings, self.stats = settings, stats
        self._prediction_headers = [(INSTANCE_HEADER, settings.instance_name.encode())]
        self.decoder = Decoder(
            settings.value_format,
            settings.value_field,
            settings.max_value_bytes,
            settings.max_key_bytes,
            settings.key_field,
        )
        self.workers = max(workers, 1)
        self._pool = ThreadPoolExecutor(self.workers, "learner")
        self._inflight: dict[int, tuple[Partition, list[Any], Future[_Done]]] = {}
        self._marks_of: dict[int, list[Any]] = {}  # the feedback records of the calls in flight

    @property
    def busy(self) -> bool:
        return bool(self._inflight)

    def close(self) -> None:
        self.discard()
        self._pool.shutdown(wait=True)

    def submit(
        self,
        batch: dict[int, list[Any]],
        partitions: dict[int, Partition],
        target: Target,
        marks: dict[int, list[Any]] | None = None,
    ) -> None:
        """Start the learner call of each partition in `batch` ({partition: records}), its
        feedback records in `marks` applied first."""
        marks = marks or {}
        for p in sorted(set(batch) | set(marks)):
            part, records, its_marks = partitions.get(p), batch.get(p, []), marks.get(p, [])
            if not (records or its_marks) or part is None:
                continue
            if p in self._inflight:  # its previous records first
                self._finish(p, target)
            future = self._pool.submit(self._task, part.learner, records, its_marks)
            self._inflight[p] = (part, records, future)

    def collect(self, target: Target, wait_s: float = 0.0) -> None:
        """Send the results of the calls that have finished, waiting up to `wait_s` for one."""
        if wait_s and self._inflight:
            wait([future for _, _, future in self._inflight.values()], wait_s, FIRST_COMPLETED)
        for p in [p for p, (_, _, future) in self._inflight.items() if future.done()]:
            self._finish(p, target)

    def drain(self, target: Target) -> None:
        """Wait for every call in flight and send its results (before a commit)."""
        for p in list(self._inflight):
            self._finish(p, target)

    def discard(self, partitions: set[int] | None = None) -> None:
        """Wait for the calls in flight (of `partitions`, default all) and drop their results:
        their partitions are being restored or dropped, so nothing of them may be sent."""
        for p in [p for p in self._inflight if partitions is None or p in partitions]:
            _, _, future = self._inflight.pop(p)
            with contextlib.suppress(Exception):
                future.result()

    def _finish(self, p: int, target: Target) -> None:
        part, records, future = self._inflight.pop(p)
        result = future.result()
        self._send(p, result, target)
        part.advance(records, result.predictions, result.latest, target.lag(p))
        if result.marks:
            part.feedback_offset = result.marks[-1].offset + 1
        target.checkpoint.processed(p, part)
        if records:  # not a call of feedback records only
            self.stats.processed(p, records, result.predictions, result.seconds)

    def _task(self, learner: Learner, records: list[Any], marks: list[Any]) -> _Done:
        """On a worker: apply the marks, then decode, learn and predict, judge, encode. Touches
        only this partition's learner."""
        started = time.perf_counter()
        done = _Done(records, marks=marks)
        for record in marks:
            mark = decode_mark(record.key, record.value)
            if isinstance(mark, Mark):
                try:
                    learner.feedback.mark(mark.offset, mark.key, mark.normal)
                    continue
                except FeedbackError as exc:
                    mark = Rejected(exc.reason, str(exc))
            done.refused.append((record, mark))
        valid: list[Any] = []
        tokens: list[tuple[str | None, str]] = []
        for record in records:
            decoded = self.decoder.decode(record.key, record.value)
            if isinstance(decoded, Rejected):
                done.rejected.append((record, decoded))
            else:
                valid.append(record)
                tokens.append(decoded)
        step = self.settings.max_poll_records  # the learner's programs are padded to this many
        for start in range(0, len(tokens), step):
            done.predictions += learner.learn_predict_many(tokens[start : start + step])
        s, g = self.settings, self.settings.anomaly_top_g
        for record, (key, token), p in zip(valid, tokens, done.predictions, strict=True):
            # Keyed as the stream was learned: the record key, or the --key-field value's.
            out_key = key.encode() if s.key_field and key is not None else record.key
            done.values.append((out_key, encode_prediction(p, record.partition, record.offset)))
            done.latest[key] = Staged(record.offset, p.model_step, p.top)
            if g and learner.feedback.judge(record.offset, key, p.context, token, is_anomaly(p, g)):
                value = encode_anomaly(p, token, s.input_topic, record.partition, record.offset, g)
                done.anomalies.append((out_key, value))
        done.seconds = time.perf_counter() - started
        return done

    def _send(self, partition: int, done: _Done, target: Target) -> None:
        s, checkpoint, limit = self.settings, target.checkpoint, target.dead_letter_limit
        refused = [(s.feedback_topic, record, rejected) for record, rejected in done.refused]
        self.stats.feedback(len(done.marks) - len(done.refused), len(done.refused))
        for topic, record, rejected in [*refused, *((s.input_topic, *r) for r in done.rejected)]:
            headers = dead_letter_headers(rejected, topic, partition, record.offset, record.headers or [])
            value, headers = fit_dead_letter(record.key, record.value, headers, limit)
            if value is None and record.value is not None:
                self.stats.dead_letter_truncated(partition, record.offset, s.dead_letter_topic)
            checkpoint.send(s.dead_letter_topic, record.key, value, headers)
            self.stats.dead_letter(rejected.reason, partition, record.offset)
        for key, value in done.values:
            checkpoint.send(s.output_topic, key, value, self._prediction_headers)
        for key, value in done.anomalies:
            checkpoint.send(s.anomaly_topic, key, value, self._prediction_headers)
        self.stats.anomalies(len(done.anomalies))
