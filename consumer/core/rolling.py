"""The one rolling window of the project: the last `size` values, their sum and mean.

Every windowed figure (the scores' rolling hit rate and log-loss, `evaluate`'s learning curve,
the service's status line) is one of these, or the tail of one; none keeps a window of its
own. A push is one append; sums are computed exactly (`math.fsum`) when read, so a window's
figures never depend on the order of past additions (a restored window reads the same).

>>> r = Rolling(3)
>>> for value in [1.0, 0.0, 1.0, 1.0]:
...     r.push(value)
>>> r.mean(), r.sum(), r.sum(last=1), len(r), r.full
(0.6666666666666666, 2.0, 1.0, 3, True)
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from itertools import islice

__all__ = ["Rolling"]


class Rolling:
    """The last `size` values pushed."""

    def __init__(self, size: int, values: Iterable[float] = ()) -> None:
        self.values: deque[float] = deque(values, maxlen=size)
        self.size = size

    @property
    def full(self) -> bool:
        return len(self.values) == self.size

    def __len__(self) -> int:
        return len(self.values)

    def push(self, value: float) -> None:
        self.values.append(value)

    def tail(self, last: int | None = None) -> Iterable[float]:
        """The newest `last` values (all when None)."""
        count = len(self.values)
        if last is None or last >= count:
            return self.values
        return islice(self.values, count - last, count)

    def sum(self, last: int | None = None) -> float:
        return math.fsum(self.tail(last))

    def count(self, last: int | None = None) -> int:
        return len(self.values) if last is None else min(last, len(self.values))

    def mean(self, last: int | None = None) -> float:
        """The mean of the newest `last` values (all when None); 0.0 while empty."""
        count = self.count(last)
        return self.sum(last) / count if count else 0.0
