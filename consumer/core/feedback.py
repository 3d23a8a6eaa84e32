"""What the readers of the anomaly alerts said, and what it changes.

A flagged input is a transition: the `CONTEXT` tokens its key had before it, then its token
("^" stands for the start of a key's stream). The partition's learner keeps its last `held`
flagged inputs by reference (the service's input offset), so that a mark names an input by key
and reference, as a reader of an alert knows it. Then:

- **normal**: the transition is allowed for the whole partition: the same token after the
  same context, in any key, is not flagged again while the transition is among the `allowed`
  most recently marked or matched (an allow-list whose entries expire, least recently used
  first). The model is not changed by it; it goes on learning the stream as before.
- **confirmed**: the transition is an anomaly for good: it is flagged whenever it occurs, even
  once the model has come to expect it, and a later "normal" mark on it is refused. A normal
  mark before it is withdrawn.

A mark on a reference no longer held (older than the last `held` flags), or on another key
than the one flagged, raises `FeedbackError` with its reason; the service dead-letters it.

>>> book = Feedback(held=2)
>>> book.judge(10, "k", ("a", "b"), "x", by_rank=True), book.judge(11, "k", ("a", "b"), "c", by_rank=False)
(True, False)
>>> book.mark(10, "k", normal=True)
('a', 'b', 'x')
>>> book.judge(12, "j", ("a", "b"), "x", by_rank=True)  # the same transition, in another key
False
>>> book.mark(10, "other", normal=False)
Traceback (most recent call last):
...
consumer.core.feedback.FeedbackError: reference 10 was flagged for key 'k', not 'other'
>>> book.mark(10, "k", normal=False)  # confirmed after all: flagged even when expected
('a', 'b', 'x')
>>> book.judge(13, "k", ("a", "b"), "x", by_rank=False), book.mark(13, "k", normal=True)
Traceback (most recent call last):
...
consumer.core.feedback.FeedbackError: the transition ('a', 'b', 'x') was confirmed as an anomaly
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from consumer.core.vocab import BOS_ID

if TYPE_CHECKING:
    from consumer.core.keys import Key
    from consumer.core.snapshot_read import Section

__all__ = ["CONTEXT", "START", "Feedback", "FeedbackError", "Transition", "name_context"]

# Tokens before the input that name its transition. One is too coarse where a token follows
# many others; measured on `make bench-anomalies` with 1, 2 and 3, see docs/learner.md.
CONTEXT = 2
START = "^"  # the context of a key's first tokens: its stream's start
HELD = 1_000  # flagged inputs a partition keeps for marks
ALLOWED = 10_000  # transitions marked normal (or confirmed) a partition keeps

Transition = tuple[str, ...]  # the context's tokens, then the input's


class FeedbackError(ValueError):
    """A mark that cannot be applied; `reason` names why, for the dead-letter record."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Feedback:
    """The partition's flagged inputs, allowed and confirmed transitions, and mark counts."""

    def __init__(self, held: int = HELD, allowed: int = ALLOWED) -> None:
        self.held, self.allowed = held, allowed
        self.flagged: OrderedDict[int, tuple[Key, Transition]] = OrderedDict()
        self.normal: OrderedDict[Transition, None] = OrderedDict()
        self.confirmed: OrderedDict[Transition, None] = OrderedDict()
        self.silenced = 0  # inputs the rank flagged that an allowed transition let through
        self.forced = 0  # inputs the rank let through that a confirmed transition flagged
        self.marks = 0  # marks applied

    def judge(self, ref: int | None, key: Key, context: tuple[str, ...], token: str, by_rank: bool) -> bool:
        """Whether the input `ref` of `key` is an anomaly, given what its rank says and the
        marks; a flagged input is held for marks (by `ref`, unless None)."""
        transition = (*context, token)
        flagged = by_rank
        if transition in self.confirmed:
            self.forced += not by_rank
            flagged = True
        elif by_rank and transition in self.normal:
            self.normal.move_to_end(transition)
            self.silenced += 1
            flagged = False
        if flagged and ref is not None:
            self.flagged[ref] = (key, transition)
            self.flagged.move_to_end(ref)
            _trim(self.flagged, self.held)
        return flagged

    def mark(self, ref: int, key: Key, normal: bool) -> Transition:
        """Apply a reader's mark on the flagged input `ref` of `key`: normal, or a confirmed
        anomaly. Returns its transition; raises `FeedbackError` if it cannot be applied."""
        held = self.flagged.get(ref)
        if held is None:
            raise FeedbackError(
                "feedback_not_held", f"reference {ref} is not among the last {self.held} flagged inputs"
            )
        if held[0] != key:
            raise FeedbackError(
                "feedback_key_mismatch", f"reference {ref} was flagged for key {held[0]!r}, not {key!r}"
            )
        transition = held[1]
        self.marks += 1
        if normal:
            if transition in self.confirmed:
                raise FeedbackError(
                    "feedback_confirmed", f"the transition {transition} was confirmed as an anomaly"
                )
            self.normal[transition] = None
            self.normal.move_to_end(transition)
            _trim(self.normal, self.allowed)
        else:
            self.normal.pop(transition, None)
            self.confirmed[transition] = None
            self.confirmed.move_to_end(transition)
            _trim(self.confirmed, self.allowed)
        return transition

    # -- snapshot ----------------------------------------------------------------------------
    def save(self) -> dict[str, Any]:
        """The header object of the snapshot's ``feedback`` part (JSON: tokens are strings)."""
        return {
            "flagged": [[ref, key, *transition] for ref, (key, transition) in self.flagged.items()],
            "normal": [list(t) for t in self.normal],
            "confirmed": [list(t) for t in self.confirmed],
            "silenced": self.silenced,
            "forced": self.forced,
            "marks": self.marks,
        }

    @classmethod
    def load(cls, section: Section) -> Feedback:
        book = cls()
        width = CONTEXT + 1
        for entry in section.sequence("flagged", book.held):
            if not (
                isinstance(entry, list)
                and len(entry) == width + 2
                and type(entry[0]) is int
                and (entry[1] is None or isinstance(entry[1], str))
                and all(isinstance(t, str) for t in entry[2:])
            ):
                raise section.error("flagged: each entry is [reference, key, context..., token]")
            book.flagged[entry[0]] = (entry[1], tuple(entry[2:]))
        for name in ("normal", "confirmed"):
            for entry in section.sequence(name, book.allowed):
                if not (isinstance(entry, list) and len(entry) == width):
                    raise section.error(f"{name}: each entry is [context..., token]")
                if not all(isinstance(t, str) for t in entry):
                    raise section.error(f"{name}: each entry is [context..., token]")
                getattr(book, name)[tuple(entry)] = None
        book.silenced, book.forced = section.integer("silenced"), section.integer("forced")
        book.marks = section.integer("marks")
        return book


def name_context(ids: list[int], names: list[str | None], fresh: dict[int, str]) -> tuple[str, ...]:
    """A key's last `ids` as `Prediction.context` names them: by `fresh` (ids the current call
    brought in) or `names`, the stream's start as `START`, padded with it to `CONTEXT`."""
    named = [START if i == BOS_ID else fresh.get(i) or names[i] for i in ids]
    return (START,) * (CONTEXT - len(named)) + tuple(str(name) for name in named)


def _trim(entries: OrderedDict[Any, Any], limit: int) -> None:
    while len(entries) > limit:
        entries.popitem(last=False)
