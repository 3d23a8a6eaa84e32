"""The count model's section of a snapshot (``baseline``): its tables as columns, and back.

Per context its length, uids and follower count, then per follower its uid and count (least
recently updated first), and the births of tokens seen once (`consumer.core.count_model`).
`load` checks everything it reads before the model is used.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from consumer.core.count_model import LIMIT, NEW_UID, CountModel, Followers
from consumer.core.snapshot_read import Section, SnapshotError, check_range
from consumer.core.vocab import BOS_ID, NEW_ID, PAD_ID

__all__ = ["load", "save"]


def save(model: CountModel) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The table as columns: per context its length, uids and follower count, then per
    follower its uid and count (LRU order: least recently updated first)."""
    keys = [key for table in model.tables for key in table]
    entries = [entry for table in model.tables for entry in table.values()]
    lengths = np.fromiter(map(len, keys), np.int32, len(keys))
    sizes = np.fromiter((len(e.uids) for e in entries), np.int32, len(keys))
    rows = int(sizes.sum())
    arrays: dict[str, np.ndarray] = {
        "unigram": model.unigram,
        "context_lengths": lengths,
        "contexts": np.fromiter((u for key in keys for u in key), np.int64, int(lengths.sum())),
        "follower_counts": sizes,
        "follower_uids": np.fromiter((u for e in entries for u in e.uids), np.int64, rows),
        "follower_ids": np.fromiter((i for e in entries for i in e.ids), np.int32, rows),
        "counts": np.fromiter((n for e in entries for n in e.counts), np.int64, rows),
    }
    births = [(uid, key) for uid, keys_ in model.births.items() for key in keys_]
    arrays["birth_uids"] = np.fromiter((uid for uid, _ in births), np.int64, len(births))
    arrays["birth_lengths"] = np.fromiter((len(key) for _, key in births), np.int32, len(births))
    total = sum(len(key) for _, key in births)
    arrays["birth_contexts"] = np.fromiter((u for _, key in births for u in key), np.int64, total)
    header = {"contexts": len(keys), "recycled": model.recycled, "births": len(births)}
    header.update(reborn=model.reborn, unborn=model.unborn)
    return header, arrays


def load(
    section: Section,
    orders: tuple[int, ...],
    size: int,
    max_contexts: int,
    short: int,
    ids_by_uid: dict[int, int],
    births: bool = True,
) -> CountModel:
    """The table from its columns, checked: context lengths 1..order, counts >= 1 and within
    LIMIT, no context or follower twice (a context may have none left). `ids_by_uid`: the
    vocabulary's tokens. `births`: the snapshot has them (version 4 on; before, every first
    sighting stays NEW)."""
    count = section.integer("contexts", high=2 * max_contexts)
    unigram = section.array("unigram", np.int64, (size,))
    lengths = section.array("context_lengths", np.int32, (count,))
    followers = section.array("follower_counts", np.int32, (count,))
    # A context may have no follower left: all of them were recycled (`Followers.drop`).
    if count and (not np.isin(lengths, orders).all() or followers.min() < 0):
        raise section.error(f"contexts must hold {orders} uids")
    contexts = section.array("contexts", np.int64, (int(lengths.sum(dtype=np.int64)),))
    rows = int(followers.sum(dtype=np.int64))
    uids = section.array("follower_uids", np.int64, (rows,))
    ids = section.array("follower_ids", np.int32, (rows,))
    counts = section.array("counts", np.int64, (rows,))
    check_range("baseline follower", ids, NEW_ID, size)
    if unigram.min() < 0 or unigram[[PAD_ID, BOS_ID]].any() or (counts.size and counts.min() < 1):
        raise section.error("counts must be positive, and none for padding or begin-of-stream")
    if (contexts.size and contexts.min() < NEW_UID) or (uids.size and uids.min() < NEW_UID):
        raise section.error("uids must be token serials or the reserved uids")
    baseline = CountModel(orders, size, max_contexts, short)
    baseline.unigram = unigram.copy()
    baseline.unigram_total = int(unigram[NEW_ID:].sum())
    baseline.unigram_distinct = int(np.count_nonzero(unigram[NEW_ID:]))
    baseline.ids_by_uid = live = {NEW_UID: NEW_ID, **ids_by_uid}
    baseline.recycled = section.integer("recycled")
    context_ids = iter(contexts.tolist())
    rows_of = zip(uids.tolist(), ids.tolist(), counts.tolist(), strict=True)
    for length, n in zip(lengths.tolist(), followers.tolist(), strict=True):
        key = tuple(next(context_ids) for _ in range(length))
        entry = Followers(checked=-1)  # checked at its first read, as the original would be
        for _ in range(n):
            uid, token_id, count = next(rows_of)
            if uid in entry.position or live.get(uid, token_id) != token_id:
                raise SnapshotError("corrupt snapshot: baseline: a follower twice, or with another id")
            entry.position[uid] = len(entry.uids)
            entry.uids.append(uid)
            entry.ids.append(token_id)
            entry.counts.append(count)
        entry.total = sum(entry.counts)
        table = baseline.tables[length > short]
        if entry.total > LIMIT or key in table or len(table) >= max_contexts:
            raise SnapshotError("corrupt snapshot: baseline: a context twice, over LIMIT or too many")
        table[key] = entry
    if births:
        _load_births(baseline, section, orders, ids_by_uid)
    return baseline


def _load_births(
    model: CountModel, section: Section, orders: tuple[int, ...], ids_by_uid: dict[int, int]
) -> None:
    count = section.integer("births", high=len(ids_by_uid) * (len(orders) + 1))
    uids = section.array("birth_uids", np.int64, (count,))
    lengths = section.array("birth_lengths", np.int32, (count,))
    if count and not np.isin(lengths, (0, *orders)).all():
        raise section.error(f"birth contexts must hold 0 or {orders} uids")
    contexts = section.array("birth_contexts", np.int64, (int(lengths.sum(dtype=np.int64)),))
    if (contexts.size and contexts.min() < NEW_UID) or not set(uids.tolist()) <= set(ids_by_uid):
        raise section.error("births must be of tokens in the vocabulary, in contexts of uids")
    flat = iter(contexts.tolist())
    for uid, length in zip(uids.tolist(), lengths.tolist(), strict=True):
        key = tuple(next(flat) for _ in range(length))
        model.births.setdefault(uid, []).append(key)
        entry = model.tables[length > model.short].get(key) if length else None
        if entry is not None:
            entry.born[uid] = None
    # Before they were kept (version 4 as first written), both start again from nothing.
    if "reborn" in section.fields:
        model.reborn = section.integer("reborn")
        model.unborn = section.integer("unborn")
