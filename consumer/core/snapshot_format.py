"""The layout of a learner snapshot: entries, their dtypes and shapes; checks of header fields.

A snapshot is an ``.npz`` archive (see `consumer.core.snapshot`). Its entries:

- ``header``: uint8, UTF-8 JSON: format name, version, config fingerprint and fields, counters,
  vocabulary, keys in least-recently-used-first order, the replay sampler's RNG state, scores;
- the program's variables, in `Program.get_state()` order: ``weights.<name>``, ``adam_m.<name>``,
  ``adam_v.<name>`` for each of `Params`, then ``adam_step``; float32;
- ``replay_rows``: int32 (replay_filled, L+1), the filled part of the replay buffer;
- per key, in the header's key order: ``history_lengths`` int32 and ``history_flat`` int32 (the
  ragged histories), ``seen`` int64, ``pending`` int32 (-1: none), ``pending_mask`` bool,
  ``pending_probs`` float32 (K, V) (zeros where none; only the first `Vocabulary.end` columns
  when the rest are zeros, as they are while the model masks ids not in use), ``baseline_pending``
  int32 (-1: none);
- ``baseline_*``: the baseline's back-off table as columns (`consumer.core.snapshot_baseline`).

>>> [name for name, _ in variable_specs(LearnerConfig())][:2], variable_specs(LearnerConfig())[0][1]
(['weights.embedding', 'weights.kernel'], (258, 8))
>>> check_range("history", np.array([1, 2, 9]), 1, 5)
Traceback (most recent call last):
...
consumer.core.snapshot_format.SnapshotError: corrupt snapshot: history ids must lie in [1, 5)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from consumer.core.compiled import initial_weights
from consumer.core.config import LearnerConfig
from consumer.core.network import Params
from consumer.core.scoring import ROLLING, Score

__all__ = [
    "FORMAT",
    "VERSION",
    "SnapshotError",
    "check_range",
    "checked_int",
    "checked_score",
    "key_array_specs",
    "variable_specs",
]

FORMAT = "lstm-stream-snapshot"
VERSION = 1


class SnapshotError(ValueError):
    """A snapshot that cannot be restored: corrupt, of another format version or model config."""


def variable_specs(config: LearnerConfig) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of the program's float32 variables, in `Program.get_state()` order."""
    shapes = [(name, w.shape) for name, w in zip(Params._fields, initial_weights(config), strict=True)]
    return [
        (f"{group}.{name}", shape) for group in ("weights", "adam_m", "adam_v") for name, shape in shapes
    ] + [("adam_step", ())]


def key_array_specs(config: LearnerConfig, keys: int) -> list[tuple[str, type, tuple[int | None, ...]]]:
    """The per-key entries of fixed shape (``history_flat`` is ragged)."""
    return [
        ("history_lengths", np.int32, (keys,)),
        ("seen", np.int64, (keys,)),
        ("pending", np.int32, (keys,)),
        ("pending_mask", np.bool_, (keys,)),
        ("pending_probs", np.float32, (keys, None)),  # vocab_size or the vocabulary's end wide
        ("baseline_pending", np.int32, (keys,)),
    ]


def check_range(name: str, values: np.ndarray, low: int, end: int) -> None:
    """Ids must lie in [low, end): an id past the vocabulary would index out of the model's tables."""
    if values.size and (values.min() < low or values.max() >= end):
        raise SnapshotError(f"corrupt snapshot: {name} ids must lie in [{low}, {end})")


def checked_int(
    data: dict[str, Any], name: str, low: int = 0, high: float = math.inf, within: str = ""
) -> int:
    """Header field `name` of `data` (inside object `within`), an integer in [low, high]."""
    value = data.get(name)
    if type(value) is not int or not low <= value <= high:  # bool is no integer here
        label = f"{within}.{name}" if within else name
        raise SnapshotError(f"corrupt snapshot: {label} must be an integer in [{low}, {high}], got {value!r}")
    return value


def _floats(values: Any, name: str, limit: int) -> list[float]:
    if not isinstance(values, list) or len(values) > limit:
        raise SnapshotError(f"corrupt snapshot: {name} must be a list of at most {limit} numbers")
    if not all(type(v) is float and math.isfinite(v) for v in values):
        raise SnapshotError(f"corrupt snapshot: {name} must hold finite floats")
    return values


def checked_score(data: Any, name: str) -> Score:
    """A `Score` from its header form (`Score.to_dict`), every field checked."""
    if not isinstance(data, dict):
        raise SnapshotError(f"corrupt snapshot: {name} must be an object")
    scored = checked_int(data, "scored", within=name)
    checked_int(data, "hits", high=scored, within=name)
    _floats([data.get("log_loss_sum")], f"{name}.log_loss_sum", 1)
    for part in ("hits_window", "loss_window", "hits_total", "loss_total"):
        if not isinstance(data.get(part), dict) or set(data[part]) != {str(n) for n in ROLLING}:
            raise SnapshotError(f"corrupt snapshot: {name}.{part} must map {ROLLING} to values")
    for n in ROLLING:
        hits = _floats(data["hits_window"][str(n)], f"{name}.hits_window", min(n, scored))
        _floats(data["loss_window"][str(n)], f"{name}.loss_window", min(n, scored))
        _floats([data["hits_total"][str(n)], data["loss_total"][str(n)]], f"{name} totals", 2)
        if not set(hits) <= {0.0, 1.0}:
            raise SnapshotError(f"corrupt snapshot: {name}.hits_window must hold 0.0 and 1.0 only")
    return Score.from_dict(data)
