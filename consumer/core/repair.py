"""Outliers in a key's history: a token its context never led to, read out of later contexts.

An anomalous event in a stream (a foreign token inserted, or one that took the place of the
expected token) would otherwise sit in the key's history for the next L predictions: every
context that holds it is one the models never saw, so they guess badly until it has left the
window. A token is an *outlier* when the count model's longest context before it was seen at
least `MIN_SEEN` times, led to one follower g at least `TYPICAL` of them, and the token is not
g. An outlier X after the history (..., c) has three readings:

- kept: X belongs to the stream: (..., c, X);
- removed: X was inserted, the stream goes on as if after c: (..., c);
- imputed: X took g's place: (..., c, g).

Each reading starts from a prior, how often it won in this partition before (`Readings`), and
gains the log-probability the count model gives each next token of the key under it. Until one
leads by `MARGIN` nats (or X has left the count model's longest context, or another outlier
comes), the key is read, learned and predicted under the leading reading; then the history is
repaired to it for good. Streams without outliers never meet any of this, and where a rare
follower is real (text), "kept" wins and nothing changes.

>>> readings = Readings()
>>> [round(p, 3) for p in readings.prior()]
[-1.099, -1.099, -1.099]
>>> readings.record(REMOVED)
>>> pending = OutlierReading(serial=7, guess_id=3, guess_uid=2, scores=readings.prior())
>>> pending.leading(), READINGS[pending.leading()]
(1, 'removed')
>>> view([5, 6, 9, 4], [1, 4, 7, 8], pending, IMPUTED, guess=3)
([5, 6, 3, 4], [1, 4, 7, 8])
>>> view([5, 6, 9, 4], [1, 4, 7, 8], pending, REMOVED, guess=3)
([5, 6, 4], [1, 4, 8])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from consumer.core.count_model import CountModel, Followers
from consumer.core.vocab import NEW_ID

__all__ = [
    "IMPUTED",
    "KEPT",
    "MARGIN",
    "MIN_SEEN",
    "READINGS",
    "REMOVED",
    "TYPICAL",
    "OutlierReading",
    "Readings",
    "longest",
    "outlier",
    "probability",
    "view",
]

KEPT, REMOVED, IMPUTED = 0, 1, 2
READINGS = ("kept", "removed", "imputed")
MIN_SEEN = 8  # how often the longest context must have been seen for its followers to be judged
TYPICAL = 0.9  # the share of them its most frequent follower must have
MARGIN = math.log(20.0)  # the lead, in nats, that settles a reading


@dataclass(frozen=True)
class OutlierReading:
    """An outlier still being read: its message's serial, g, and each reading's score so far."""

    serial: int
    guess_id: int
    guess_uid: int
    scores: tuple[float, ...]

    def leading(self) -> int:
        """The reading with the best score (the earlier one on a tie: kept first)."""
        return max(range(len(self.scores)), key=lambda r: (self.scores[r], -r))

    def settled(self) -> bool:
        ranked = sorted(self.scores, reverse=True)
        return ranked[0] - ranked[1] >= MARGIN


class Readings:
    """How often each reading won in this partition: the prior of the next outlier's readings."""

    def __init__(self, wins: tuple[int, ...] = (0, 0, 0)) -> None:
        self.wins = list(wins)

    def prior(self) -> tuple[float, ...]:
        total = sum(self.wins) + len(self.wins)
        return tuple(math.log((w + 1) / total) for w in self.wins)

    def record(self, reading: int) -> None:
        self.wins[reading] += 1


def view(
    entries: list[int], serials: list[int], pending: OutlierReading, reading: int, guess: int
) -> tuple[list[int], list[int]]:
    """A history's entries (ids, or uids) and their serials under a reading of its pending
    outlier; `guess` is g as an entry of the same kind."""
    if reading == KEPT or pending.serial not in serials:
        return entries, serials
    at = len(serials) - 1 - serials[::-1].index(pending.serial)
    if reading == REMOVED:
        return entries[:at] + entries[at + 1 :], serials[:at] + serials[at + 1 :]
    return [*entries[:at], guess, *entries[at + 1 :]], serials


def longest(baseline: CountModel, context: tuple[int, ...]) -> Followers | None:
    """The followers of the longest counted suffix of `context`."""
    best = None
    for entry in baseline.matched(context):
        best = entry
    return best


def outlier(baseline: CountModel, context: tuple[int, ...], uid: int) -> tuple[int, int] | None:
    """(id, uid) of g when the token (`uid`) is an outlier after `context`, else None."""
    entry = longest(baseline, context)
    if entry is None or entry.total < MIN_SEEN:
        return None
    top = max(range(len(entry.counts)), key=entry.counts.__getitem__)
    if entry.counts[top] < TYPICAL * entry.total or entry.uids[top] == uid:
        return None
    return entry.ids[top], entry.uids[top]


def probability(baseline: CountModel, context: tuple[int, ...], uid: int, token_id: int, end: int) -> float:
    """The count model's probability of the token after `context`: each order blended with the
    ones below by Witten-Bell escapes, from a uniform over the classes in use, as
    `consumer.core.count_rows` blends them."""
    p = 1.0 / max(end - NEW_ID, 1)
    n, d = baseline.unigram_total, baseline.unigram_distinct
    if n:
        p = (float(baseline.unigram[token_id]) + d * p) / (n + d)
    for entry in baseline.matched(context):
        ids, counts, distinct = baseline.followers(entry)
        count = counts[ids.index(token_id)] if token_id in ids else 0
        p = (count + distinct * p) / (entry.total + distinct)
    return p
