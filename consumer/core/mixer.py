"""The published prediction: the LSTM's and the count model's distributions mixed, weights learned.

Geometric (logistic) mixing, as context-mixing compressors do (PAQ, cmix): the mixture's
log-probability of a class is a weighted sum of the inputs' log-probabilities, normalised over
the classes in use. After every message the weights take one gradient step on the log-loss of
the mixture the inputs gave *for* that message (before it), so no mixture is ever made with
weights that learned its own target. The weights are a shared vector plus one vector per
previous token (the last token of the key's window), so the mixer learns fast what holds
everywhere and, with more data, where to trust the counts and where the LSTM (after a space in
text, after a login in a session...). It starts by copying its last input, the count model's
longest blended order (PPM-like), and moves away from it only where that pays off. A recycled
id's vector starts afresh with the id's other rows.

The mixer runs inside the compiled program, message by message after the LSTM's step; its
state is part of the program's variables (`MixerState`, saved with them).

>>> state = initial_mixer(inputs=2, contexts=4, start=1)
>>> probs = tf.constant([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]])
>>> valid = tf.constant([True, True, True])
>>> [round(float(p), 2) for p in mix(state, probs, 3, valid)]
[0.2, 0.5, 0.3]
>>> for _ in range(50):
...     state = learn(state, probs, 3, valid, 0, rate=0.5)
>>> bool(mix(state, probs, 3, valid)[0] > 0.5)
True
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import tensorflow as tf

__all__ = ["MIN_PROB", "MixerState", "initial_mixer", "learn", "mix", "mixer_shapes", "reset"]

MIN_PROB = 1e-6  # inputs are clipped here: one confident wrong input can't veto a class
DECAY_STEPS = 200.0  # a weight vector's rate decays as 1/sqrt(1 + its updates / DECAY_STEPS)


class MixerState(NamedTuple):
    weights: tf.Tensor  # (contexts, inputs): per previous token, its part of the weights
    shared: tf.Tensor  # (inputs,): the part every context shares
    updates: tf.Tensor  # (contexts,): steps each context's vector took (its rate decays)
    shared_updates: tf.Tensor  # (): steps the shared vector took


def mixer_shapes(inputs: int, contexts: int) -> MixerState:
    return MixerState((contexts, inputs), (inputs,), (contexts,), ())


def initial_mixer(inputs: int, contexts: int, start: int) -> MixerState:
    """All weight on input `start` (the baseline's), nothing learned yet."""
    shared = np.zeros(inputs, np.float32)
    shared[start] = 1.0
    return MixerState(
        np.zeros((contexts, inputs), np.float32),
        shared,
        np.zeros(contexts, np.float32),
        np.zeros((), np.float32),
    )


def _log_inputs(probs: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.maximum(probs, MIN_PROB))


def mix(state: MixerState, probs: tf.Tensor, context: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """The mixture (V,) of the inputs' distributions `probs` (inputs, V) over the `valid` classes."""
    z = tf.linalg.matvec(
        _log_inputs(probs), state.shared + tf.gather(state.weights, context), transpose_a=True
    )
    return tf.nn.softmax(tf.where(valid, z, tf.constant(-1e9, z.dtype)))


def learn(
    state: MixerState, probs: tf.Tensor, context: tf.Tensor, valid: tf.Tensor, target: tf.Tensor, rate: float
) -> MixerState:
    """One gradient step on -log mixture(target)."""
    logs = _log_inputs(probs)
    # Gathers, not slicing: an index sliced from an argument would make XLA compile the
    # argument's values into the program (one compile per call).
    z = tf.linalg.matvec(logs, state.shared + tf.gather(state.weights, context), transpose_a=True)
    q = tf.nn.softmax(tf.where(valid, z, tf.constant(-1e9, z.dtype)))
    gradient = tf.gather(logs, target, axis=1) - tf.linalg.matvec(logs, q)  # d log q(target) / d weights
    mine = tf.one_hot(context, tf.shape(state.weights)[0])
    own_rate = rate / tf.sqrt(1.0 + tf.gather(state.updates, context) / DECAY_STEPS)
    shared_rate = rate / tf.sqrt(1.0 + state.shared_updates / DECAY_STEPS)
    return MixerState(
        state.weights + mine[:, None] * (own_rate * gradient)[None, :],
        state.shared + shared_rate * gradient,
        state.updates + mine,
        state.shared_updates + 1.0,
    )


def reset(state: MixerState, context: tf.Tensor) -> MixerState:
    """Context `context` (a recycled id; -1: none) starts afresh."""
    keep = 1.0 - tf.one_hot(context, tf.shape(state.weights)[0])  # all ones for -1
    return state._replace(weights=state.weights * keep[:, None], updates=state.updates * keep)
