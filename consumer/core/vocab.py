"""Token vocabulary of one partition: it lives with the stream, and grows with it.

Ids 0-2 are reserved: PAD fills the window of a young key, BOS marks the start of every key's
history, NEW is the class "a token not in the vocabulary" (what the model predicts before a
token is first seen, and the target it learns then). Tokens take ids from 3 in order of first
appearance. The vocabulary holds up to a *limit* that grows in steps (`steps`: 256, 512, 1024,
... up to `capacity`): once the limit is reached, a new token either takes the id of the least
recently seen token, whose rows in the model the learner then re-initialises (*recycled*), or,
when that token is still live, raises the limit to the next step (*grown*). A token is live when
it recurs (seen at least twice) and has not been away longer than `LIVE_GAPS` times its own mean
gap between sightings: words and URL paths that keep coming back grow the vocabulary, ids that
are seen in one burst and never again are recycled, so a stream of endless new ids stays at the
first step, and its program at the narrowest width. Each id remembers the serial of the message
that assigned it (`assigned_at`), which tells any older reference to the id (in a window, a
count table, a pending prediction) that it now means another token.

>>> v = Vocabulary(capacity=2)
>>> [v.encode(t, serial) for serial, t in enumerate(["4", "8", "4", "28"])]
[(3, True, -1), (4, True, -1), (3, False, -1), (4, True, 1)]
>>> v.recycled, v.new_tokens, v.decode(4), v.decode(NEW_ID), len(v)
(1, 3, '28', None, 2)
>>> v = Vocabulary(capacity=4, first_step=2)  # limits 2, then 4
>>> [v.encode(t, serial)[0] for serial, t in enumerate(["a", "b", "c", "d", "c", "d", "e"])]
[3, 4, 3, 4, 3, 4, 5]
>>> v.limit, v.recycled, v.grown  # "a", "b" seen once: recycled; "c" recurs: the limit grows
(4, 2, 1)
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from consumer.core.snapshot_read import Section, check_range

__all__ = [
    "BOS_ID",
    "FIRST_ID",
    "FIRST_STEP",
    "LIVE_GAPS",
    "NEW_ID",
    "PAD_ID",
    "RESERVED",
    "Vocabulary",
    "steps",
]

PAD_ID, BOS_ID, NEW_ID = 0, 1, 2
FIRST_ID = 3
RESERVED = FIRST_ID
ALWAYS = -1  # assigned_at of the reserved ids: valid since before any message
FIRST_STEP = 256  # the vocabulary's first limit; it doubles from there up to the capacity
LIVE_GAPS = 4.0  # a token away longer than this many of its mean gaps between sightings is gone


def steps(capacity: int, first_step: int | None = None) -> tuple[int, ...]:
    """The limits the vocabulary grows through: `first_step` (default FIRST_STEP), doubling,
    then `capacity`.

    >>> steps(3000), steps(256), steps(100)
    ((256, 512, 1024, 2048, 3000), (256,), (100,))
    """
    out, step = [], first_step or FIRST_STEP
    while step < capacity:
        out.append(step)
        step *= 2
    return (*out, capacity)


class Vocabulary:
    def __init__(self, capacity: int, first_step: int | None = None) -> None:
        self.capacity = capacity
        self.steps = steps(capacity, first_step)
        self._ids: OrderedDict[str, int] = OrderedDict()  # least recently seen first
        self.tokens: list[str | None] = [None] * (capacity + RESERVED)  # by id
        self.assigned_at = np.full(capacity + RESERVED, ALWAYS, np.int64)
        self.sightings = np.zeros(capacity + RESERVED, np.int64)  # of the token holding the id
        self.last_seen = np.full(capacity + RESERVED, ALWAYS, np.int64)  # serial, likewise
        self.new_tokens = 0  # arrivals of a token that was not in the vocabulary
        self.recycled = 0  # of those, the ones that took the id of another token
        self.grown = 0  # times the limit was raised

    @property
    def limit(self) -> int:
        """Tokens held before one must be recycled or the limit raised: the step in use."""
        return next(step for step in self.steps if step >= len(self._ids))

    def live(self, token_id: int, serial: int) -> bool:
        """The token holding `token_id` recurs and is not long gone (as of message `serial`)."""
        seen = int(self.sightings[token_id])
        if seen < 2:
            return False
        last = int(self.last_seen[token_id])
        mean_gap = (last - int(self.assigned_at[token_id])) / (seen - 1)
        return serial - last <= LIVE_GAPS * max(mean_gap, 1.0)

    def __len__(self) -> int:
        return len(self._ids)

    def reach(self, tokens: Sequence[str], serial: int) -> int:
        """A bound on `end` once `tokens` (messages `serial` on) are encoded. New tokens fill
        the limit; past it, each takes the id of the least recently seen token unless that one
        is live, which raises the limit. The tokens checked so are among the least recently
        seen ones now, as many as checks plus the known tokens of the call (which move to the
        end when seen); none of them live now, none is live when checked (a token not seen
        does not become live), the limit holds, and a stream that recycles keeps its width."""
        ids, called = self._ids, set(tokens)
        unknown = len(called.difference(ids))
        held, limit = len(ids), self.limit
        if held + unknown <= limit:
            return held + unknown + RESERVED
        candidates = unknown - (limit - held) + (len(called) - unknown)
        grows = candidates >= held or any(
            self.live(token_id, serial) for token_id in itertools.islice(ids.values(), candidates)
        )
        return (min(held + unknown, self.capacity) if grows else limit) + RESERVED

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
            self.sightings[found] += 1
            self.last_seen[found] = serial
            return found, False, -1
        self.new_tokens += 1
        displaced = -1
        held = len(self._ids)
        if held < self.limit:
            token_id = held + RESERVED
        elif held < self.capacity and self.live(next(iter(self._ids.values())), serial):
            self.grown += 1  # the least recently seen token is live: the next step
            token_id = held + RESERVED
        else:
            _, token_id = self._ids.popitem(last=False)
            displaced = int(self.assigned_at[token_id])
            self.recycled += 1
        self._ids[token] = token_id
        self.tokens[token_id] = token
        self.assigned_at[token_id] = serial
        self.sightings[token_id] = 1
        self.last_seen[token_id] = serial
        return token_id, True, displaced

    def decode(self, token_id: int) -> str | None:
        """The token an id stands for now; None for the reserved ids."""
        return self.tokens[token_id]

    # -- snapshot --------------------------------------------------------------------------
    def save(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        ids = np.fromiter(self._ids.values(), np.int32, len(self._ids))
        fields: dict[str, Any] = {
            "tokens": list(self._ids),
            "new_tokens": self.new_tokens,
            "recycled": self.recycled,
            "grown": self.grown,
        }
        arrays: dict[str, np.ndarray] = {
            "ids": ids,
            "assigned_at": self.assigned_at[ids],
            "sightings": self.sightings[ids],
            "last_seen": self.last_seen[ids],
        }
        return fields, arrays

    @classmethod
    def load(cls, section: Section, capacity: int, messages: int, growth: bool = True) -> Vocabulary:
        """`growth`: the snapshot has the sightings (version 4 on); before, each token counts as
        seen once, when its id was assigned."""
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
        if vocab.recycled and count < vocab.steps[0]:
            raise section.error("ids recycled before the vocabulary was full")
        if growth:
            vocab.grown = section.integer("grown", high=len(vocab.steps))
            sightings = section.array("sightings", np.int64, (count,))
            last_seen = section.array("last_seen", np.int64, (count,))
            check_range("vocabulary sightings", sightings, 1, max(messages, 1) + 1)
            if (last_seen < assigned).any() or (last_seen >= max(messages, 1)).any():
                raise section.error("a token last seen before its id was assigned, or after the last message")
        else:
            sightings, last_seen = np.ones(count, np.int64), assigned
        for token, token_id, serial in zip(tokens, ids.tolist(), assigned.tolist(), strict=True):
            vocab._ids[token] = token_id
            vocab.tokens[token_id] = token
            vocab.assigned_at[token_id] = serial
        vocab.sightings[ids] = sightings
        vocab.last_seen[ids] = last_seen
        return vocab
