"""A cheap baseline beside the LSTM: next-token counts per context, backing off to shorter ones.

It predicts the most frequent follower of the longest recent context (up to `order` tokens)
that it has seen before; the LSTM's lift is its hit rate minus this one's.

>>> b = BackoffBaseline(order=2)
>>> history = []
>>> for t in [4, 4, 8, 4, 4, 8, 4]:
...     b.learn(history, t)
...     history.append(t)
>>> b.predict(history)
4
>>> b.predict(history + [4])
8
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["BackoffBaseline"]


class BackoffBaseline:
    def __init__(self, order: int, max_contexts: int = 200_000) -> None:
        self.order = order
        self.max_contexts = max_contexts
        # context (tuple of ids, most recent last) -> [counts by next id, best id, best count]
        self.table: dict[tuple[int, ...], list[Any]] = {}

    def learn(self, history: Sequence[int], token: int) -> None:
        """Count `token` after each suffix of `history` of length 0..order."""
        start = max(0, len(history) - self.order)
        tail = tuple(history[start:])
        for cut in range(len(tail) + 1):
            context = tail[cut:]
            entry = self.table.get(context)
            if entry is None:
                if len(self.table) >= self.max_contexts:
                    continue
                entry = self.table[context] = [{}, token, 0]
            counts = entry[0]
            n = counts.get(token, 0) + 1
            counts[token] = n
            if n > entry[2]:
                entry[1], entry[2] = token, n

    def predict(self, history: Sequence[int]) -> int | None:
        """Most frequent follower of the longest known suffix of `history`; None before any data."""
        start = max(0, len(history) - self.order)
        tail = tuple(history[start:])
        for cut in range(len(tail) + 1):
            entry = self.table.get(tail[cut:])
            if entry is not None:
                return int(entry[1])
        return None

    def to_rows(self) -> list[list[int]]:
        """Flat rows [len, *context, next, count, is_best] for snapshots (no pickle)."""
        rows = []
        for context, (counts, best, _) in self.table.items():
            for token, n in counts.items():
                rows.append([len(context), *context, token, n, int(token == best)])
        return rows

    @classmethod
    def from_rows(cls, order: int, rows: list[list[int]]) -> BackoffBaseline:
        baseline = cls(order)
        for row in rows:
            size = row[0]
            context, token, n, best = tuple(row[1 : 1 + size]), row[1 + size], row[2 + size], row[3 + size]
            entry = baseline.table.setdefault(context, [{}, token, 0])
            entry[0][token] = n
            if best:  # ties keep the token that reached the count first, as recorded
                entry[1], entry[2] = token, n
        return baseline
