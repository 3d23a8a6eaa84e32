"""Every Prometheus metric of the consumer, in one registry, served on ``/metrics``.

Naming follows Prometheus's conventions: one prefix (``lstm_stream_``), base units in the name
(``_seconds``, ``_bytes``), counters ending in ``_total``, ratios in 0..1, no stream keys in
labels (``partition``, and ``predictor`` = published / lstm / baseline on the scores, so the
LSTM's own hit rate and the baseline's are always beside the published one). Children without
a partition exist from start-up; a partition's children are created when it is assigned, and
its gauges are removed when it leaves (another instance reports them then).

>>> m = Metrics(model={"window": 64}, version="0.1.0")
>>> m.partition_assigned(0)
>>> m.dead_letter("empty")
>>> b"lstm_stream_dead_letters_total{reason=\\"empty\\"} 1.0" in m.render()[0]
True
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from consumer.core.scoring import PREDICTORS, ROLLING
from consumer.records import REASONS

__all__ = ["PREFIX", "Metrics"]

PREFIX = "lstm_stream_"
WINDOWS = ("100", "1000", "all")
PROCESSING_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LOSS_SMOOTHING = 0.01  # weight of the newest training loss in the moving average


class Metrics:
    """The consumer's metrics; the service reports events, `render` serves them."""

    def __init__(self, model: Mapping[str, Any], version: str) -> None:
        self.registry = r = CollectorRegistry(auto_describe=True)
        p = ("partition",)
        self.messages = Counter(f"{PREFIX}messages_consumed", "Input records consumed", p, registry=r)
        self.predictions = Counter(f"{PREFIX}predictions", "Predictions published", p, registry=r)
        self.scored = Counter(
            f"{PREFIX}predictions_scored", "Predictions scored against the next token", p, registry=r
        )
        pp = ("partition", "predictor")
        self.hits = Counter(
            f"{PREFIX}prediction_hits",
            "Scored predictions that were right, per predictor: the published one, the LSTM, the baseline",
            pp,
            registry=r,
        )
        w = ("partition", "window", "predictor")
        self.hit_ratio = Gauge(
            f"{PREFIX}rolling_hit_ratio",
            "Hit rate over the last N scored predictions (all: cumulative), per predictor",
            w,
            registry=r,
        )
        self.log_loss = Gauge(
            f"{PREFIX}rolling_log_loss",
            "Mean log-loss (nats) over the last N scored predictions (all: cumulative), per predictor",
            w,
            registry=r,
        )
        self.loss = Gauge(
            f"{PREFIX}training_loss", "Moving average of the training loss (cross-entropy)", p, registry=r
        )
        self.vocabulary = Gauge(
            f"{PREFIX}vocabulary_tokens", "Distinct tokens in the vocabulary", p, registry=r
        )
        self.new_tokens = Counter(
            f"{PREFIX}new_tokens", "Tokens that were not in the vocabulary when they came", p, registry=r
        )
        self.recycled = Counter(
            f"{PREFIX}recycled_tokens",
            "New tokens that took the id of the least recently seen token (vocabulary full)",
            p,
            registry=r,
        )
        self.keys = Gauge(f"{PREFIX}stream_keys", "Stream keys the partition's learner holds", p, registry=r)
        self.evicted = Counter(
            f"{PREFIX}evicted_keys",
            "Stream keys evicted, least recently used, beyond --max-keys",
            p,
            registry=r,
        )
        self.lag = Gauge(
            f"{PREFIX}consumer_lag_messages", "Records between the position and the end", p, registry=r
        )
        self.snapshot_size = Gauge(
            f"{PREFIX}snapshot_size_bytes", "Size of the last snapshot written", p, registry=r
        )
        self.dead_letters = Counter(
            f"{PREFIX}dead_letters", "Records sent to the dead-letter topic", ("reason",), registry=r
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}batch_processing_seconds",
            "Time to process one poll's records of a partition",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.message_seconds = Histogram(
            f"{PREFIX}message_processing_seconds",
            "Processing time per record (its batch's time / records)",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}end_to_end_latency_seconds",
            "From the input record's timestamp to its prediction being produced",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.snapshot_seconds = Histogram(
            f"{PREFIX}snapshot_duration_seconds",
            "Time to snapshot and compress a learner",
            buckets=PROCESSING_BUCKETS,
            registry=r,
        )
        self.committed = Counter(
            f"{PREFIX}transactions_committed", "Kafka transactions committed", registry=r
        )
        self.aborted = Counter(f"{PREFIX}transactions_aborted", "Kafka transactions aborted", registry=r)
        self.rebalances = Counter(f"{PREFIX}rebalances", "Partition revocations and losses", registry=r)
        self.restarts = Counter(
            f"{PREFIX}session_restarts", "Kafka sessions restarted after a failure", registry=r
        )
        self.last_message = Gauge(
            f"{PREFIX}last_message_timestamp_seconds", "When the last record was processed", registry=r
        )
        self.assigned = Gauge(
            f"{PREFIX}assigned_partitions", "Input partitions assigned to this instance", registry=r
        )
        self.info = Info(f"{PREFIX}consumer", "Version and model settings", registry=r)
        self.info.info({"version": version, **{k: str(v) for k, v in model.items()}})
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co., Prometheus's standard names
        for reason in REASONS:
            self.dead_letters.labels(reason)
        # Totals the learner keeps itself (restored with it), exported as they grow:
        # (counter, labels after the partition, the total).
        self._learner_totals: tuple[tuple[Counter, tuple[str, ...], Callable[[Any], int]], ...] = (
            (self.scored, (), lambda learner: learner.score.scored),
            *((self.hits, (name,), _hits_of(name)) for name in PREDICTORS),
            (self.new_tokens, (), lambda learner: learner.vocab.new_tokens),
            (self.recycled, (), lambda learner: learner.vocab.recycled),
            (self.evicted, (), lambda learner: learner.evicted_keys),
        )
        self._partition_counters = (
            self.messages,
            self.predictions,
            self.new_tokens,
            self.recycled,
            self.evicted,
        )
        self._partition_gauges = (self.loss, self.vocabulary, self.keys, self.lag, self.snapshot_size)
        self._reported: dict[int, list[int]] = {}  # per partition: the learner totals already counted
        self._loss_avg: dict[int, float] = {}

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def partition_assigned(self, partition: int, learner: Any = None) -> None:
        """Create the partition's children; a restored learner's counts so far are not re-counted."""
        label = str(partition)
        for metric in (*self._partition_counters, *self._partition_gauges):
            metric.labels(label)
        self.scored.labels(label)
        for name in PREDICTORS:
            self.hits.labels(label, name)
            for window in WINDOWS:
                self.hit_ratio.labels(label, window, name)
                self.log_loss.labels(label, window, name)
        self._reported[partition] = [
            total(learner) if learner is not None else 0 for _, _, total in self._learner_totals
        ]
        if learner is not None:
            self._learner(partition, learner)
        self.assigned.inc()

    def partition_removed(self, partition: int) -> None:
        label = str(partition)
        for gauge in self._partition_gauges:
            _remove(gauge, label)
        for name in PREDICTORS:
            for window in WINDOWS:
                _remove(self.hit_ratio, label, window, name)
                _remove(self.log_loss, label, window, name)
        self._loss_avg.pop(partition, None)
        self._reported.pop(partition, None)
        self.assigned.dec()

    def batch(
        self, partition: int, records: Sequence[Any], predictions: Sequence[Any], learner: Any, seconds: float
    ) -> None:
        """One poll's records of a partition went through its learner."""
        label, now = str(partition), time.time()
        self.messages.labels(label).inc(len(records))
        self.batch_seconds.observe(seconds)
        per_message = seconds / len(records)
        for record in records:
            self.message_seconds.observe(per_message)
            if record.timestamp is not None and record.timestamp > 0:
                self.latency.observe(max(now - record.timestamp / 1000, 0.0))
        if predictions:
            self._predictions(partition, predictions)
        self._learner(partition, learner)
        self.last_message.set(now)

    def _predictions(self, partition: int, predictions: Sequence[Any]) -> None:
        label = str(partition)
        self.predictions.labels(label).inc(len(predictions))
        avg = self._loss_avg.get(partition)
        for p in predictions:
            if p.loss > 0:
                avg = p.loss if avg is None else avg + LOSS_SMOOTHING * (p.loss - avg)
        if avg is not None:
            self._loss_avg[partition] = avg
            self.loss.labels(label).set(avg)

    def _learner(self, partition: int, learner: Any) -> None:
        label = str(partition)
        for name, score in learner.scores.items():
            for window in ROLLING:
                self.hit_ratio.labels(label, str(window), name).set(score.rolling_hit_rate(window))
                self.log_loss.labels(label, str(window), name).set(score.rolling_log_loss(window))
            self.hit_ratio.labels(label, "all", name).set(score.hit_rate)
            self.log_loss.labels(label, "all", name).set(score.log_loss)
        self.vocabulary.labels(label).set(len(learner.vocab))
        self.keys.labels(label).set(len(learner.keys))
        totals = [total(learner) for _, _, total in self._learner_totals]
        reported = self._reported.setdefault(partition, totals)
        for (counter, labels, _), value, before in zip(self._learner_totals, totals, reported, strict=True):
            counter.labels(label, *labels).inc(max(value - before, 0))
        self._reported[partition] = totals

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def snapshot(self, partition: int, size: int, seconds: float) -> None:
        self.snapshot_size.labels(str(partition)).set(size)
        self.snapshot_seconds.observe(seconds)


def _hits_of(predictor: str) -> Callable[[Any], int]:
    return lambda learner: learner.scores[predictor].hits


def _remove(metric: Any, *labels: str) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)
