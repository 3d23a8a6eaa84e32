"""The count model beside the LSTM: next-token counts of the last 0..order tokens, blended.

It is the baseline the LSTM is measured against, and the mixer's second opinion. For a context
it keeps one table per order: order 0 counts every token, order o the tokens seen after the
same o preceding ones (the begin-of-stream mark counts as a token, so session starts have
contexts of their own). `consumer.core.count_rows` turns the counts into two kinds of
distribution, both over the classes in use (NEW included), so every class keeps a probability
and the log-loss stays finite: the baseline's, PPM method C back-off with exclusions over the
orders up to --baseline-order (the classic model; its guess is the most frequent follower of
the longest context seen before), and the mixer's inputs, each order blended with the ones
below by Witten-Bell escapes, p_o = (c_o + d_o p_(o-1)) / (n_o + d_o), with n_o the context's
count and d_o its distinct followers, up to --context-order.

A token's first sighting is counted as NEW where it came (a context that leads to new tokens, as
ids or block numbers do, learns to expect one), and it is the token's own from its second
sighting on: then each context of its first sighting gives that count from NEW to the token, as
a plain PPM would have counted it from the start (`births`). A token never seen again (an id)
stays a NEW count for good. Until then the count is both: when the context comes back, is it
followed by the token born there, or by yet another new one? The stream answers (`reborn`,
`unborn`: what followed such contexts so far), and a context's NEW count is read as that share
for its tokens born there, the rest for NEW (`CountModel.followers`). A package's lifecycle step
first seen once is expected there the next time; on a stream of ids, NEW stays NEW.

Contexts and followers are keyed by token *uids* (the serial of the message that gave the token
its id, `Vocabulary.assigned_at`), so a recycled id never inherits the counts of the token that
held it before; followers of tokens that left the vocabulary are dropped when next read. Memory
is bounded: at most `max_contexts` short and as many long contexts, least recently updated
dropped first, and a context whose count passes `LIMIT` halves its counts, which also lets it
follow a drifting stream.

>>> b = CountModel(orders=(1, 2), size=8, max_contexts=100)
>>> b.assign(3, uid=0)
>>> b.assign(4, uid=1)
>>> history = [BOS_UID]
>>> for uid, token_id in [(0, 3), (1, 4), (0, 3), (1, 4), (0, 3)]:
...     b.learn(tuple(history[-2:]), uid, token_id)
...     history.append(uid)
>>> entry = b.entry((1, 0))
>>> entry.ids, entry.counts, b.unigram_total, b.contexts
([4], [1], 5, 6)
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence

import numpy as np

from consumer.core.vocab import BOS_ID, FIRST_ID, NEW_ID

__all__ = ["BOS_UID", "LIMIT", "NEW_UID", "CountModel", "uid_of"]

NEW_UID, BOS_UID = -(NEW_ID + 1), -(BOS_ID + 1)  # the reserved ids' uids: never a token's serial
LIMIT = 255  # a context's total count; past it, its counts are halved


def uid_of(token_id: int, serial: int, assigned_at: np.ndarray) -> int:
    """The uid of a history entry: the token it named, or NEW_UID once its id was recycled."""
    if token_id < FIRST_ID:
        return -(token_id + 1)
    assigned = int(assigned_at[token_id])
    return assigned if assigned <= serial else NEW_UID


class Followers:
    """The tokens seen after one context: parallel lists, so that a row of counts is written in
    one array operation."""

    __slots__ = ("born", "checked", "counts", "ids", "position", "total", "uids")

    def __init__(self, checked: int) -> None:
        self.total = 0
        self.position: dict[int, int] = {}  # uid -> index in the lists
        self.uids: list[int] = []
        self.ids: list[int] = []
        self.counts: list[int] = []
        self.checked = checked  # the baseline's recycle count when the lists were last checked
        self.born: dict[int, None] = {}  # uids whose first sighting here is in the NEW count

    def add(self, uid: int, token_id: int) -> None:
        at = self.position.get(uid)
        if at is None:
            self.position[uid] = len(self.uids)
            self.uids.append(uid)
            self.ids.append(token_id)
            self.counts.append(1)
        else:
            self.counts[at] += 1
        self.total += 1
        if self.total > LIMIT:
            self._keep([n >> 1 for n in self.counts])

    def give(self, at: int, uid: int, token_id: int) -> None:
        """One count of the follower at index `at` becomes `uid`'s (the total stays)."""
        counts = self.counts
        counts[at] -= 1
        mine = self.position.get(uid)
        if mine is None:
            self.position[uid] = len(self.uids)
            self.uids.append(uid)
            self.ids.append(token_id)
            counts.append(1)
        else:
            counts[mine] += 1
        if not counts[at]:
            self._keep(counts)

    def drop(self, ids_by_uid: dict[int, int]) -> None:
        """Forget the followers whose token left the vocabulary (its id was recycled)."""
        self.born = {uid: None for uid in self.born if uid in ids_by_uid}
        self._keep([n if uid in ids_by_uid else 0 for uid, n in zip(self.uids, self.counts, strict=True)])

    def _keep(self, counts: list[int]) -> None:
        kept = [(u, i, n) for u, i, n in zip(self.uids, self.ids, counts, strict=True) if n > 0]
        self.uids, self.ids, self.counts = [k[0] for k in kept], [k[1] for k in kept], [k[2] for k in kept]
        self.position = {uid: at for at, uid in enumerate(self.uids)}
        self.total = sum(self.counts)


class CountModel:
    def __init__(self, orders: tuple[int, ...], size: int, max_contexts: int, short: int = 4) -> None:
        """Contexts of up to `short` ids and longer ones are two tables of at most
        `max_contexts` each: the many long contexts of a text never push out the short ones."""
        self.orders = orders  # the context lengths counted, increasing
        self.max_contexts = max_contexts
        self.short = short
        self.unigram = np.zeros(size, np.int64)  # order 0, by id (NEW_ID counts first sightings)
        self.unigram_total = 0
        self.unigram_distinct = 0
        # (short, long): context (uids, newest last) -> its followers; least recently updated first
        self.tables: tuple[OrderedDict[tuple[int, ...], Followers], ...] = (OrderedDict(), OrderedDict())
        self.ids_by_uid: dict[int, int] = {NEW_UID: NEW_ID}  # the tokens in the vocabulary
        self.recycled = 0
        # uid -> the contexts (uids; () is order 0) that counted its first sighting as NEW, until
        # its second sighting: at most one entry per token in the vocabulary
        self.births: dict[int, list[tuple[int, ...]]] = {}
        # What followed a context with tokens born there, at its longest such order: one of
        # them (reborn) or a new token (unborn). Their ratio shares out the context's NEW count.
        self.reborn = 0
        self.unborn = 0

    def assign(self, token_id: int, uid: int, old_uid: int | None = None) -> None:
        """The vocabulary gave `token_id` to a new token (taking it from `old_uid`'s)."""
        if old_uid is not None:
            del self.ids_by_uid[old_uid]
            self.births.pop(old_uid, None)
            old = int(self.unigram[token_id])
            self.unigram[token_id] = 0
            self.unigram_total -= old
            self.unigram_distinct -= old > 0
            self.recycled += 1
        self.ids_by_uid[uid] = token_id

    def learn(
        self, context: tuple[int, ...], target_uid: int, target_id: int, born: int | None = None
    ) -> None:
        """Count the target after each counted suffix of `context` (uids, newest last). `born`:
        the uid of the new token the target NEW stands for (its first sighting)."""
        self._witness(context, target_uid, born is not None)
        if born is not None:
            self.births[born] = [(), *(context[-o:] for o in self.orders if o <= len(context))]
        elif target_uid in self.births:
            self._second_sighting(target_uid, target_id)
        unigram = self.unigram
        self.unigram_distinct += unigram[target_id] == 0
        unigram[target_id] += 1
        self.unigram_total += 1
        if self.unigram_total > LIMIT * 16:
            unigram >>= 1
            self.unigram_total = int(unigram.sum())
            self.unigram_distinct = int(np.count_nonzero(unigram))
        for order in self.orders:
            if order > len(context):
                break
            key = context[-order:]
            contexts = self.tables[order > self.short]
            entry = contexts.get(key)
            if entry is None:
                entry = contexts[key] = Followers(self.recycled)
                if len(contexts) > self.max_contexts:
                    contexts.popitem(last=False)
            else:
                contexts.move_to_end(key)
            entry.add(target_uid, target_id)
            if born is not None:
                entry.born[born] = None

    def _second_sighting(self, uid: int, token_id: int) -> None:
        """The token is seen again: where its first sighting was counted as NEW, it is its own
        (the totals stay: one count changes hands). Contexts dropped since are passed by."""
        for key in self.births.pop(uid):
            if not key:
                if self.unigram[NEW_ID] > 0:
                    self.unigram[NEW_ID] -= 1
                    self.unigram_distinct -= self.unigram[NEW_ID] == 0
                    self.unigram_distinct += self.unigram[token_id] == 0
                    self.unigram[token_id] += 1
                continue
            entry = self.tables[len(key) > self.short].get(key)
            if entry is None:
                continue
            entry.born.pop(uid, None)
            at = entry.position.get(NEW_UID)
            if at is not None:
                entry.give(at, uid, token_id)

    def _witness(self, context: tuple[int, ...], uid: int, new: bool) -> None:
        """Count what follows the longest context of `context` with a token born there."""
        for order in reversed(self.orders):
            if order > len(context):
                continue
            entry = self.tables[order > self.short].get(context[-order:])
            if entry is not None and entry.born:
                if uid in entry.born:
                    self.reborn += 1
                elif new:
                    self.unborn += 1
                return

    def followers(self, entry: Followers) -> tuple[list[int], Sequence[float], int]:
        """The context's followers as the blends read them (ids, counts, distinct): the NEW
        count shared between NEW and the tokens born there that are still in the vocabulary,
        by the share the stream has shown (`reborn` against `unborn`, from one each)."""
        at = entry.position.get(NEW_UID)
        if not entry.born or at is None:
            return entry.ids, entry.counts, len(entry.ids)
        live = [self.ids_by_uid[uid] for uid in entry.born if uid in self.ids_by_uid]
        if not live:
            return entry.ids, entry.counts, len(entry.ids)
        new = entry.counts[at]
        share = (self.reborn + 1) / (self.reborn + self.unborn + 2)
        counts: list[float] = list(entry.counts)
        counts[at] = new * (1.0 - share)
        each = new * share / len(live)
        return entry.ids + live, counts + [each] * len(live), len(entry.ids) + len(live)

    def matched(self, context: tuple[int, ...]) -> Iterator[Followers]:
        """The followers of each counted suffix of `context`, shortest first: a longer one only
        while the shorter ones exist (they are learned together, and the longer ones leave
        first). The one walk of the model: the count rows and the outlier readings use it."""
        for order in self.orders:
            if order > len(context):
                return
            entry = self.entry(context[-order:])
            if entry is None or not entry.total:
                return
            yield entry

    def entry(self, context: tuple[int, ...]) -> Followers | None:
        """The followers of `context` that are in the vocabulary, or None."""
        entry = self.tables[len(context) > self.short].get(context)
        if entry is not None and entry.checked != self.recycled:
            entry.drop(self.ids_by_uid)
            entry.checked = self.recycled
        return entry

    @property
    def contexts(self) -> int:
        return sum(map(len, self.tables))
