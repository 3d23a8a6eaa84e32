"""Prequential scores: every prediction is scored when its key's next token arrives.

One `Score` per predictor (`PREDICTORS`): the published mixture, the LSTM alone, the baseline.
A hit needs the guessed token to be the one that came; a token that was not in the vocabulary
when the guess was made is never a hit, and its log-loss is that of the NEW class.

>>> s = Score()
>>> for hit, loss in [(True, 0.1), (False, 1.6), (True, 0.2)]:
...     s.update(hit, loss)
>>> round(s.hit_rate, 4), s.scored, round(s.rolling_hit_rate(100), 4), round(s.log_loss, 3)
(0.6667, 3, 0.6667, 0.633)
>>> pooled_hit_rate([s, s], 1000)
0.6666666666666666
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np

from consumer.core.rolling import Rolling
from consumer.core.snapshot_read import Section

__all__ = ["PREDICTORS", "ROLLING", "Score", "pooled_hit_rate"]

PREDICTORS = ("published", "lstm", "baseline")
ROLLING = (100, 1000)


class Score:
    """Hit rate and log-loss, cumulative and over the last 100 and 1,000 scored predictions."""

    def __init__(self) -> None:
        self.scored = 0
        self.hits = 0
        self.log_loss_sum = 0.0
        self._hits = Rolling(ROLLING[-1])  # the shorter windows are its tail
        self._loss = Rolling(ROLLING[-1])

    def update(self, hit: bool, loss: float) -> None:
        """One scored prediction: was it a hit, and its log-loss (nats)."""
        self.scored += 1
        self.hits += hit
        self.log_loss_sum += loss
        self._hits.push(1.0 if hit else 0.0)
        self._loss.push(loss)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.scored if self.scored else 0.0

    @property
    def log_loss(self) -> float:
        return self.log_loss_sum / self.scored if self.scored else 0.0

    def rolling_hit_rate(self, n: int) -> float:
        return self._hits.mean(n)

    def rolling_hits(self, n: int) -> int:
        """Hits among the last n scored predictions."""
        return round(self._hits.sum(n))

    def rolling_scored(self, n: int) -> int:
        return self._hits.count(n)

    def rolling_log_loss(self, n: int) -> float:
        return self._loss.mean(n)

    # -- snapshot --------------------------------------------------------------------------
    def save(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        fields = {"scored": self.scored, "hits": self.hits, "log_loss_sum": self.log_loss_sum}
        arrays: dict[str, np.ndarray] = {
            "hits": np.array(self._hits.values, np.uint8),
            "losses": np.array(self._loss.values, np.float64),
        }
        return fields, arrays

    @classmethod
    def load(cls, section: Section) -> Score:
        score = cls()
        score.scored = section.integer("scored")
        score.hits = section.integer("hits", high=score.scored)
        value = section.fields.get("log_loss_sum")
        if type(value) is not float or not 0 <= value < float("inf"):
            raise section.error(f"log_loss_sum must be a finite float >= 0, got {value!r}")
        score.log_loss_sum = value
        length = min(ROLLING[-1], score.scored)
        hits = section.array("hits", np.uint8, (length,))
        losses = section.array("losses", np.float64, (length,))
        if hits.size and hits.max() > 1:
            raise section.error("rolling hits must be 0 or 1")
        if not np.isfinite(losses).all() or (losses.size and losses.min() < 0):
            raise section.error("rolling log-losses must be finite and >= 0")
        score._hits = Rolling(ROLLING[-1], hits.astype(np.float64).tolist())
        score._loss = Rolling(ROLLING[-1], losses.tolist())
        return score


def pooled_hit_rate(scores: Iterable[Score], n: int) -> float | None:
    """Hit rate over the last n scored predictions of each score, pooled; None if none."""
    hits = scored = 0
    for score in scores:
        hits += score.rolling_hits(n)
        scored += score.rolling_scored(n)
    return hits / scored if scored else None
