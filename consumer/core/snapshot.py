"""A learner's complete state as bytes and back: numeric arrays and a JSON header, never pickle.

The bytes are an ``.npz`` archive (layout in `consumer.core.snapshot_format`). `restore` checks
them against the config before building anything (`consumer.core.snapshot_read`), and the
restored learner continues bit-identically to the one that was snapshotted: same predictions,
probabilities, scores and model steps for any continuation.

>>> config = LearnerConfig(window=4, units=4, loss_steps=1)
>>> learner = Learner(config)
>>> _ = learner.learn_predict_many([("k", t) for t in "abcabcab"])
>>> copy = restore(snapshot_bytes(learner), config)
>>> more = [("k", t) for t in "cabcabca"]
>>> copy.learn_predict_many(more) == learner.learn_predict_many(more)
True
>>> restore(snapshot_bytes(learner), LearnerConfig(window=5, units=4, loss_steps=1))
Traceback (most recent call last):
...
consumer.core.snapshot_format.SnapshotError: snapshot from another model configuration: --window is 4 in the snapshot, 5 here
"""  # noqa: E501

from __future__ import annotations

import io
import itertools
import json
from typing import Any

import numpy as np

from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.core.snapshot_baseline import baseline_arrays
from consumer.core.snapshot_format import (
    FORMAT,
    VERSION,
    SnapshotError,
    key_array_specs,
    variable_specs,
)
from consumer.core.snapshot_read import SnapshotData, read_snapshot

__all__ = ["SnapshotError", "restore", "snapshot_bytes"]


def snapshot_bytes(learner: Learner) -> bytes:
    """Everything `learner` holds, as the bytes of an .npz archive."""
    arrays = {**_variables(learner), **_key_arrays(learner)}
    arrays["replay_rows"] = learner.replay_rows[: learner.replay_filled]
    arrays.update(baseline_arrays(learner.baseline))
    header = json.dumps(_header(learner), separators=(",", ":")).encode()
    arrays["header"] = np.frombuffer(header, np.uint8)
    buffer = io.BytesIO()
    # Uncompressed, the fastest; a Kafka producer's compression_type can compress the state topic.
    np.savez(buffer, allow_pickle=False, **arrays)
    return buffer.getvalue()


def restore(data: bytes, config: LearnerConfig, *, into: Learner | None = None) -> Learner:
    """A learner continuing exactly where the snapshot `data` was taken.

    `config` must agree with the snapshot's model fields (`LearnerConfig.model_fields`); threads,
    mode and `max_keys` may differ (keys beyond a smaller `max_keys` are evicted, least recently
    used first). `into`, a learner built with `config`, is overwritten instead of building a new
    one, which saves compiling its programs again. Raises `SnapshotError` before touching
    anything if the data is corrupt or from another model configuration.
    """
    if into is not None and into.config != config:
        raise ValueError("restore(into=...): the learner was built with another config")
    snapshot = read_snapshot(bytes(data), config)
    learner = into if into is not None else Learner(config)
    _apply(learner, snapshot)
    return learner


def _header(learner: Learner) -> dict[str, Any]:
    config = learner.config
    return {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": config.fingerprint(),
        "config": config.model_fields(),
        "model_step": learner.model_step,
        "messages": learner.messages,
        "evicted_keys": learner.evicted_keys,
        "oov_seen": bool(learner.oov_seen),
        "replay_filled": learner.replay_filled,
        "replay_next": learner.replay_next,
        "vocabulary": {"tokens": learner.vocab.tokens, "oov_count": learner.vocab.oov_count},
        "rng": learner.rng.bit_generator.state,
        "score": learner.score.to_dict(),
        "baseline_score": learner.baseline_score.to_dict(),
        "keys": list(learner.keys),
    }


def _variables(learner: Learner) -> dict[str, np.ndarray]:
    state = [np.asarray(a) for a in learner.program.get_state()]
    specs = variable_specs(learner.config)
    if [(a.shape, a.dtype) for a in state] != [(shape, np.dtype(np.float32)) for _, shape in specs]:
        # The program's layout changed without the snapshot format following it.
        raise SnapshotError("the learner's variables do not match the snapshot format")
    return {name: array for (name, _), array in zip(specs, state, strict=True)}


def _key_arrays(learner: Learner) -> dict[str, np.ndarray]:
    states = list(learner.keys.values())
    count, size = len(states), learner.config.vocab_size
    lengths = np.fromiter((len(s.history) for s in states), np.int32, count=count)
    history = itertools.chain.from_iterable(s.history for s in states)
    probs = np.zeros((count, size), np.float32)
    for i, state in enumerate(states):
        if state.pending_probs is not None:
            probs[i] = state.pending_probs
    end = learner.vocab.end
    if not probs[:, end:].any():  # ids past the vocabulary are masked out: their probability is 0
        probs = probs[:, :end]  # often most of the snapshot otherwise (capacity 256, few tokens)
    arrays: dict[str, np.ndarray] = {
        "history_lengths": lengths,
        "history_flat": np.fromiter(history, np.int32, count=int(lengths.sum())),
        "seen": np.fromiter((s.seen for s in states), np.int64, count=count),
        "pending": np.fromiter((-1 if s.pending is None else s.pending for s in states), np.int32, count),
        "pending_mask": np.fromiter((s.pending is not None for s in states), np.bool_, count=count),
        "pending_probs": probs,
        "baseline_pending": np.fromiter(
            (-1 if s.baseline_pending is None else s.baseline_pending for s in states), np.int32, count
        ),
    }
    assert set(arrays) == {name for name, _, _ in key_array_specs(learner.config, 0)} | {"history_flat"}
    return arrays


def _apply(learner: Learner, snapshot: SnapshotData) -> None:
    learner.program.set_state(snapshot.variables)
    learner.vocab = snapshot.vocab
    learner.keys = snapshot.keys
    learner.baseline = snapshot.baseline
    learner.score, learner.baseline_score = snapshot.score, snapshot.baseline_score
    learner.rng.bit_generator.state = snapshot.rng_state
    learner.replay_rows[:] = 0
    learner.replay_rows[: len(snapshot.replay_rows)] = snapshot.replay_rows
    counters = snapshot.counters
    learner.model_step, learner.messages = counters["model_step"], counters["messages"]
    learner.replay_filled, learner.replay_next = counters["replay_filled"], counters["replay_next"]
    learner.evicted_keys = counters["evicted_keys"]
    learner.oov_seen = snapshot.oov_seen
    while len(learner.keys) > learner.config.max_keys:
        learner.keys.popitem(last=False)
        learner.evicted_keys += 1
