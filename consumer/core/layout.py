"""A program's state: its arrays, their shapes and vocabulary axes, their initial values, and
the vocabulary widths programs are compiled for.

Every array over token ids (embedding, output layer, their Adam slots, the mixer's contexts) has
its vocabulary axis beside its shape (`state_layout`): a call reads and writes only the first W
ids, those in use (`widths`), and past the widest W used the state stays `initial_state`.
"""

from __future__ import annotations

import numpy as np

from consumer.core.config import LearnerConfig
from consumer.core.mixer import MIXER_VOCAB_AXES, initial_mixer, mixer_shapes
from consumer.core.network import PARAM_VOCAB_AXES, Params, param_shapes
from consumer.core.vocab import RESERVED, steps

__all__ = [
    "initial_state",
    "initial_weights",
    "mixer_size",
    "state_layout",
    "state_shapes",
    "width_for",
    "widths",
]


def initial_weights(config: LearnerConfig) -> Params:
    """Keras's initializers for Embedding, LSTM and Dense, from a seeded NumPy generator."""
    rng = np.random.default_rng(config.seed)
    shapes = param_shapes(config.vocab_size, config.embedding_dim, config.units)

    def glorot(shape: tuple[int, ...]) -> np.ndarray:
        limit = np.sqrt(6.0 / sum(shape))
        return rng.uniform(-limit, limit, shape).astype(np.float32)

    def orthogonal(shape: tuple[int, ...]) -> np.ndarray:
        rows, cols = shape
        q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        return (q if rows >= cols else q.T).astype(np.float32)

    units = config.units
    bias = np.zeros(shapes.bias, np.float32)
    bias[units : 2 * units] = 1.0  # unit_forget_bias
    return Params(
        embedding=rng.uniform(-0.05, 0.05, shapes.embedding).astype(np.float32),
        kernel=glorot(shapes.kernel),
        recurrent_kernel=orthogonal(shapes.recurrent_kernel),
        bias=bias,
        dense_kernel=glorot(shapes.dense_kernel),
        dense_bias=np.zeros(shapes.dense_bias, np.float32),
    )


def mixer_size(config: LearnerConfig) -> tuple[int, int]:
    """(inputs, contexts) of the mixer: the LSTM and the count rows it reads; per previous token."""
    return 1 + len(config.mixed_rows), config.vocab_size


WIDTHS = (8, 32, 128)  # output widths compiled below the vocabulary's first limit


def widths(vocab_size: int) -> tuple[int, ...]:
    """The vocabulary widths a program is compiled for: a few narrow ones, then one per limit
    the vocabulary grows through (`consumer.core.vocab.steps`), the last the full size."""
    limits = [step + RESERVED for step in steps(vocab_size - RESERVED)]
    return (*(w for w in WIDTHS if w < limits[0]), *limits)


def width_for(vocab_end: int, vocab_size: int) -> int:
    """The narrowest width that holds the ids in use (ids below vocab_end)."""
    return next(w for w in widths(vocab_size) if w >= vocab_end)


def state_layout(config: LearnerConfig) -> list[tuple[tuple[int, ...], int | None]]:
    """The program's state, each array's shape with its axis over token ids (None: none):
    weights, Adam m, Adam v (each in `Params` order), the Adam step, then the mixer's
    `MixerState`."""
    shapes = param_shapes(config.vocab_size, config.embedding_dim, config.units)
    params = list(zip(shapes, PARAM_VOCAB_AXES, strict=True))
    mixer = list(zip(mixer_shapes(*mixer_size(config)), MIXER_VOCAB_AXES, strict=True))
    return [*params, *params, *params, ((), None), *mixer]


def initial_state(config: LearnerConfig) -> list[np.ndarray]:
    """A new program's state, in `state_layout` order: Keras's initial weights, Adam at zero, and
    a mixer on its last input (the count model's longest blended order). Past the vocabulary
    width in use, the state stays this for ever (`Program._write`)."""
    weights = initial_weights(config)
    m, v = ([np.zeros_like(w) for w in weights] for _ in range(2))
    inputs, contexts = mixer_size(config)
    mixer = initial_mixer(inputs, contexts, start=inputs - 1)
    return [*weights, *m, *v, np.zeros((), np.float32), *(np.asarray(a, np.float32) for a in mixer)]


def state_shapes(config: LearnerConfig) -> list[tuple[int, ...]]:
    """The shapes of `state_layout`."""
    return [shape for shape, _ in state_layout(config)]
