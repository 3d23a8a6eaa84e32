"""The model's section of a snapshot: the program's variables, cut to the vocabulary in use.

Every array over token ids (embedding, output layer, their Adam slots, the mixer's contexts) is
saved only up to the vocabulary width the learner has reached (`consumer.core.layout.widths`):
past it the program never wrote, so the state there is still a new program's
(`initial_state`, seeded by the config), and `read` rebuilds it from there. A learner of a few
hundred tokens at the default capacity of 4,096 saves a few percent of its weights: less to
encode, compress and send at every commit. Versions before 6 saved the whole arrays.

>>> from consumer.core.config import LearnerConfig
>>> variable_specs(LearnerConfig())[0]
('model.weights.embedding', (4099, 8))
"""

from __future__ import annotations

from typing import Any

import numpy as np

from consumer.core.config import MIXED_ORDERS_BEFORE, LearnerConfig
from consumer.core.layout import initial_state, mixer_size, state_layout, state_shapes, width_for, widths
from consumer.core.mixer import MixerState, initial_mixer
from consumer.core.network import Params
from consumer.core.snapshot_read import Archive, SnapshotError

__all__ = ["CUT_FROM", "read", "save", "variable_specs"]

CUT_FROM = 6  # the first version whose arrays are cut to the width in use
OVERALL = "model.mixer.overall"
MIXER_INPUTS = {f"model.mixer.{name}" for name in ("weights", "shared", "overall")}  # (..., inputs)


def variable_specs(config: LearnerConfig) -> list[tuple[str, tuple[int, ...]]]:
    """The name and full shape of each of the program's variables, from the config alone."""
    names = [f"{slot}.{name}" for slot in ("weights", "adam_m", "adam_v") for name in Params._fields]
    names += ["adam_step", *(f"mixer.{name}" for name in MixerState._fields)]
    return [(f"model.{name}", shape) for name, shape in zip(names, state_shapes(config), strict=True)]


def save(state: list[np.ndarray], config: LearnerConfig, vocab_end: int) -> tuple[int, dict[str, np.ndarray]]:
    """The width saved and the arrays of `state` (`Program.get_state()`) cut to it."""
    width = width_for(vocab_end, config.vocab_size)
    axes = [axis for _, axis in state_layout(config)]
    arrays = {
        name: np.asarray(_cut(a, axis, width), np.float32)
        for (name, _), a, axis in zip(variable_specs(config), state, axes, strict=True)
    }
    return width, arrays


def read(archive: Archive, header: dict[str, Any], config: LearnerConfig, vocab_end: int) -> list[np.ndarray]:
    """The program's state from a snapshot of any readable version, checked: its full arrays."""
    version = header["version"]
    if version < CUT_FROM:
        return [
            _older_mixer(archive, name, shape, config, version)
            if version < 5 and name in MIXER_INPUTS
            else archive.array(name, np.float32, shape)
            for name, shape in variable_specs(config)
        ]
    width = header.get("model_width")
    if type(width) is not int or width not in widths(config.vocab_size) or width < vocab_end:
        raise SnapshotError(
            f"corrupt snapshot: model_width must be a compiled width holding the vocabulary in use "
            f"(at least {width_for(vocab_end, config.vocab_size)}), got {width!r}"
        )
    out = initial_state(config)
    for (name, shape), axis, full in zip(
        variable_specs(config), (a for _, a in state_layout(config)), out, strict=True
    ):
        cut = tuple(width if i == axis else n for i, n in enumerate(shape))
        part = archive.array(name, np.float32, cut)
        if axis is None:
            full[...] = part
        elif axis == 0:
            full[:width] = part
        else:
            full[:, :width] = part
    return out


def _cut(array: np.ndarray, axis: int | None, width: int) -> np.ndarray:
    if axis is None:
        return array
    return array[:width] if axis == 0 else array[:, :width]


def _older_mixer(
    archive: Archive, name: str, shape: tuple[int, ...], config: LearnerConfig, version: int
) -> np.ndarray:
    """Older versions' mixer read fewer count rows (order 3 from version 4 on, order 1 from
    version 5): the inputs it had keep their weights, a new one starts at 0, so the mixture is
    what it was."""
    orders = MIXED_ORDERS_BEFORE[max(3, min(version, 4))]
    kept = [0, *(1 + config.mixed_rows.index(row) for row in config.mixed_rows_of(orders))]
    if name == OVERALL and version < 3:
        old = _overall_of_version_2(config)[kept]  # version 2 had none: a new learner's
    else:
        old = archive.array(name, np.float32, (*shape[:-1], len(kept)))
    out = np.zeros(shape, np.float32)
    out[..., kept] = old
    return out


def _overall_of_version_2(config: LearnerConfig) -> np.ndarray:
    """Version 2 had no overall mixer vector: it starts as a new learner's."""
    inputs, contexts = mixer_size(config)
    return np.asarray(initial_mixer(inputs, contexts, start=inputs - 1).overall, np.float32)
