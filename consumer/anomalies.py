"""Anomaly figures of `lstm-consumer evaluate`: the rate, and against labels precision and recall.

An input is an anomaly when its token is not among its key's previous G most likely classes
(`Prediction.rank` > G, as the service's --anomaly-top-g flags it). From message `start` on (the
ones before are the learning), the tally counts the scored inputs and the flagged ones, and
with a label per message (True: a real anomaly) the true and false positives and the misses.

>>> from consumer.core.learner import Prediction
>>> def at(rank): return Prediction(None, "a", 1.0, 1, None, "a", 0.0, "a", 1.0, None, None, rank=rank)
>>> tally = AnomalyTally(g=1, start=1, labels=[False, True, False, True])
>>> tally.update([at(None), at(3), at(2), at(1)])
>>> tally.results()["anomalies"], tally.results()["anomaly_precision"], tally.results()["anomaly_recall"]
(2, 0.5, 0.5)
>>> parse_label("anomaly"), parse_label("0"), parse_label("maybe")
(True, False, None)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumer.core.prediction import Prediction

__all__ = ["LABELS", "AnomalyTally", "parse_label"]

LABELS = {
    **dict.fromkeys(("1", "true", "yes", "anomaly", "anomalous"), True),
    **dict.fromkeys(("0", "false", "no", "normal", ""), False),
}


def parse_label(text: str) -> bool | None:
    """A label column's value: True (an anomaly), False (normal), None if it is neither."""
    return LABELS.get(text.strip().lower())


@dataclass
class AnomalyTally:
    g: int
    start: int = 0  # 0-based index of the first message counted
    labels: Sequence[bool] | None = None
    messages: int = 0
    scored: int = 0  # counted messages whose key had a previous prediction
    flagged: int = 0
    true_positives: int = 0
    labelled: int = 0  # counted messages labelled anomalies

    def update(self, predictions: Sequence[Prediction]) -> None:
        for prediction in predictions:
            index, self.messages = self.messages, self.messages + 1
            if index < self.start:
                continue
            label = bool(self.labels[index]) if self.labels is not None else False
            flagged = prediction.rank is not None and prediction.rank > self.g
            self.scored += prediction.rank is not None
            self.flagged += flagged
            self.labelled += label
            self.true_positives += flagged and label

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "anomaly_top_g": self.g,
            "anomaly_from": self.start,
            "anomalies": self.flagged,
            "anomaly_rate": self.flagged / self.scored if self.scored else None,
        }
        if self.labels is not None:
            tp = self.true_positives
            precision = tp / self.flagged if self.flagged else None
            recall = tp / self.labelled if self.labelled else None
            f1 = None
            if precision is not None and recall is not None:
                f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            out.update(
                {
                    "labelled_anomalies": self.labelled,
                    "anomaly_true_positives": tp,
                    "anomaly_precision": precision,
                    "anomaly_recall": recall,
                    "anomaly_f1": f1,
                }
            )
        return out
