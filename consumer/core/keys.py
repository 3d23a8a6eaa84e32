"""The stream keys of one partition: each key's recent history and its pending predictions.

A key's history starts with the begin-of-stream mark (BOS_ID) and keeps its last `keep`
entries, each an id and the serial of the message it came with (so a reference to an id that
was recycled since can be told apart). The pending predictions are those made after the key's
last message, one per predictor: the guessed id and the log-probability of every class, kept
as float16 (a hundredth of a nat is plenty for a log-loss, and it halves the memory of many keys).
Beyond `max_keys` the least recently used key is evicted.

>>> table = KeyTable(max_keys=2, keep=3)
>>> for serial, key in enumerate(["a", "b", "a", "c"]):
...     _ = table.touch(key, serial)
>>> list(table.states), table.evicted, table.states["a"].ids
(['a', 'c'], 1, [1])
"""

from __future__ import annotations

import dataclasses
import math
from collections import OrderedDict
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

import numpy as np

from consumer.core import repair
from consumer.core.count_model import NEW_UID, CountModel, uid_of
from consumer.core.repair import READINGS, OutlierReading
from consumer.core.scoring import PREDICTORS
from consumer.core.snapshot_read import Section, check_range
from consumer.core.vocab import BOS_ID, FIRST_ID, NEW_ID

__all__ = ["FLOOR", "Key", "KeyState", "KeyTable"]

Key = str | None
FLOOR = np.float16(np.log(1e-12))  # the log-probability of a class a prediction ruled out


@dataclass
class KeyState:
    ids: list[int] = field(default_factory=list)
    serials: list[int] = field(default_factory=list)
    seen: int = 0  # messages of this key
    guesses: tuple[int, ...] = ()  # per predictor, after the last message; () before any
    # (predictors, classes) float16: the classes NEW_ID, NEW_ID + 1, ... in use at the time
    log_probs: np.ndarray | None = None
    # The count model's uids of the newest entries (`consumer.core.count_model.uid_of`), valid
    # while the vocabulary has recycled `checked` ids: a cache, never saved.
    uids: list[int] = field(default_factory=list)
    checked: int = -1
    outlier: OutlierReading | None = None  # an entry of the history is an outlier still being read
    new_mix: float = 0.0  # the mixture's NEW probability in the pending guess (`consumer.core.novelty`)

    def read_into(self, ids: np.ndarray, serials: np.ndarray) -> None:
        """The history's newest entries (as `history()` reads them), right-aligned into `ids`
        and `serials`; the positions before them are left as they are (padding)."""
        history, history_serials = self.history()
        width = len(ids)
        recent = history[-width:]
        ids[width - len(recent) :] = recent
        serials[width - len(recent) :] = history_serials[-width:]

    def refresh_uids(self, order: int, assigned_at: np.ndarray, recycled: int) -> None:
        """Name the newest entries as the count model does, once the vocabulary has recycled
        ids (`recycled` so far) since they were last named: some may read NEW now."""
        if self.checked != recycled:
            pairs = zip(self.ids[-order - 1 :], self.serials[-order - 1 :], strict=True)
            self.uids = [uid_of(t, s, assigned_at) for t, s in pairs]
            self.checked = recycled

    # -- its outlier: the history read under the leading reading (`consumer.core.repair`) ----
    def history(self, reading: int | None = None) -> tuple[list[int], list[int]]:
        """The history's ids and serials, read as its pending outlier's `reading` (leading)."""
        pending = self.outlier
        if pending is None:
            return self.ids, self.serials
        reading = pending.leading() if reading is None else reading
        return repair.view(self.ids, self.serials, pending, reading, pending.guess_id)

    def context(self, order: int, assigned_at: np.ndarray, reading: int | None = None) -> tuple[int, ...]:
        """The count model's context for the key's next token: its last `order` uids, read
        likewise (`assigned_at`: the vocabulary's, to name the outlier's g as a uid)."""
        uids, pending = self.uids, self.outlier
        if pending is not None:
            reading = pending.leading() if reading is None else reading
            aligned = self.serials[-len(uids) :]
            uids, _ = repair.view(uids, aligned, pending, reading, _guess_uid(pending, assigned_at))
        return tuple(uids[-order:])

    def weigh(
        self, model: CountModel, uid: int, token_id: int, end: int, order: int, assigned_at: np.ndarray
    ) -> int | None:
        """The key's next token is here: each reading of its outlier gains the log-probability
        the count model gives the token under it. Settled (the reading returned) once one leads
        by MARGIN, or once the outlier has left the longest context."""
        pending = self.outlier
        assert pending is not None
        scores = tuple(
            score
            + math.log(
                max(repair.probability(model, self.context(order, assigned_at, r), uid, token_id, end), 1e-12)
            )
            for r, score in enumerate(pending.scores)
        )
        self.outlier = pending = dataclasses.replace(pending, scores=scores)
        if pending.settled() or pending.serial not in self.serials[-order:]:
            return self.settle(assigned_at)
        return None

    def settle(self, assigned_at: np.ndarray) -> int:
        """Repair the history to its outlier's leading reading, for good; that reading."""
        pending = self.outlier
        assert pending is not None
        reading = pending.leading()
        aligned = self.serials[-len(self.uids) :]
        self.uids, _ = repair.view(self.uids, aligned, pending, reading, _guess_uid(pending, assigned_at))
        self.ids, self.serials = self.history(reading)
        self.outlier = None
        return reading


def _guess_uid(pending: OutlierReading, assigned_at: np.ndarray) -> int:
    return uid_of(pending.guess_id, pending.serial, assigned_at)


class KeyTable:
    def __init__(self, max_keys: int, keep: int) -> None:
        self.max_keys = max_keys
        self.keep = keep
        self.states: OrderedDict[Key, KeyState] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self.states)

    def touch(self, key: Key, serial: int) -> KeyState:
        """The key's state, most recently used now; a new key's history is [BOS] at `serial`."""
        state = self.states.get(key)
        if state is None:
            state = self.states[key] = KeyState([BOS_ID], [serial])
            self.trim(self.max_keys)
        else:
            self.states.move_to_end(key)
        return state

    def append(self, state: KeyState, token_id: int, serial: int) -> None:
        state.ids.append(token_id)
        state.serials.append(serial)
        if len(state.ids) > self.keep:
            del state.ids[0], state.serials[0]
        state.seen += 1

    def trim(self, max_keys: int) -> None:
        while len(self.states) > max_keys:
            self.states.popitem(last=False)
            self.evicted += 1

    # -- snapshot --------------------------------------------------------------------------
    def save(self, end: int) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Keys least recently used first; pending log-probabilities of the classes below `end`
        (padded with FLOOR: a class taken into use after a prediction is never read from it)."""
        states = list(self.states.values())
        count = len(states)
        lengths = np.fromiter((len(s.ids) for s in states), np.int32, count)
        total = int(lengths.sum())
        log_probs = np.full((count, len(PREDICTORS), end - NEW_ID), FLOOR, np.float16)
        guesses = np.full((count, len(PREDICTORS)), -1, np.int32)
        for i, state in enumerate(states):
            if state.log_probs is not None:
                log_probs[i, :, : state.log_probs.shape[1]] = state.log_probs
                guesses[i] = state.guesses
        pending = [s.outlier for s in states]
        arrays: dict[str, np.ndarray] = {
            "seen": np.fromiter((s.seen for s in states), np.int64, count),
            "history_lengths": lengths,
            "history_ids": np.fromiter(chain.from_iterable(s.ids for s in states), np.int32, total),
            "history_serials": np.fromiter(chain.from_iterable(s.serials for s in states), np.int64, total),
            "guesses": guesses,
            "log_probs": log_probs,
            "new_mix": np.fromiter((s.new_mix for s in states), np.float64, count),
            # A pending outlier (`consumer.core.repair`): its message's serial (-1: none), g, scores
            "outlier_serials": np.array([-1 if o is None else o.serial for o in pending], np.int64),
            "outlier_guesses": np.array(
                [[-1, -1] if o is None else [o.guess_id, o.guess_uid] for o in pending], np.int64
            ).reshape(count, 2),
            "outlier_scores": np.array(
                [[0.0] * len(READINGS) if o is None else o.scores for o in pending], np.float64
            ).reshape(count, len(READINGS)),
        }
        return {"keys": list(self.states), "evicted": self.evicted}, arrays

    @classmethod
    def load(
        cls,
        section: Section,
        max_keys: int,
        keep: int,
        end: int,
        messages: int,
        outliers: bool = True,
        novelty: bool = True,
    ) -> KeyTable:
        """Checked: histories as `touch`/`append` build them (an outlier's reading may have
        removed entries), ids and serials in range. `outliers`: the snapshot has their arrays
        (version 3 on); `novelty`: the mixture's NEW probabilities (version 5 on; before, the
        published one stands for it)."""
        keys = section.sequence("keys", 10**9)
        if not all(k is None or isinstance(k, str) for k in keys) or len(set(keys)) != len(keys):
            raise section.error("keys must be distinct strings and nulls")
        count = len(keys)
        seen = section.array("seen", np.int64, (count,))
        lengths = section.array("history_lengths", np.int32, (count,))
        if count and (seen.min() < 1 or lengths.min() < 1 or (lengths > np.minimum(seen + 1, keep)).any()):
            raise section.error("history lengths disagree with the keys' message counts")
        total = int(lengths.sum(dtype=np.int64))
        ids = section.array("history_ids", np.int32, (total,))
        serials = section.array("history_serials", np.int64, (total,))
        guesses = section.array("guesses", np.int32, (count, len(PREDICTORS)))
        log_probs = section.array("log_probs", np.float16, (count, len(PREDICTORS), end - NEW_ID))
        starts = np.concatenate([[0], np.cumsum(lengths)])[:-1].astype(np.int64)
        bos = ids == BOS_ID
        at_start = np.zeros(total, bool)
        at_start[starts] = True
        # A history holding every message of its key starts with BOS (one written with a smaller
        # `keep`, by an older version, may have dropped it earlier than this one would).
        if (bos & ~at_start).any() or not bos[starts[lengths == seen + 1]].all():
            raise section.error("a history must start with BOS until it is full, and hold it nowhere else")
        is_bos = bos
        check_range("history", ids[~is_bos], FIRST_ID, end)
        check_range("history serials", serials, 0, max(messages, 1))
        check_range("guesses", guesses, FIRST_ID, end)
        if not np.isfinite(log_probs).all() or (log_probs.size and log_probs.max() > 0):
            raise section.error("log-probabilities must be finite and <= 0")
        pending = _load_outliers(section, count, end, messages) if outliers else [None] * count
        if novelty:
            new_mix = section.array("new_mix", np.float64, (count,))
            if not ((new_mix >= 0) & (new_mix <= 1)).all():
                raise section.error("the mixture's NEW probabilities must be within [0, 1]")
        else:
            new_mix = np.exp(log_probs[:, 0, 0].astype(np.float64)) if end > NEW_ID else np.zeros(count)
        table = cls(max_keys, keep)
        table.evicted = section.integer("evicted")
        id_list, serial_list = ids.tolist(), serials.tolist()
        for i, key in enumerate(keys):
            start, stop = int(starts[i]), int(starts[i]) + int(lengths[i])
            outlier = pending[i]
            if outlier is not None and outlier.serial not in serial_list[start:stop]:
                raise section.error("a pending outlier must be an entry of its key's history")
            table.states[key] = KeyState(
                id_list[start:stop],
                serial_list[start:stop],
                int(seen[i]),
                tuple(guesses[i].tolist()),
                log_probs[i],
                outlier=outlier,
                new_mix=float(new_mix[i]),
            )
        table.trim(max_keys)
        return table


def _load_outliers(section: Section, count: int, end: int, messages: int) -> list[OutlierReading | None]:
    serials = section.array("outlier_serials", np.int64, (count,))
    guesses = section.array("outlier_guesses", np.int64, (count, 2))
    scores = section.array("outlier_scores", np.float64, (count, len(READINGS)))
    some = serials >= 0
    check_range("outlier serials", serials[some], 0, max(messages, 1))
    check_range("outlier guesses", guesses[some, 0], NEW_ID, end)  # g may be NEW: a first sighting
    check_range("outlier guess uids", guesses[some, 1], NEW_UID, max(messages, 1))
    if not np.isfinite(scores).all() or (scores.size and scores.max() > 0):
        raise section.error("outlier scores must be finite log-probabilities")
    return [
        OutlierReading(int(serials[i]), int(guesses[i, 0]), int(guesses[i, 1]), tuple(scores[i].tolist()))
        if some[i]
        else None
        for i in range(count)
    ]
