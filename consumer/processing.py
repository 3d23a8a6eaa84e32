"""One poll's records through the partitions' learners, several partitions at once.

Contract. `Processor.process(batch, checkpoint)` takes what one `poll` returned, by partition.
For each partition, one task: decode every record (invalid ones become dead letters), pass the
valid ones to the partition's learner in ONE call, encode the predictions. The tasks of
different partitions run at the same time on up to --workers threads: TensorFlow releases the GIL
inside its compiled calls, so one process uses as many cores as it has partitions to learn. The
calling thread waits for every task, then sends each partition's dead letters and predictions
through the open checkpoint, partitions in poll order, records in offset order.

So a partition is only ever learned by one thread at a time, in offset order, and everything a
poll produced belongs to the one open checkpoint: per-partition results are those of a single
thread, and one transaction per commit interval holds. Only the calling thread touches Kafka.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumer.records import Decoder, Rejected, dead_letter_headers, encode_prediction, fit_dead_letter

if TYPE_CHECKING:
    from consumer.checkpoint import Checkpoint
    from consumer.core.learner import Learner, Prediction
    from consumer.settings import RunSettings
    from consumer.stats import Stats

__all__ = ["Partition", "Processor"]

LOSS_SMOOTHING = 0.01  # weight of the newest training loss in the moving average


@dataclass
class Partition:
    """One assigned input partition: its learner and where it stands."""

    learner: Learner
    next_offset: int  # the next input offset to process
    dirty: bool = False  # changed (processed or reset) since its last snapshot
    lag: int | None = None  # records between next_offset and the partition's end, at the last poll
    consumed: int = 0  # input records processed by this instance (dead letters included)
    loss: float | None = None  # moving average of the training loss
    snapshot_size: int = 0  # bytes of its last snapshot
    counted_from: dict[str, int] = field(default_factory=dict)  # its learner's totals when it came


@dataclass
class _Done:
    """What a partition's task made: sent by the calling thread."""

    records: list[Any]
    rejected: list[tuple[Any, Rejected]] = field(default_factory=list)
    predictions: list[Prediction] = field(default_factory=list)
    values: list[tuple[bytes | None, bytes]] = field(default_factory=list)  # (key, prediction record)
    seconds: float = 0.0


class Processor:
    """Runs each partition's learner call of a poll on a worker thread, sends on the caller's."""

    def __init__(self, settings: RunSettings, stats: Stats, workers: int) -> None:
        self.settings, self.stats = settings, stats
        self.decoder = Decoder(
            settings.value_format, settings.value_field, settings.max_value_bytes, settings.max_key_bytes
        )
        self.workers = max(workers, 1)
        self._pool = ThreadPoolExecutor(self.workers, "learner") if self.workers > 1 else None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def process(
        self,
        batch: dict[int, list[Any]],
        partitions: dict[int, Partition],
        checkpoint: Checkpoint,
        dead_letter_limit: int | None,
        lag: Callable[[int], int | None],
    ) -> None:
        """Learn and predict every record of `batch` ({partition: records}) and send the results."""
        work = [(p, partitions[p], records) for p, records in batch.items() if records and p in partitions]
        if self._pool is None or len(work) < 2:
            done = [self._task(part.learner, records) for _, part, records in work]
        else:
            futures = [self._pool.submit(self._task, part.learner, records) for _, part, records in work]
            done = [future.result() for future in futures]
        for (p, part, records), result in zip(work, done, strict=True):
            self._send(p, part, result, checkpoint, dead_letter_limit)
            part.next_offset = records[-1].offset + 1
            part.consumed += len(records)
            part.lag = lag(p)
            _smooth_loss(part, result.predictions)
            checkpoint.processed(p, part)
            self.stats.processed(p, records, result.predictions, result.seconds)

    def _task(self, learner: Learner, records: list[Any]) -> _Done:
        """On a worker: decode, learn and predict, encode. Touches only this partition's learner."""
        started = time.perf_counter()
        done = _Done(records)
        valid: list[Any] = []
        tokens: list[tuple[str | None, str]] = []
        for record in records:
            decoded = self.decoder.decode(record.key, record.value)
            if isinstance(decoded, Rejected):
                done.rejected.append((record, decoded))
            else:
                valid.append(record)
                tokens.append(decoded)
        done.predictions = learner.learn_predict_many(tokens) if tokens else []
        for record, (key, _), p in zip(valid, tokens, done.predictions, strict=True):
            value = encode_prediction(
                key,
                record.partition,
                record.offset,
                p.predicted,
                p.probability,
                p.model_step,
                p.previous_hit,
                p.baseline,
                p.lstm,
                p.lstm_probability,
            )
            done.values.append((record.key, value))
        done.seconds = time.perf_counter() - started
        return done

    def _send(
        self, partition: int, part: Partition, done: _Done, checkpoint: Checkpoint, limit: int | None
    ) -> None:
        s = self.settings
        for record, rejected in done.rejected:
            headers = dead_letter_headers(
                rejected, s.input_topic, partition, record.offset, record.headers or []
            )
            value, headers = fit_dead_letter(record.key, record.value, headers, limit)
            if value is None and record.value is not None:
                self.stats.dead_letter_truncated(partition, record.offset, s.dead_letter_topic)
            checkpoint.send(s.dead_letter_topic, record.key, value, headers)
            self.stats.dead_letter(rejected.reason, partition, record.offset)
        for key, value in done.values:
            checkpoint.send(s.output_topic, key, value)


def _smooth_loss(part: Partition, predictions: list[Prediction]) -> None:
    avg = part.loss
    for p in predictions:
        if p.loss > 0:
            avg = p.loss if avg is None else avg + LOSS_SMOOTHING * (p.loss - avg)
    part.loss = avg
