"""What `lstm-consumer evaluate` follows message by message, beside the learner's cumulative
scores: each predictor's hit curve and when it learned (`Curve`), and the anomaly tally
(`Tracker`).

>>> curve = Curve(keep=True)
>>> for message, hit in enumerate([None, True, False, True], start=1):
...     curve.push(message, hit)
>>> list(curve.rates)[1:], curve.msgs_to_99
([1.0, 0.5, 0.6666666666666666], None)
"""

from __future__ import annotations

import math
from array import array
from collections.abc import Sequence
from typing import TYPE_CHECKING

from consumer.anomalies import AnomalyTally
from consumer.core.rolling import Rolling
from consumer.core.scoring import PREDICTORS

if TYPE_CHECKING:
    from consumer.core.prediction import Prediction

__all__ = ["GOAL_HITS", "GOAL_WINDOW", "Curve", "Tracker"]

GOAL_WINDOW, GOAL_HITS = 100, 99  # "learned": 99 hits among the last 100 scored predictions


class Curve:
    """One predictor's hits as the messages go: the last 100 scored (a `Rolling`), their rate
    after every message when kept, and the first message at which 99 of the last 100 hit."""

    def __init__(self, keep: bool = False) -> None:
        self.window = Rolling(GOAL_WINDOW)
        self.keep = keep
        self.rates = array("d")  # NaN until a prediction is scored
        self.msgs_to_99: int | None = None  # 1-based index of that first message
        self.after_scored = self.after_hits = 0  # scored predictions after it

    def push(self, message: int, hit: bool | None) -> None:
        """Message `message` (1-based) scored a prediction (`hit`), or none (None)."""
        if hit is not None:
            if self.msgs_to_99 is not None:
                self.after_scored += 1
                self.after_hits += hit
            self.window.push(1.0 if hit else 0.0)
            if self.msgs_to_99 is None and self.window.full and self.window.sum() >= GOAL_HITS:
                self.msgs_to_99 = message
        if self.keep:
            self.rates.append(self.window.mean() if len(self.window) else math.nan)


class Tracker:
    """What the learner's cumulative scores cannot tell: per-message curves, when it learned."""

    def __init__(self, keep_curves: bool = False, anomalies: AnomalyTally | None = None) -> None:
        self.curves = {name: Curve(keep_curves) for name in PREDICTORS}
        self.anomalies = anomalies or AnomalyTally(g=1)
        self.messages = 0

    def update(
        self,
        predictions: Sequence[Prediction],
        tokens: Sequence[str] | None = None,
        flags: Sequence[bool] | None = None,
    ) -> None:
        self.anomalies.update(predictions, tokens, flags)
        for prediction in predictions:
            self.messages += 1
            hits = (prediction.previous_hit, prediction.previous_lstm_hit, prediction.previous_baseline_hit)
            for curve, hit in zip(self.curves.values(), hits, strict=True):
                curve.push(self.messages, hit)
