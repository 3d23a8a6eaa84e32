"""What the running service has done, for its periodic one-line status in the log.

The status line is what a user watches: throughput since the last line, the published hit rate
over the last 1,000 scored predictions (all partitions together) beside the LSTM's own and the
baseline's, lag, dead letters. Hit rates come from the learners' own scores
(`consumer.core.scoring.Score`), so they survive restarts with the learners. Events also go to
the Prometheus metrics (`consumer.metrics`), which read the partitions themselves at scrape time.

>>> stats = Stats(status_interval_s=0, metrics=None)
>>> stats.dead_letter("empty", partition=0, offset=7); stats.dead_letters
1
>>> stats.status_line({}, 10.0, [])
'status: 0 msgs in 10.0 s (0 msgs/s), hit rate last 1000: n/a (LSTM n/a, baseline n/a), lag 0, dead letters 1'
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from consumer.core.scoring import pooled_hit_rate
from consumer.logs import fields

if TYPE_CHECKING:
    from consumer.core.learner import Learner
    from consumer.core.prediction import Prediction
    from consumer.metrics import Metrics

__all__ = ["Stats"]

log = logging.getLogger("consumer.status")
WINDOW = 1000


class Stats:
    """Counts for the status line; `maybe_report` logs it every `status_interval_s`."""

    def __init__(self, status_interval_s: float, metrics: Metrics | None) -> None:
        self.status_interval_s = status_interval_s
        self.metrics = metrics
        self.messages = 0
        self.predictions = 0
        self.dead_letters = 0
        self.anomalies_found = 0
        self._last_report = time.monotonic()
        self._messages_at_report = 0

    def processed(
        self, partition: int, records: Sequence[Any], predictions: Sequence[Prediction], seconds: float
    ) -> None:
        self.messages += len(records)
        self.predictions += len(predictions)
        if self.metrics:
            self.metrics.batch(records, seconds, predictions)

    def anomalies(self, count: int) -> None:
        self.anomalies_found += count
        if self.metrics and count:
            self.metrics.anomalies.inc(count)

    def feedback(self, applied: int, refused: int) -> None:
        """Marks received, then applied by a learner or refused (each also a dead letter)."""
        if self.metrics:
            counts = {"received": applied + refused, "applied": applied, "refused": refused}
            for outcome, count in counts.items():
                if count:
                    self.metrics.feedback.labels(outcome).inc(count)

    def dead_letter(self, reason: str, partition: int, offset: int) -> None:
        self.dead_letters += 1
        if self.metrics:
            self.metrics.dead_letter(reason)
        log.debug("dead letter: %s", reason, extra=fields(partition=partition, offset=offset))

    def dead_letter_truncated(self, partition: int, offset: int, topic: str) -> None:
        log.warning(
            "dead letter too large for %s: sent without its value",
            topic,
            extra=fields(partition=partition, offset=offset),
        )

    def snapshot(self, seconds: float) -> None:
        if self.metrics:
            self.metrics.snapshot(seconds)

    def committed(self) -> None:
        if self.metrics:
            self.metrics.committed.inc()

    def aborted(self) -> None:
        if self.metrics:
            self.metrics.aborted.inc()

    def rebalanced(self) -> None:
        if self.metrics:
            self.metrics.rebalances.inc()

    def restarted(self) -> None:
        if self.metrics:
            self.metrics.restarts.inc()

    def maybe_report(
        self, lag: Callable[[], dict[int, int]], learners: Callable[[], Sequence[Learner]]
    ) -> None:
        if not self.status_interval_s:
            return
        now = time.monotonic()
        elapsed = now - self._last_report
        if elapsed < self.status_interval_s:
            return
        self._last_report = now
        held = learners()
        log.info(self.status_line(lag(), elapsed, held), extra=fields(**self._status_fields(held)))
        self._messages_at_report = self.messages

    def _status_fields(self, learners: Sequence[Learner]) -> dict[str, Any]:
        return {"messages": self.messages, "predictions": self.predictions, "partitions": len(learners)}

    def status_line(self, lag: dict[int, int], elapsed: float, learners: Sequence[Learner]) -> str:
        count = self.messages - self._messages_at_report
        published, lstm, baseline = (_rolling(learners, name) for name in ("published", "lstm", "baseline"))
        return (
            f"status: {count} msgs in {elapsed:.1f} s ({count / elapsed:.0f} msgs/s), "
            f"hit rate last {WINDOW}: {published} (LSTM {lstm}, baseline {baseline}), "
            f"lag {sum(lag.values())}, dead letters {self.dead_letters}"
        )


def _rolling(learners: Sequence[Learner], predictor: str) -> str:
    """Hit rate over the last WINDOW scored predictions of each partition, pooled."""
    rate = pooled_hit_rate((learner.scores[predictor] for learner in learners), WINDOW)
    return "n/a" if rate is None else f"{rate:.1%}"
