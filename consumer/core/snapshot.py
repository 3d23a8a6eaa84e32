"""A learner's complete state as bytes and back: numeric arrays and a JSON header, never pickle.

The bytes are an ``.npz`` archive. Its ``header`` entry is UTF-8 JSON: the format name and
version, the config fingerprint and fields, the learner's counters, and one object per part;
every other entry is an array named ``part.name``. Each part saves and loads itself next to
its own code (``save() -> (header object, arrays)``, ``load(Section, ...)``; the model's and
the count model's in modules of their own beside theirs, `consumer.core.snapshot_model` and
`consumer.core.count_model_snapshot`), and checks what it reads (`consumer.core.snapshot_read`):

- ``model``: the program's variables in `Program.get_state()` order, ``weights.<name>``,
  ``adam_m.<name>``, ``adam_v.<name>`` for each of `Params`, ``adam_step``, then the mixer's
  ``mixer.<name>`` for each of `MixerState` (float32: the mixer runs in the program), each
  over token ids cut to the header's ``model_width`` (`consumer.core.snapshot_model`);
- ``vocab``: tokens in recency order with their ids and the serials that assigned them;
- ``keys``: per key its history (ids and serials), message count and pending predictions;
- ``baseline``: the count model's contexts and followers as columns;
- ``replay``: the filled rows of the replay buffer and the sampler's RNG state;
- ``score_<predictor>``: each predictor's scores and rolling windows;
- in the header, ``feedback``: the partition's anomaly marks (`consumer.core.feedback`), JSON;
- in the header, ``outlier_readings``: how often each reading of an outlier won
  (`consumer.core.repair`). Version 2 snapshots, from before outliers were read and the mixer
  had an overall vector, restore with no outlier open and a new learner's overall vector.

`restore` checks the bytes against the config before building anything, and the restored
learner continues bit-identically to the one that was snapshotted: same predictions,
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
consumer.core.snapshot_read.SnapshotError: snapshot from another model configuration: --window is 4 in the snapshot, 5 here
"""  # noqa: E501

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from consumer.core import count_model_snapshot, snapshot_model
from consumer.core.config import LearnerConfig
from consumer.core.feedback import Feedback
from consumer.core.keys import KeyTable
from consumer.core.learner import Learner
from consumer.core.novelty import Novelty
from consumer.core.repair import READINGS, Readings
from consumer.core.replay import Replay
from consumer.core.scoring import PREDICTORS, Score
from consumer.core.snapshot_read import Archive, Section, SnapshotError, checked_int
from consumer.core.vocab import FIRST_ID, Vocabulary

__all__ = [
    "FORMAT",
    "VERSION",
    "SnapshotError",
    "load",
    "recorded_config",
    "restore",
    "save",
    "snapshot_bytes",
    "write_whole",
]

FORMAT = "lstm-stream-snapshot"
# 2: the begin-of-stream id, recycled vocabulary, mixer, three predictors; 3: outliers; 4: the
# count model's births (`consumer.core.count_model`), the vocabulary's sightings (it grows), the
# mixer reads order 3 too; 5: the mixer reads order 1 too (`_older_mixer`), the published NEW
# probability's weights (`consumer.core.novelty`) and each key's mixture NEW probability; 6: the
# model's arrays cut to the vocabulary width in use (`consumer.core.snapshot_model`); 7: the
# anomaly marks (`consumer.core.feedback`), none in older versions
VERSION = 7
# A version 2 snapshot is read with no outlier open and a new overall mixer vector.
READABLE = (2, 3, 4, 5, 6, 7)


def snapshot_bytes(learner: Learner) -> bytes:
    """Everything `learner` holds, as the bytes of an .npz archive."""
    config = learner.config
    header: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "fingerprint": config.fingerprint(),
        "config": config.model_fields(),
        "model_step": learner.model_step,
        "messages": learner.messages,
        "outlier_readings": learner.readings.wins,
        "novelty_weight": learner.novelty.weight,
        "feedback": learner.feedback.save(),
    }
    header["model_width"], arrays = snapshot_model.save(
        learner.program.get_state(), config, learner.vocab.end
    )
    parts = {
        "vocab": learner.vocab.save(),
        "keys": learner.keys.save(learner.vocab.end),
        "baseline": count_model_snapshot.save(learner.count_model),
        "replay": learner.replay.save(),
        **{f"score_{name}": score.save() for name, score in learner.scores.items()},
    }
    for part, (fields, part_arrays) in parts.items():
        header[part] = fields
        arrays.update({f"{part}.{name}": array for name, array in part_arrays.items()})
    arrays["header"] = np.frombuffer(json.dumps(header, separators=(",", ":")).encode(), np.uint8)
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
    archive = Archive(bytes(data))
    header = archive.header()
    _check_header(header, config)
    parts = _read_parts(archive, header, config)
    archive.check_all_read()
    learner = into if into is not None else Learner(config)
    learner.program.set_state(parts.pop("variables"))
    for name, value in parts.items():
        setattr(learner, name, value)
    learner.names = list(learner.vocab.tokens)
    return learner


def _read_parts(archive: Archive, header: dict[str, Any], config: LearnerConfig) -> dict[str, Any]:
    messages = checked_int(header, "messages")
    model_step = checked_int(header, "model_step", high=messages)
    size = config.vocab_size
    version = header["version"]
    vocab = Vocabulary.load(Section(archive, header, "vocab"), config.capacity, messages, growth=version >= 4)
    end = vocab.end
    variables = snapshot_model.read(archive, header, config, end)
    if not all(np.isfinite(v).all() for v in variables):
        raise SnapshotError("corrupt snapshot: the model's variables must be finite")
    keep = config.history
    outliers = version >= 3
    novelty = version >= 5
    keys = KeyTable.load(
        Section(archive, header, "keys"), config.max_keys, keep, end, messages, outliers, novelty
    )
    weight = header.get("novelty_weight") if novelty else 0.5
    if type(weight) is not float or not 0.0 < weight < 1.0:
        raise SnapshotError("corrupt snapshot: novelty_weight must be a float within (0, 1)")
    wins = header.get("outlier_readings", [0] * len(READINGS)) if outliers else [0] * len(READINGS)
    if not (
        isinstance(wins, list) and len(wins) == len(READINGS) and all(type(w) is int and w >= 0 for w in wins)
    ):
        raise SnapshotError("corrupt snapshot: outlier_readings must be three counts")
    in_use = {int(vocab.assigned_at[i]): i for i in range(FIRST_ID, end)}
    count_model = count_model_snapshot.load(
        Section(archive, header, "baseline"),
        config.count_orders,
        size,
        config.baseline_max_contexts,
        config.baseline_order,
        in_use,
        births=version >= 4,
    )
    if count_model.unigram[end:].any():
        raise SnapshotError("corrupt snapshot: baseline counts for ids not in use")
    replay = Replay.load(
        Section(archive, header, "replay"),
        config.replay_buffer,
        config.window + 1,
        config.seed + 1,
        end,
        messages,
    )
    scores = {name: Score.load(Section(archive, header, f"score_{name}")) for name in PREDICTORS}
    feedback = Feedback.load(Section(archive, header, "feedback")) if version >= 7 else Feedback()
    return {
        "variables": variables,
        "vocab": vocab,
        "keys": keys,
        "count_model": count_model,
        "replay": replay,
        "scores": scores,
        "messages": messages,
        "model_step": model_step,
        "readings": Readings(tuple(wins)),
        "novelty": Novelty(weight),
        "feedback": feedback,
    }


def _check_header(header: dict[str, Any], config: LearnerConfig) -> None:
    if header.get("format") != FORMAT:
        raise SnapshotError(f"not a snapshot: the header does not name the format {FORMAT!r}")
    if type(header.get("version")) is not int or header["version"] not in READABLE:
        raise SnapshotError(
            f"unsupported snapshot version {header.get('version')!r} "
            f"(this build reads versions {', '.join(map(str, READABLE))})"
        )
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


def save(learner: Learner, path: str | os.PathLike[str]) -> None:
    """Write `learner`'s snapshot to `path`, whole or not at all (a crash leaves the old file)."""
    write_whole(Path(path), snapshot_bytes(learner))


def write_whole(target: Path, data: bytes) -> None:
    """`data` to `target` under a temporary name, then renamed into place: no reader ever
    sees half a file."""
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, target)


def load(path: str | os.PathLike[str], config: LearnerConfig | None = None) -> Learner:
    """A learner continuing exactly where the snapshot file `path` was saved (`save`, `evaluate
    --save`). `config`: None takes the model settings the snapshot records (the others at their
    defaults); given, it must agree with them, as for `restore`."""
    data = Path(path).read_bytes()
    return restore(data, config if config is not None else LearnerConfig(**recorded_config(data)))


def recorded_config(data: bytes) -> dict[str, Any]:
    """The model settings a snapshot was written with (`LearnerConfig.model_fields`), checked
    against the settings this build knows."""
    header = Archive(bytes(data)).header()
    if header.get("format") != FORMAT:
        raise SnapshotError(f"not a snapshot: the header does not name the format {FORMAT!r}")
    fields = header.get("config")
    known = set(LearnerConfig().model_fields())
    if not isinstance(fields, dict) or not set(fields) <= known:
        unknown = sorted(set(fields) - known) if isinstance(fields, dict) else []
        raise SnapshotError(f"the snapshot's model settings are not this build's: {unknown or fields!r}")
    return fields
