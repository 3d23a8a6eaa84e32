"""Every Prometheus metric of the consumer, in one registry, served on ``/metrics``.

Naming follows Prometheus's conventions: one prefix (``lstm_stream_``), base units in the name
(``_seconds``, ``_bytes``), counters ending in ``_total``, ratios in 0..1, no stream keys in
labels (``partition``, and ``predictor`` = published / lstm / baseline on the scores, so the
LSTM's own hit rate and the baseline's are always beside the published one).

Two kinds. The service's own events (dead letters, transactions, rebalances, timings) are
prometheus_client metrics it updates as they happen. Everything about a partition is read when
Prometheus scrapes (`PartitionCollector`): the learners keep their own totals, scores and sizes,
and the collector reads them from a copy of the assigned partitions, so the processing loop pays
nothing for them and a partition's series exist exactly while this instance holds it (another
instance reports them then). Per-partition counters count since this instance took the
partition: a restored learner's earlier counts are not counted again.

>>> m = Metrics(model={"window": 64}, version="0.1.0", partitions=dict)
>>> m.dead_letter("empty")
>>> b"lstm_stream_dead_letters_total{reason=\\"empty\\"} 1.0" in m.render()[0]
True
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from consumer.core.scoring import PREDICTORS, ROLLING
from consumer.records import REASONS

__all__ = ["PREFIX", "Metrics", "PartitionCollector"]

PREFIX = "lstm_stream_"
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
SURPRISE_BUCKETS = (0.01, 0.1, 0.5, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """The consumer's metrics: the service reports its events, `render` serves them with the partitions'."""

    def __init__(
        self,
        model: Mapping[str, Any],
        version: str,
        partitions: Callable[[], Mapping[int, Any]],
        deployment: Mapping[str, str] | None = None,
    ) -> None:
        """`deployment`: what tells this deployment from others in one Prometheus (its consumer
        group and topics), labels of `lstm_stream_consumer_info` beside the version and model."""
        self.registry = r = CollectorRegistry(auto_describe=True)
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
        self.surprise = Histogram(
            f"{PREFIX}surprise",  # in bits; promtool wants no "bits" in a name (it reads it as data)
            "How unexpected each input token was under its key's previous prediction: -log2 p (bits)",
            buckets=SURPRISE_BUCKETS,
            registry=r,
        )
        self.anomalies = Counter(
            f"{PREFIX}anomalies",
            "Inputs not among their key's previous --anomaly-top-g most likely tokens (0 while off)",
            registry=r,
        )
        self.feedback = Counter(
            f"{PREFIX}feedback",
            "Marks read from --feedback-topic (received), then applied, or refused (a dead letter)",
            ["outcome"],
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
        self.info = Info(f"{PREFIX}consumer", "Version and model settings", registry=r)
        self.info.info({"version": version, **(deployment or {}), **{k: str(v) for k, v in model.items()}})
        ProcessCollector(registry=r)  # process_resident_memory_bytes & co., Prometheus's standard names
        for reason in REASONS:
            self.dead_letters.labels(reason)
        for outcome in ("received", "applied", "refused"):
            self.feedback.labels(outcome)
        r.register(PartitionCollector(partitions))

    def render(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def batch(self, records: Sequence[Any], seconds: float, predictions: Sequence[Any] = ()) -> None:
        """One poll's records of a partition went through its learner (and made `predictions`)."""
        now = time.time()
        self.batch_seconds.observe(seconds)
        for prediction in predictions:
            if prediction.surprise_bits is not None:
                self.surprise.observe(prediction.surprise_bits)
        per_message = seconds / len(records)
        for record in records:
            self.message_seconds.observe(per_message)
            if record.timestamp is not None and record.timestamp > 0:
                self.latency.observe(max(now - record.timestamp / 1000, 0.0))
        self.last_message.set(now)

    def dead_letter(self, reason: str) -> None:
        self.dead_letters.labels(reason).inc()

    def snapshot(self, seconds: float) -> None:
        self.snapshot_seconds.observe(seconds)


Samples = Callable[[str, Any, dict[str, int]], Iterator[tuple[list[str], float]]]


def _one(value: Callable[[Any, dict[str, int]], float | None]) -> Samples:
    """One sample per partition (none while `value` is None)."""

    def samples(label: str, part: Any, since: dict[str, int]) -> Iterator[tuple[list[str], float]]:
        v = value(part, since)
        if v is not None:
            yield [label], v

    return samples


def _hits(label: str, part: Any, since: dict[str, int]) -> Iterator[tuple[list[str], float]]:
    for name in PREDICTORS:
        yield [label, name], since[f"hits/{name}"]


def _rolling(hit_ratio: bool) -> Samples:
    def samples(label: str, part: Any, since: dict[str, int]) -> Iterator[tuple[list[str], float]]:
        for name, score in list(part.learner.scores.items()):
            rolling = score.rolling_hit_rate if hit_ratio else score.rolling_log_loss
            for window in ROLLING:
                yield [label, str(window), name], rolling(window)
            yield [label, "all", name], score.hit_rate if hit_ratio else score.log_loss

    return samples


P, PP, PWP = ["partition"], ["partition", "predictor"], ["partition", "window", "predictor"]
# (counter?, name after the prefix, help, labels, samples)
PARTITION_METRICS: tuple[tuple[bool, str, str, list[str], Samples], ...] = (
    (True, "messages_consumed", "Input records consumed", P, _one(lambda part, _: part.consumed)),
    (True, "predictions", "Predictions published", P, _one(lambda _, since: since["predictions"])),
    (
        True,
        "predictions_scored",
        "Predictions scored against the next token",
        P,
        _one(lambda _, since: since["scored"]),
    ),
    (
        True,
        "prediction_hits",
        "Scored predictions that were right, per predictor: the published one, the LSTM, the baseline",
        PP,
        _hits,
    ),
    (
        False,
        "rolling_hit_ratio",
        "Hit rate over the last N scored predictions (all: cumulative), per predictor",
        PWP,
        _rolling(hit_ratio=True),
    ),
    (
        False,
        "rolling_log_loss",
        "Mean log-loss (nats) over the last N scored predictions (all: cumulative), per predictor",
        PWP,
        _rolling(hit_ratio=False),
    ),
    (
        False,
        "training_loss",
        "Moving average of the training loss (cross-entropy)",
        P,
        _one(lambda part, _: part.loss),
    ),
    (
        False,
        "vocabulary_tokens",
        "Distinct tokens in the vocabulary",
        P,
        _one(lambda part, _: len(part.learner.vocab)),
    ),
    (
        True,
        "new_tokens",
        "Tokens that were not in the vocabulary when they came",
        P,
        _one(lambda _, since: since["new_tokens"]),
    ),
    (
        True,
        "recycled_tokens",
        "New tokens that took the id of the least recently seen token (vocabulary full)",
        P,
        _one(lambda _, since: since["recycled"]),
    ),
    (
        False,
        "stream_keys",
        "Stream keys the partition's learner holds",
        P,
        _one(lambda part, _: len(part.learner.keys)),
    ),
    (
        True,
        "evicted_keys",
        "Stream keys evicted, least recently used, beyond --max-keys",
        P,
        _one(lambda _, since: since["evicted"]),
    ),
    (
        False,
        "consumer_lag_messages",
        "Records between the position and the end",
        P,
        _one(lambda part, _: part.lag),
    ),
    (
        False,
        "snapshot_size_bytes",
        "Size of the last snapshot written",
        P,
        _one(lambda part, _: part.snapshot_size or None),
    ),
)


class PartitionCollector:
    """Reads every assigned partition's learner and position when Prometheus scrapes.

    `partitions()` returns a copy of {partition: consumer.partition.Partition}; each counter
    takes the partition's `totals()`, its learner's totals since this instance took it.
    """

    def __init__(self, partitions: Callable[[], Mapping[int, Any]]) -> None:
        self.partitions = partitions

    def describe(self) -> list[Metric]:
        return [*(family for family, _ in self._families()), _assigned(0)]

    def collect(self) -> list[Metric]:
        families = self._families()
        held = sorted(dict(self.partitions()).items())  # the loop may take or drop one meanwhile
        for partition, part in held:
            since = part.totals()
            for family, samples in families:
                for labels, value in samples(str(partition), part, since):
                    family.add_metric(labels, value)
        assigned = GaugeMetricFamily(
            f"{PREFIX}assigned_partitions", "Input partitions assigned to this instance"
        )
        assigned.add_metric([], len(held))
        return [*(family for family, _ in families), assigned]

    @staticmethod
    def _families() -> list[tuple[CounterMetricFamily | GaugeMetricFamily, Samples]]:
        return [
            (
                (CounterMetricFamily if counter else GaugeMetricFamily)(
                    PREFIX + name, help_text, labels=labels
                ),
                samples,
            )
            for counter, name, help_text, labels, samples in PARTITION_METRICS
        ]


def _assigned(count: int) -> GaugeMetricFamily:
    return GaugeMetricFamily(
        f"{PREFIX}assigned_partitions", "Input partitions assigned to this instance", value=count
    )
