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

Over time (a stream is scored as it runs, so its figures move): with `segment`, the same
figures per consecutive segment of that many counted messages; and for the tokens first seen
from `start` on and always labelled normal (a new normal behaviour), how many messages after
its first appearance each raised its last alarm: its time to silence.

>>> tally = AnomalyTally(g=1, start=1, labels=[False] * 7, segment=3)
>>> ranks, tokens = [None, 1, 2, 1, 5, 2, 1], ["a", "a", "NEW", "a", "NEW", "NEW", "a"]
>>> tally.update([at(rank) for rank in ranks], tokens)
>>> [(s["from"], s["alarms"], s["alarms_per_1000"]) for s in tally.results()["anomaly_segments"]]
[(1, 1, 333.3333333333333), (4, 2, 666.6666666666666)]
>>> tally.results()["new_normal"]["tokens"]
[{'token': 'NEW', 'first': 2, 'alarms': 3, 'last_alarm': 5, 'messages_to_silence': 3}]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from consumer.core.feedback import Transition
    from consumer.core.keys import Key
    from consumer.core.prediction import Prediction

__all__ = ["LABELS", "AnomalyTally", "LabelReader", "NewToken", "Segment", "parse_label"]

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
    segment: int = 0  # > 0: the figures per consecutive segment of this many counted messages
    segments: list[Segment] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)  # tokens met so far
    new: dict[str, NewToken] = field(default_factory=dict)  # first met from `start` on

    def flags(self, prediction: Prediction) -> bool:
        """Whether its rank alone flags the input: not among the key's previous G."""
        return prediction.rank is not None and prediction.rank > self.g

    def update(
        self,
        predictions: Sequence[Prediction],
        tokens: Sequence[str] | None = None,
        flags: Sequence[bool] | None = None,
    ) -> None:
        """Count the next messages' predictions, flagged as `flags` says (default: by rank);
        with their `tokens`, follow the new ones."""
        for i, prediction in enumerate(predictions):
            index, self.messages = self.messages, self.messages + 1
            token = tokens[i] if tokens is not None else None
            if index < self.start:
                if token is not None:
                    self.seen.add(token)
                continue
            label = bool(self.labels[index]) if self.labels is not None else False
            flagged = flags[i] if flags is not None else self.flags(prediction)
            self.scored += prediction.rank is not None
            self.flagged += flagged
            self.labelled += label
            self.true_positives += flagged and label
            if self.segment:
                if not self.segments or self.segments[-1].messages == self.segment:
                    self.segments.append(Segment(index))
                self.segments[-1].count(flagged, label)
            if token is not None:
                self._follow(index, token, flagged, label)

    def _follow(self, index: int, token: str, flagged: bool, label: bool) -> None:
        if token not in self.seen:
            self.seen.add(token)
            self.new[token] = NewToken(token, index)
        new = self.new.get(token)
        if new is not None:
            new.normal = new.normal and not label
            if flagged:
                new.alarms, new.last_alarm = new.alarms + 1, index

    def results(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "anomaly_top_g": self.g,
            "anomaly_from": self.start,
            "anomalies": self.flagged,
            "anomaly_rate": self.flagged / self.scored if self.scored else None,
        }
        if self.labels is not None:
            tp = self.true_positives
            out.update(
                {
                    "labelled_anomalies": self.labelled,
                    "anomaly_true_positives": tp,
                    **_quality(tp, self.flagged, self.labelled, "anomaly_"),
                }
            )
        if self.segment:
            out["anomaly_segments"] = [s.results(self.labels is not None) for s in self.segments]
        if self.labels is not None and (self.new or self.seen):
            tokens = [t.results() for t in self.new.values() if t.normal]
            silences = [t["messages_to_silence"] for t in tokens if t["messages_to_silence"] is not None]
            out["new_normal"] = {
                "count": len(tokens),
                "alarms": sum(t["alarms"] for t in tokens),
                "max_messages_to_silence": max(silences, default=None),
                "tokens": tokens[:NEW_SHOWN],
            }
        return out


NEW_SHOWN = 20  # new normal tokens listed in the results, first met first


@dataclass
class LabelReader:
    """A reader of the alerts, replayed from the labels: the first `first` false alarms of each
    transition (`per="transition"`), or of the whole stream from message `start` on
    (`per="stream"`), are marked normal, as someone reading them would."""

    labels: Sequence[bool]
    first: int
    per: str = "transition"
    start: int = 0
    given: Counter[Any] = field(default_factory=Counter)

    def marks(self, alarms: Sequence[tuple[int, Key, Transition]]) -> list[tuple[int, Key, bool]]:
        """(index, key, normal) for the alarms (index, key, transition) this reader marks."""
        out = []
        for index, key, transition in alarms:
            which = transition if self.per == "transition" else None
            if index >= self.start and not self.labels[index] and self.given[which] < self.first:
                self.given[which] += 1
                out.append((index, key, True))
        return out


def _quality(tp: int, flagged: int, labelled: int, prefix: str = "") -> dict[str, float | None]:
    precision = tp / flagged if flagged else None
    recall = tp / labelled if labelled else None
    f1 = None
    if precision is not None and recall is not None:
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {f"{prefix}precision": precision, f"{prefix}recall": recall, f"{prefix}f1": f1}


@dataclass
class Segment:
    """The anomaly figures of consecutive counted messages, from message `start` (0-based)."""

    start: int
    messages: int = 0
    alarms: int = 0
    true_positives: int = 0
    labelled: int = 0

    def count(self, flagged: bool, label: bool) -> None:
        self.messages += 1
        self.alarms += flagged
        self.labelled += label
        self.true_positives += flagged and label

    def results(self, labelled: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "from": self.start,
            "messages": self.messages,
            "alarms": self.alarms,
            "alarms_per_1000": 1000 * self.alarms / self.messages,
        }
        if labelled:
            out["labelled_anomalies"] = self.labelled
            out.update(_quality(self.true_positives, self.alarms, self.labelled))
        return out


@dataclass
class NewToken:
    """A token first met at message `first` (counted): its alarms, and whether every one of its
    messages was labelled normal (a new normal behaviour; True without labels)."""

    token: str
    first: int
    alarms: int = 0
    last_alarm: int | None = None
    normal: bool = True

    def results(self) -> dict[str, Any]:
        silence = None if self.last_alarm is None else self.last_alarm - self.first
        return {
            "token": self.token,
            "first": self.first,
            "alarms": self.alarms,
            "last_alarm": self.last_alarm,
            "messages_to_silence": silence,
        }
