"""Token vocabulary of one partition: grows as tokens arrive, up to a capacity, then OOV.

Id 0 pads windows of young keys, id 1 stands for every token past capacity (out of
vocabulary), ids 2.. are tokens in order of first appearance.

>>> v = Vocabulary(capacity=2)
>>> [v.encode(t) for t in ["4", "8", "4", "28"]]
[2, 3, 2, 1]
>>> v.oov_count, len(v), v.decode(3), v.decode(1)
(1, 2, '8', None)
"""

from __future__ import annotations

__all__ = ["OOV_ID", "PAD_ID", "Vocabulary"]

PAD_ID, OOV_ID = 0, 1
_FIRST = 2


class Vocabulary:
    def __init__(self, capacity: int, tokens: list[str] | None = None, oov_count: int = 0) -> None:
        self.capacity = capacity
        self.tokens: list[str] = list(tokens or [])
        self._ids = {t: i + _FIRST for i, t in enumerate(self.tokens)}
        self.oov_count = oov_count

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, token: str) -> int:
        """The token's id, adding it while there is room; OOV_ID (counted) past capacity."""
        found = self._ids.get(token)
        if found is not None:
            return found
        if len(self.tokens) >= self.capacity:
            self.oov_count += 1
            return OOV_ID
        new = len(self.tokens) + _FIRST
        self._ids[token] = new
        self.tokens.append(token)
        return new

    def decode(self, token_id: int) -> str | None:
        """The token of an id; None for OOV and padding."""
        return self.tokens[token_id - _FIRST] if token_id >= _FIRST else None

    @property
    def end(self) -> int:
        """One past the largest id in use."""
        return len(self.tokens) + _FIRST
