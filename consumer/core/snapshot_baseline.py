"""The baseline's back-off table in a snapshot: columns of numbers, built and checked with NumPy.

The table (`BackoffBaseline.table`: context -> [counts by next id, best id, best count]) can
hold 200,000 contexts; row-by-row Python would take most of a second each way, so it is stored
as columns, per context: ``baseline_context_lengths``, the ids ``baseline_contexts`` (ragged),
``baseline_best``, ``baseline_followers`` (how many next ids), then per (context, next id):
``baseline_next`` and ``baseline_counts`` (int64: the empty context counts every message).

>>> from consumer.core.baseline import BackoffBaseline
>>> b = BackoffBaseline(order=1)
>>> history = []
>>> for t in [2, 3, 2, 2]:
...     b.learn(history, t)
...     history.append(t)
>>> arrays = baseline_arrays(b)
>>> arrays["baseline_next"].tolist(), arrays["baseline_counts"].tolist()
([2, 3, 3, 2, 2], [3, 1, 1, 1, 1])
>>> baseline_from_arrays(arrays, order=1, end=4).table == b.table
True
>>> baseline_from_arrays(arrays, order=1, end=3)
Traceback (most recent call last):
...
consumer.core.snapshot_format.SnapshotError: corrupt snapshot: baseline context ids must lie in [1, 3)
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from itertools import chain, islice
from operator import itemgetter

import numpy as np

from consumer.core.baseline import BackoffBaseline
from consumer.core.snapshot_format import SnapshotError, check_range

__all__ = ["BASELINE_ENTRIES", "baseline_arrays", "baseline_from_arrays"]

BASELINE_ENTRIES = (
    "baseline_context_lengths",
    "baseline_contexts",
    "baseline_best",
    "baseline_followers",
    "baseline_next",
    "baseline_counts",
)


def baseline_arrays(baseline: BackoffBaseline) -> dict[str, np.ndarray]:
    """The table as columns (iterated by C-level itertools, not row by row)."""
    contexts, entries = list(baseline.table), list(baseline.table.values())
    count = len(contexts)
    lengths = np.fromiter(map(len, contexts), np.int32, count)
    follower_counts: list[dict[int, int]] = list(map(itemgetter(0), entries))
    followers = np.fromiter(map(len, follower_counts), np.int32, count)
    rows = int(followers.sum(dtype=np.int64))
    return {
        "baseline_context_lengths": lengths,
        "baseline_contexts": np.fromiter(chain.from_iterable(contexts), np.int32, int(lengths.sum())),
        "baseline_best": np.fromiter(map(itemgetter(1), entries), np.int32, count),
        "baseline_followers": followers,
        "baseline_next": np.fromiter(chain.from_iterable(follower_counts), np.int32, rows),
        "baseline_counts": np.fromiter(
            chain.from_iterable(map(dict.values, follower_counts)), np.int64, rows
        ),
    }


def _check(arrays: dict[str, np.ndarray], order: int, end: int) -> np.ndarray:
    """Raise `SnapshotError` unless the columns form a table `learn` could have built; return
    the mask of each context's best row."""
    lengths, best, followers = (arrays[f"baseline_{n}"] for n in ("context_lengths", "best", "followers"))
    next_ids, counts = arrays["baseline_next"], arrays["baseline_counts"]
    if lengths.size and (lengths.min() < 0 or lengths.max() > order):
        raise SnapshotError(f"corrupt snapshot: baseline contexts must hold 0 to {order} ids")
    if (followers.size and followers.min() < 1) or (counts.size and counts.min() < 1):
        raise SnapshotError("corrupt snapshot: baseline contexts need followers, with counts >= 1")
    check_range("baseline context", arrays["baseline_contexts"], 1, end)
    check_range("baseline next", next_ids, 1, end)
    owner = np.repeat(np.arange(lengths.size), followers)
    by_owner = np.lexsort((next_ids, owner))
    same = np.diff(owner[by_owner]) == 0
    if (same & (np.diff(next_ids[by_owner]) == 0)).any():
        raise SnapshotError("corrupt snapshot: a baseline context counts the same next id twice")
    is_best: np.ndarray = next_ids == np.repeat(best, followers)
    if not np.array_equal(np.bincount(owner[is_best], minlength=lengths.size), np.ones(lengths.size)):
        raise SnapshotError("corrupt snapshot: a baseline context's best id is not one of its followers")
    starts = np.cumsum(followers, dtype=np.int64) - followers
    if lengths.size and not np.array_equal(np.maximum.reduceat(counts, starts), counts[is_best]):
        raise SnapshotError("corrupt snapshot: a baseline context's best id does not have the top count")
    return is_best


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    # Hundreds of thousands of new containers would trigger many collections, each walking the
    # whole heap (TensorFlow's included): half of the build time, and none of it can be garbage.
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def baseline_from_arrays(arrays: dict[str, np.ndarray], order: int, end: int) -> BackoffBaseline:
    """The baseline from its columns (of consistent shapes), checked: ids below `end`, one best
    id per context with the top count, no repeated context or next id."""
    is_best = _check(arrays, order, end)
    baseline = BackoffBaseline(order)
    lengths, followers = arrays["baseline_context_lengths"], arrays["baseline_followers"]
    if lengths.size > baseline.max_contexts:
        raise SnapshotError(f"corrupt snapshot: more than {baseline.max_contexts} baseline contexts")
    with _collector_paused():
        ids = iter(arrays["baseline_contexts"].tolist())
        contexts = [tuple(islice(ids, n)) for n in lengths.tolist()]
        pairs = zip(arrays["baseline_next"].tolist(), arrays["baseline_counts"].tolist(), strict=True)
        follower_counts = [dict(islice(pairs, n)) for n in followers.tolist()]
        best, top = arrays["baseline_best"].tolist(), arrays["baseline_counts"][is_best].tolist()
        entries = map(list, zip(follower_counts, best, top, strict=True))
        baseline.table = dict(zip(contexts, entries, strict=True))
    if len(baseline.table) != len(contexts):
        raise SnapshotError("corrupt snapshot: a baseline context occurs twice")
    return baseline
