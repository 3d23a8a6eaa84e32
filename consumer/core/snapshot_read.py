"""Reading a learner snapshot: untrusted bytes checked against the config, then parsed.

Everything is validated before a learner is touched: the archive, the header's format name,
version and config fingerprint, every scalar's type and range, every array's dtype and shape
(read from its ``.npy`` header before its data is loaded), and the ids inside the arrays.
Any problem is a :class:`SnapshotError`; nothing is ever unpickled.

>>> from consumer.core.config import LearnerConfig
>>> read_snapshot(b"PK\\x03\\x04 truncated", LearnerConfig())
Traceback (most recent call last):
...
consumer.core.snapshot_format.SnapshotError: not a snapshot: BadZipFile: File is not a zip file
"""

from __future__ import annotations

import contextlib
import io
import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from consumer.core.baseline import BackoffBaseline
from consumer.core.config import LearnerConfig
from consumer.core.learner import Key, KeyState
from consumer.core.scoring import Score
from consumer.core.snapshot_baseline import BASELINE_ENTRIES, baseline_from_arrays
from consumer.core.snapshot_format import (
    FORMAT,
    VERSION,
    SnapshotError,
    check_range,
    checked_int,
    checked_score,
    key_array_specs,
    variable_specs,
)
from consumer.core.vocab import Vocabulary

__all__ = ["SnapshotData", "read_snapshot"]


@dataclass
class SnapshotData:
    """A validated snapshot, as the objects a learner holds."""

    variables: list[np.ndarray]
    vocab: Vocabulary
    keys: OrderedDict[Key, KeyState]
    baseline: BackoffBaseline
    score: Score
    baseline_score: Score
    rng_state: dict[str, Any]
    replay_rows: np.ndarray
    counters: dict[str, int]  # model_step, messages, evicted_keys, replay_filled, replay_next
    oov_seen: bool


@contextlib.contextmanager
def _foreign_errors(what: str) -> Iterator[None]:
    # zipfile, numpy.lib.format and json parse untrusted bytes here and can fail in many ways
    # (BadZipFile, EOFError, OSError, KeyError, ValueError, RecursionError, MemoryError...):
    # every one of them means the same thing to the caller.
    try:
        yield
    except SnapshotError:
        raise
    except Exception as exc:
        raise SnapshotError(f"{what}: {type(exc).__name__}: {exc}") from exc


class _Archive:
    """The .npz entries, each checked against its expected dtype and shape before loading."""

    def __init__(self, data: bytes) -> None:
        with _foreign_errors("not a snapshot"):
            npz = np.load(io.BytesIO(data), allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile) or npz.zip is None:
                raise SnapshotError("not a snapshot: a single .npy array, not an .npz archive")
            self.npz, self.zip = npz, npz.zip
            self.names = set(npz.files)

    def array(self, name: str, dtype: type, shape: tuple[int | None, ...]) -> np.ndarray:
        """Entry `name`; None in `shape` accepts any length on that axis."""
        if name not in self.names:
            raise SnapshotError(f"corrupt snapshot: entry {name!r} is missing")
        with _foreign_errors(f"corrupt snapshot: entry {name!r}"):
            with self.zip.open(f"{name}.npy") as stream:
                version = np.lib.format.read_magic(stream)
                read = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                    version, np.lib.format.read_array_header_2_0
                )
                found_shape, _, found_dtype = read(stream)
            fits = len(found_shape) == len(shape) and all(
                want is None or want == got for want, got in zip(shape, found_shape, strict=True)
            )
            if found_dtype != np.dtype(dtype) or not fits:
                want = tuple("*" if n is None else n for n in shape)
                raise SnapshotError(
                    f"corrupt snapshot: entry {name!r} is {found_dtype} {tuple(found_shape)}, "
                    f"expected {np.dtype(dtype)} {want}"
                )
            return np.asarray(self.npz[name])


def _header(archive: _Archive, config: LearnerConfig) -> dict[str, Any]:
    raw = archive.array("header", np.uint8, (None,))
    with _foreign_errors("corrupt snapshot: header"):
        header = json.loads(raw.tobytes().decode("utf-8"))
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise SnapshotError(f"not a snapshot: the header does not name the format {FORMAT!r}")
    if type(header.get("version")) is not int or header["version"] != VERSION:
        raise SnapshotError(
            f"unsupported snapshot version {header.get('version')!r} (this build reads version {VERSION})"
        )
    _check_config(header, config)
    return header


def _check_config(header: dict[str, Any], config: LearnerConfig) -> None:
    theirs, ours = header.get("config"), config.model_fields()
    if not isinstance(theirs, dict):
        raise SnapshotError("corrupt snapshot: the header holds no config")
    differ = [
        f"--{name.replace('_', '-')} is {theirs.get(name)!r} in the snapshot, {ours.get(name)!r} here"
        for name in sorted(set(theirs) | set(ours))
        if theirs.get(name, ...) != ours.get(name, ...)
    ]
    if differ:
        raise SnapshotError("snapshot from another model configuration: " + "; ".join(differ))
    if header.get("fingerprint") != config.fingerprint():
        raise SnapshotError(
            f"snapshot fingerprint {header.get('fingerprint')!r} != {config.fingerprint()!r} "
            "although the config fields agree (written by another version?)"
        )


def _vocabulary(header: dict[str, Any], config: LearnerConfig) -> Vocabulary:
    vocab = header.get("vocabulary")
    if not isinstance(vocab, dict):
        raise SnapshotError("corrupt snapshot: the header holds no vocabulary")
    tokens = vocab.get("tokens")
    if not isinstance(tokens, list) or not all(isinstance(t, str) for t in tokens):
        raise SnapshotError("corrupt snapshot: vocabulary.tokens must be a list of strings")
    if len(tokens) > config.capacity or len(set(tokens)) != len(tokens):
        raise SnapshotError(f"corrupt snapshot: {len(tokens)} tokens, duplicated or beyond --capacity")
    oov = checked_int(vocab, "oov_count", within="vocabulary")
    if oov and len(tokens) < config.capacity:
        raise SnapshotError("corrupt snapshot: out-of-vocabulary tokens before the vocabulary is full")
    return Vocabulary(config.capacity, tokens, oov)


def _key_names(header: dict[str, Any]) -> list[Key]:
    keys = header.get("keys")
    if not isinstance(keys, list) or not all(k is None or isinstance(k, str) for k in keys):
        raise SnapshotError("corrupt snapshot: keys must be a list of strings and nulls")
    if len(set(keys)) != len(keys):
        raise SnapshotError("corrupt snapshot: duplicate keys")
    return keys


def _rng_state(value: Any) -> dict[str, Any]:
    with _foreign_errors("corrupt snapshot: rng state"):
        probe = np.random.default_rng(0).bit_generator  # the learner's kind of generator
        probe.state = value
        return dict(probe.state)


def _counters(header: dict[str, Any], config: LearnerConfig) -> dict[str, int]:
    buffer = config.replay_buffer
    counters = {name: checked_int(header, name) for name in ("model_step", "messages", "evicted_keys")}
    counters["replay_filled"] = filled = checked_int(header, "replay_filled", high=buffer)
    counters["replay_next"] = following = checked_int(header, "replay_next", high=buffer - 1)
    if filled < buffer and following != filled:
        raise SnapshotError("corrupt snapshot: replay_next must equal replay_filled until the buffer fills")
    return counters


def _full_width(probs: np.ndarray, end: int, size: int) -> np.ndarray:
    """Pending probabilities over every id; the snapshot may omit the zero columns past `end`."""
    if probs.shape[1] == size:
        return probs
    if probs.shape[1] != end:
        raise SnapshotError(f"corrupt snapshot: pending_probs must be {end} or {size} wide")
    full = np.zeros((probs.shape[0], size), np.float32)
    full[:, :end] = probs
    return full


def _key_states(
    archive: _Archive, keys: list[Key], config: LearnerConfig, end: int
) -> OrderedDict[Key, KeyState]:
    arrays = {
        name: archive.array(name, dtype, shape) for name, dtype, shape in key_array_specs(config, len(keys))
    }
    lengths, seen = arrays["history_lengths"], arrays["seen"]
    if seen.size and seen.min() < 0:
        raise SnapshotError("corrupt snapshot: negative message counts")
    if not np.array_equal(lengths, np.minimum(seen, max(config.window, config.baseline_order))):
        raise SnapshotError("corrupt snapshot: history lengths disagree with the keys' message counts")
    flat = archive.array("history_flat", np.int32, (int(lengths.sum()),))
    pending, mask = arrays["pending"], arrays["pending_mask"]
    if not np.array_equal(mask, pending >= 0):
        raise SnapshotError("corrupt snapshot: pending_mask disagrees with pending")
    check_range("history_flat", flat, 1, end)
    check_range("pending", pending, -1, config.vocab_size)
    check_range("baseline_pending", arrays["baseline_pending"], -1, end)
    histories = flat.tolist()
    starts = np.concatenate([[0], np.cumsum(lengths)]).tolist()
    probs = _full_width(arrays["pending_probs"], end, config.vocab_size)
    states: OrderedDict[Key, KeyState] = OrderedDict()
    for i, (key, count, guess, base) in enumerate(
        zip(keys, seen.tolist(), pending.tolist(), arrays["baseline_pending"].tolist(), strict=True)
    ):
        states[key] = KeyState(
            history=histories[starts[i] : starts[i + 1]],
            seen=count,
            pending=None if guess < 0 else guess,
            pending_probs=probs[i] if guess >= 0 else None,
            baseline_pending=None if base < 0 else base,
        )
    return states


def _baseline(archive: _Archive, config: LearnerConfig, end: int) -> BackoffBaseline:
    lengths = archive.array("baseline_context_lengths", np.int32, (None,))
    contexts = archive.array("baseline_contexts", np.int32, (int(lengths.sum(dtype=np.int64)),))
    best = archive.array("baseline_best", np.int32, lengths.shape)
    followers = archive.array("baseline_followers", np.int32, lengths.shape)
    rows = (int(followers.sum(dtype=np.int64)),)
    arrays = {
        "baseline_context_lengths": lengths,
        "baseline_contexts": contexts,
        "baseline_best": best,
        "baseline_followers": followers,
        "baseline_next": archive.array("baseline_next", np.int32, rows),
        "baseline_counts": archive.array("baseline_counts", np.int64, rows),
    }
    return baseline_from_arrays(arrays, config.baseline_order, end)


def read_snapshot(data: bytes, config: LearnerConfig) -> SnapshotData:
    """Check `data` against `config` and parse it; a `SnapshotError` says what is wrong."""
    archive = _Archive(data)
    header = _header(archive, config)
    expected = {"header", "replay_rows", "history_flat", *BASELINE_ENTRIES}
    expected |= {name for name, _ in variable_specs(config)}
    expected |= {name for name, _, _ in key_array_specs(config, 0)}
    if archive.names != expected:
        missing, extra = sorted(expected - archive.names), sorted(archive.names - expected)
        raise SnapshotError(f"corrupt snapshot: entries missing {missing}, unexpected {extra}")
    vocab = _vocabulary(header, config)
    end = vocab.end
    oov_seen = header.get("oov_seen")
    if oov_seen is not (vocab.oov_count > 0):
        raise SnapshotError("corrupt snapshot: oov_seen must be a boolean agreeing with oov_count")
    keys = _key_names(header)
    counters = _counters(header, config)
    variables = [archive.array(name, np.float32, shape) for name, shape in variable_specs(config)]
    replay = archive.array("replay_rows", np.int32, (counters["replay_filled"], config.window + 1))
    check_range("replay_rows", replay, 0, end)
    baseline = _baseline(archive, config, end)
    return SnapshotData(
        variables=variables,
        vocab=vocab,
        keys=_key_states(archive, keys, config, end),
        baseline=baseline,
        score=checked_score(header.get("score"), "score"),
        baseline_score=checked_score(header.get("baseline_score"), "baseline_score"),
        rng_state=_rng_state(header.get("rng")),
        replay_rows=replay,
        counters=counters,
        oov_seen=oov_seen,
    )
