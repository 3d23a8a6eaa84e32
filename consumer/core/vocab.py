"""Token vocabulary of one partition: it lives with the stream.

Ids 0-2 are reserved: PAD fills the window of a young key, BOS marks the start of every key's
history, NEW is the class "a token not in the vocabulary" (what the model predicts before a
token is first seen, and the target it learns then). Tokens take ids from 3 in order of first
appearance; once `capacity` are in use, a new token takes the id of the least recently seen
one, whose rows in the model the learner then re-initialises. Each id remembers the serial of
the message that assigned it (`assigned_at`), which tells any older reference to the id (in a
window, a count table, a pending prediction) that it now means another token.

>>> v = Vocabulary(capacity=2)
>>> [v.encode(t, serial) for serial, t in enumerate(["4", "8", "4", "28"])]
[(3, True, -1), (4, True, -1), (3, False, -1), (4, True, 1)]
>>> v.recycled, v.new_tokens, v.decode(4), v.decode(NEW_ID), len(v)
(1, 3, '28', None, 2)
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

import numpy as np

from consumer.core.snapshot_read import Section, check_range

__all__ = ["BOS_ID", "FIRST_ID", "NEW_ID", "PAD_ID", "RESERVED", "Vocabulary"]

PAD_ID, BOS_ID, NEW_ID = 0, 1, 2
FIRST_ID = 3
RESERVED = FIRST_ID
ALWAYS = -1  # assigned_at of the reserved ids: valid since before any message


class Vocabulary:
    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._ids: OrderedDict[str, int] = OrderedDict()  # least recently seen first
        self.tokens: list[str | None] = [None] * (capacity + RESERVED)  # by id
        self.assigned_at = np.full(capacity + RESERVED, ALWAYS, np.int64)
        self.new_tokens = 0  # arrivals of a token that was not in the vocabulary
        self.recycled = 0  # of those, the ones that took the id of another token

    def __len__(self) -> int:
        return len(self._ids)

    @property
    def end(self) -> int:
        """One past the largest id in use: ids in use are exactly [FIRST_ID, end)."""
        return len(self._ids) + RESERVED

    def encode(self, token: str, serial: int) -> tuple[int, bool, int]:
        """(id, new, displaced) for the token of message `serial`. new: it was not in the
        vocabulary; displaced: the uid (`assigned_at`) of the token whose id it took, or -1."""
        found = self._ids.get(token)
        if found is not None:
            self._ids.move_to_end(token)
            return found, False, -1
        self.new_tokens += 1
        displaced = -1
        if len(self._ids) < self.capacity:
            token_id = len(self._ids) + RESERVED
        else:
            _, token_id = self._ids.popitem(last=False)
            displaced = int(self.assigned_at[token_id])
            self.recycled += 1
        self._ids[token] = token_id
        self.tokens[token_id] = token
        self.assigned_at[token_id] = serial
        return token_id, True, displaced

    def decode(self, token_id: int) -> str | None:
        """The token an id stands for now; None for the reserved ids."""
        return self.tokens[token_id]

    # -- snapshot --------------------------------------------------------------------------
    def save(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        ids = np.fromiter(self._ids.values(), np.int32, len(self._ids))
        fields = {"tokens": list(self._ids), "new_tokens": self.new_tokens, "recycled": self.recycled}
        return fields, {"ids": ids, "assigned_at": self.assigned_at[ids]}

    @classmethod
    def load(cls, section: Section, capacity: int, messages: int) -> Vocabulary:
        tokens = section.sequence("tokens", capacity)
        if not all(isinstance(t, str) for t in tokens) or len(set(tokens)) != len(tokens):
            raise section.error("tokens must be distinct strings")
        count = len(tokens)
        ids = section.array("ids", np.int32, (count,))
        assigned = section.array("assigned_at", np.int64, (count,))
        if not np.array_equal(np.sort(ids), np.arange(RESERVED, RESERVED + count)):
            raise section.error(f"ids must be {RESERVED}..{RESERVED + count - 1}, each once")
        check_range("vocabulary assigned_at", assigned, 0, max(messages, 1))
        if np.unique(assigned).size != count:
            raise section.error("two ids assigned by the same message")
        vocab = cls(capacity)
        vocab.new_tokens, vocab.recycled = section.integer("new_tokens"), section.integer("recycled")
        if vocab.new_tokens != count + vocab.recycled:
            raise section.error("new_tokens must be the tokens held plus those recycled")
        if vocab.recycled and count < capacity:
            raise section.error("ids recycled before the vocabulary was full")
        for token, token_id, serial in zip(tokens, ids.tolist(), assigned.tolist(), strict=True):
            vocab._ids[token] = token_id
            vocab.tokens[token_id] = token
            vocab.assigned_at[token_id] = serial
        return vocab
