"""Prequential scores: every prediction is scored when its key's next token arrives.

>>> s = Score()
>>> for hit, p in [(True, 0.9), (False, 0.2), (True, 0.8)]:
...     s.update(hit, p)
>>> round(s.hit_rate, 4), s.scored, round(s.rolling_hit_rate(100), 4)
(0.6667, 3, 0.6667)
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

__all__ = ["ROLLING", "Score"]

ROLLING = (100, 1000)
_MIN_PROB = 1e-12


class _Rolling:
    """Sum of the last n values, O(1) per update."""

    def __init__(self, size: int, values: list[float] | None = None, total: float | None = None) -> None:
        self.values: deque[float] = deque(values or [], maxlen=size)
        # A restored running total keeps its rounding history, so later means stay bit-identical.
        self.total = math.fsum(self.values) if total is None else total

    def push(self, value: float) -> None:
        if len(self.values) == self.values.maxlen:
            self.total -= self.values[0]
        self.values.append(value)
        self.total += value

    def mean(self) -> float:
        return self.total / len(self.values) if self.values else 0.0


class Score:
    """Hit rate and log-loss, cumulative and over the last 100 and 1,000 scored predictions."""

    def __init__(self) -> None:
        self.scored = 0
        self.hits = 0
        self.log_loss_sum = 0.0
        self._hits = {n: _Rolling(n) for n in ROLLING}
        self._loss = {n: _Rolling(n) for n in ROLLING}

    def update(self, hit: bool, probability_of_actual: float | None = None) -> None:
        self.scored += 1
        self.hits += hit
        for roll in self._hits.values():
            roll.push(1.0 if hit else 0.0)
        if probability_of_actual is not None:
            loss = -math.log(max(probability_of_actual, _MIN_PROB))
            self.log_loss_sum += loss
            for roll in self._loss.values():
                roll.push(loss)

    @property
    def hit_rate(self) -> float:
        return self.hits / self.scored if self.scored else 0.0

    @property
    def log_loss(self) -> float:
        return self.log_loss_sum / self.scored if self.scored else 0.0

    def rolling_hit_rate(self, n: int) -> float:
        return self._hits[n].mean()

    def rolling_hits(self, n: int) -> int:
        """Hits among the last n scored predictions."""
        return round(self._hits[n].total)

    def rolling_log_loss(self, n: int) -> float:
        return self._loss[n].mean()

    def to_dict(self) -> dict[str, Any]:
        return {
            "scored": self.scored,
            "hits": self.hits,
            "log_loss_sum": self.log_loss_sum,
            "hits_window": {str(n): list(r.values) for n, r in self._hits.items()},
            "loss_window": {str(n): list(r.values) for n, r in self._loss.items()},
            "hits_total": {str(n): r.total for n, r in self._hits.items()},
            "loss_total": {str(n): r.total for n, r in self._loss.items()},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Score:
        score = cls()
        score.scored, score.hits, score.log_loss_sum = data["scored"], data["hits"], data["log_loss_sum"]
        hits_total, loss_total = data.get("hits_total", {}), data.get("loss_total", {})
        score._hits = {n: _Rolling(n, data["hits_window"][str(n)], hits_total.get(str(n))) for n in ROLLING}
        score._loss = {n: _Rolling(n, data["loss_window"][str(n)], loss_total.get(str(n))) for n in ROLLING}
        return score
