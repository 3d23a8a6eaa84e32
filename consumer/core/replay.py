"""Recent training windows, replayed a few at a time beside each new one (strict mode).

A row is a window's ids and the serials of their messages, so that a replayed row sees the
vocabulary as it is now (an id recycled since reads as NEW). Sampling uses a seeded generator
whose state is part of the learner's, so a restored learner samples what the original would.

>>> buffer = Replay(rows=4, width=2, seed=1)
>>> ids = np.arange(12).reshape(6, 2)
>>> rows, serials = buffer.sample_along(ids, ids, count=3)
>>> buffer.filled, buffer.next, rows.shape, bool((rows[0] == ids[0]).all())
(4, 2, (6, 3, 2), True)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from consumer.core.snapshot_read import Section, SnapshotError, check_range, foreign_errors

__all__ = ["Replay"]


class Replay:
    def __init__(self, rows: int, width: int, seed: int) -> None:
        self.ids = np.zeros((rows, width), np.int32)
        self.serials = np.zeros((rows, width), np.int64)
        self.filled = 0
        self.next = 0
        self.rng = np.random.default_rng(seed)

    def sample_along(self, ids: np.ndarray, serials: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
        """Remember each of a call's windows (N, W) in turn, and after each one draw `count`
        rows uniformly, with replacement, from those remembered so far: (N, count, W) each.
        The same draws as one call per window would make (the generator's stream is consumed
        in the same order)."""
        rows, n = len(self.ids), len(ids)
        i = np.arange(n)[:, None]
        filled = np.minimum(self.filled + i + 1, rows)
        slots = (self.rng.random((n, count)) * filled).astype(np.int64)
        # The call wrote slot s last at message j = i - ((next + i - s) mod rows), if j >= 0.
        written = i - (self.next + i - slots) % rows
        pick = np.where(written >= 0, rows + written, slots)
        out_ids = np.concatenate([self.ids, ids])[pick]
        out_serials = np.concatenate([self.serials, serials])[pick]
        tail = np.arange(max(n - rows, 0), n)
        self.ids[(self.next + tail) % rows] = ids[tail]
        self.serials[(self.next + tail) % rows] = serials[tail]
        self.next = (self.next + n) % rows
        self.filled = min(self.filled + n, rows)
        return out_ids, out_serials

    # -- snapshot --------------------------------------------------------------------------
    def save(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        fields = {"filled": self.filled, "next": self.next, "rng": self.rng.bit_generator.state}
        return fields, {"ids": self.ids[: self.filled], "serials": self.serials[: self.filled]}

    @classmethod
    def load(cls, section: Section, rows: int, width: int, seed: int, end: int, messages: int) -> Replay:
        replay = cls(rows, width, seed)
        replay.filled = section.integer("filled", high=rows)
        replay.next = section.integer("next", high=rows - 1)
        if replay.filled < rows and replay.next != replay.filled:
            raise section.error("next must equal filled until the buffer fills")
        ids = section.array("ids", np.int32, (replay.filled, width))
        serials = section.array("serials", np.int64, (replay.filled, width))
        check_range("replay", ids, 0, end)
        check_range("replay serials", serials, 0, max(messages, 1))
        replay.ids[: replay.filled], replay.serials[: replay.filled] = ids, serials
        state = section.fields.get("rng")
        if not isinstance(state, dict):
            raise SnapshotError("corrupt snapshot: replay.rng must be a generator state")
        with foreign_errors("corrupt snapshot: replay.rng"):
            replay.rng.bit_generator.state = state
        return replay
