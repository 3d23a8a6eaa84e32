"""What each message of a call sees of the vocabulary, for its window and its replayed windows.

A window is made of (id, serial) entries. For the message at time t, an entry is read as NEW
once its id was assigned again after the entry's own message (the id now names another token),
and an entry is learned as the target NEW when its id was assigned by that very message (the
token's first sighting: it was not in the vocabulary). Both are questions about assignments of
an id in a range of serials, answered for a whole call at once from the assignments before the
call and the (sorted) assignments made during it, so that the answer for each message is the
one it would get if it came alone: bit-identical however the call is cut.

>>> before = np.array([-1, -1, -1, 0, 1, -1])  # ids 3 and 4 assigned by messages 0 and 1
>>> views = StaleIds(before, events=[(3, 5)], first=5, count=2)  # message 5 recycles id 3
>>> ids, serials = np.array([[4, 3], [3, 3]]), np.array([[1, 2], [2, 5]])
>>> inputs, targets = views.encode(ids, serials)
>>> inputs.tolist(), targets.tolist()
([[4, 2], [2, 3]], [[2], [2]])
"""

from __future__ import annotations

import numpy as np

from consumer.core.vocab import NEW_ID

__all__ = ["StaleIds"]

SPAN = 1 << 40  # serials stay below this: an (id, serial) pair packs into one int64


class StaleIds:
    """Whether each (id, serial) entry of a call's windows still names its token for the
    message reading it, and whether it was the token's first sighting."""

    def __init__(
        self, assigned_before: np.ndarray, events: list[tuple[int, int]], first: int, count: int
    ) -> None:
        """`assigned_before`: `Vocabulary.assigned_at` before the call; `events`: the (id, serial)
        assignments made during it; `first`: the serial of its first message of `count`."""
        self.before = assigned_before
        self.times = np.arange(first, first + count, dtype=np.int64)
        self.events = np.sort(np.array([i * SPAN + s for i, s in events], np.int64)) if events else None

    def _assigned_between(self, ids: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
        """Whether each id was assigned by a message with a serial in [low, high]."""
        before = self.before[ids]
        found = (before >= low) & (before <= high)
        if self.events is not None:
            packed = ids.astype(np.int64) * SPAN
            at = np.searchsorted(self.events, packed + low)
            nearest = self.events[np.minimum(at, len(self.events) - 1)]
            found |= (at < len(self.events)) & (nearest <= packed + high)
        return np.asarray(found, bool)

    def encode(self, ids: np.ndarray, serials: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Entries (count, ..., L+1) of each message's windows as the model's inputs (same shape)
        and the targets of their first L positions (count, ..., L)."""
        times = self.times.reshape((-1,) + (1,) * (ids.ndim - 1))
        stale = self._assigned_between(ids, serials + 1, times)
        inputs = np.where(stale, NEW_ID, ids).astype(np.int32)
        tail, tail_serials = ids[..., 1:], serials[..., 1:]
        first_sighting_or_stale = self._assigned_between(tail, tail_serials, times)
        targets = np.where(first_sighting_or_stale, NEW_ID, tail).astype(np.int32)
        return inputs, targets
