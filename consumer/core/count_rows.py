"""The count model's distributions for every message of a call, gathered sparse, made dense once.

For each message the learner needs two views of the count model: before the message (what it
predicted for it: the mixer learns from that) and after it (its prediction for the key's next
token), and the baseline's back-off distribution after it: `distributions` gives both. Each
view is, per order, the counts of the followers of the matched context. They are gathered
message by message as the model learns (cheap dict reads), then blended for the whole call in
a few array operations: p_o = a_o c_o + k_o p_(o-1) down to a uniform distribution over
the classes in use, with a_o = 1 / (n_o + d_o) and k_o = d_o / (n_o + d_o) (Witten-Bell), or
a_o = 0, k_o = 1 where the context has no counts. Every operation is elementwise per message,
so a message's distributions do not depend on the call it came in.

>>> from consumer.core.count_model import CountModel
>>> b = CountModel(orders=(1,), size=6, max_contexts=10)
>>> b.assign(3, uid=0)
>>> rows = CountRows(count=1, orders=(1,), size=6)
>>> rows.gather(0, BEFORE, b, (-2,), end=4)
>>> b.learn((-2,), 0, 3)
>>> rows.gather(0, AFTER, b, (-2,), end=4)
>>> backoff, blended = rows.distributions(top=1)
>>> [round(float(p), 3) for p in backoff[0, 2:4]]
[0.5, 0.5]
>>> [[round(float(p), 3) for p in row] for row in blended[0, AFTER][:, 2:4]]
[[0.25, 0.75], [0.125, 0.875]]
"""

from __future__ import annotations

import numpy as np

from consumer.core.count_model import CountModel
from consumer.core.vocab import FIRST_ID, NEW_ID

__all__ = ["AFTER", "BEFORE", "CountRows"]

BEFORE, AFTER = 0, 1


class CountRows:
    def __init__(self, count: int, orders: tuple[int, ...], size: int) -> None:
        """`orders`: the count model's context lengths; row 0 is order 0, row r order orders[r-1]."""
        self.orders, self.size = orders, size
        self.rows = rows = len(orders) + 1
        self.counts = np.zeros((count, 2, rows, size), np.float32)
        self._stats: list[int] = [0] * (count * 2 * rows * 2)  # per row: its count, distinct
        self._ends: list[int] = [FIRST_ID] * (count * 2)
        self._at: list[int] = []  # flat positions in `counts` of the followers gathered
        self._values: list[float] = []
        self._repeats: list[int] = []  # messages whose view before is the last one's after

    def gather(self, i: int, side: int, baseline: CountModel, context: tuple[int, ...], end: int) -> None:
        """Message i's view `side` (BEFORE or AFTER): the counts after `context`, classes < end,
        one row per suffix the count model matches (`CountModel.matched`)."""
        view = i * 2 + side
        self.counts[i, side, 0] = baseline.unigram[: self.size]  # ids past the call's reach: none in use
        stats, at, values, size = self._stats, self._at, self._values, self.size
        first = view * self.rows * 2
        stats[first], stats[first + 1] = baseline.unigram_total, baseline.unigram_distinct
        base = view * self.rows * size
        for row, entry in enumerate(baseline.matched(context), start=1):
            start = base + row * size
            ids, counts, distinct = baseline.followers(entry)
            at.extend([start + token_id for token_id in ids])
            values.extend(counts)
            stats[first + 2 * row], stats[first + 2 * row + 1] = entry.total, distinct
        self._ends[view] = end

    def repeat(self, i: int, end: int) -> None:
        """Message i's view before it is message i-1's view after it (the same key, nothing
        learned nor recycled in between), with the vocabulary as it is now (`end`)."""
        rows2 = self.rows * 2
        self._stats[i * 2 * rows2 : (i * 2 + 1) * rows2] = self._stats[(i * 2 - 1) * rows2 : i * 2 * rows2]
        self._ends[i * 2] = end
        self._repeats.append(i)

    @property
    def stats(self) -> np.ndarray:
        """(count, 2, rows, 2): per view and row, the context's count and distinct followers."""
        return np.array(self._stats, np.float64).reshape(-1, 2, self.rows, 2)

    @property
    def ends(self) -> np.ndarray:
        return np.array(self._ends, np.int64).reshape(-1, 2)

    def _place(self) -> None:
        """Write the gathered follower counts into their rows, all at once, then the repeats."""
        if self._at:
            self.counts.reshape(-1)[np.array(self._at)] = self._values
            self._at, self._values = [], []
        if self._repeats:
            repeats = np.array(self._repeats)
            self.counts[repeats, BEFORE] = self.counts[repeats - 1, AFTER]
            self._repeats = []

    def distributions(self, top: int) -> tuple[np.ndarray, np.ndarray]:
        """The baseline's back-off distribution after each message (`_backoff` over rows
        0..top), and the blended rows of both views (`_blend`), from the counts gathered. Once
        per call: the blend is made in place of the counts, after the back-off has read them."""
        self._place()
        backoff = self._backoff(top)
        return backoff, self._blend()

    def _backoff(self, top: int) -> np.ndarray:
        """The baseline's distribution after each message (count, width) float32: PPM method C
        with exclusions over rows 0..top, the classic back-off model. The longest context with
        counts gives each follower c / (n + d) and passes the escape d / (n + d) down; each
        shorter one shares that among the classes not seen above it; a uniform over the rest
        ends it. Its most likely token is the most frequent follower of the longest context
        seen before. Classes from `width` (one past the largest id in use) on are left out."""
        ends = self.ends[:, AFTER]
        width = self.width
        counts = self.counts[:, AFTER, :, :width]
        classes = np.arange(width)
        open_ = (classes >= NEW_ID) & (classes < ends[:, None])  # not yet given mass
        out = np.zeros((len(counts), width), np.float64)
        mass = np.ones((len(counts), 1))
        for row in range(top, -1, -1):
            here = np.where(open_, counts[:, row], 0.0)
            n = here.sum(axis=1, keepdims=True)
            d = np.count_nonzero(here, axis=1)[:, None]
            share = np.where(n > 0, mass / np.maximum(n + d, 1.0), 0.0)
            out += share * here
            mass = np.where(n > 0, mass * d / np.maximum(n + d, 1.0), mass)
            open_ &= here == 0
        out += mass * open_ / np.maximum(open_.sum(axis=1, keepdims=True), 1)
        return out.astype(np.float32)

    @property
    def width(self) -> int:
        """One past the largest class in use in the call: the columns worth computing."""
        return max(self._ends) if self._ends else FIRST_ID

    def _blend(self) -> np.ndarray:
        """The distributions (count, 2, rows, width) float32, zero for classes not in use, made
        in place of the counts."""
        width = self.width
        counts = self.counts[..., :width]
        stats, ends = self.stats, self.ends
        n, d = stats[..., 0], stats[..., 1]
        seen = n > 0
        total = np.where(seen, n + d, 1.0)
        scale = np.where(seen, 1.0 / total, 0.0).astype(np.float32)[..., None]
        keep = np.where(seen, d / total, 1.0).astype(np.float32)[..., None]
        classes = np.arange(width)
        in_use = (classes >= NEW_ID) & (classes < ends[..., None])  # (count, 2, width)
        lower = (in_use / np.maximum(ends - NEW_ID, 1)[..., None]).astype(np.float32)
        for row in range(len(self.orders) + 1):
            part = counts[:, :, row]
            part *= scale[:, :, row]
            lower = part + keep[:, :, row] * lower  # counts of ids not in use are 0
            counts[:, :, row] = lower
        return counts
