"""The published prediction: the LSTM's and the count model's distributions mixed, weights learned.

Geometric (logistic) mixing, as context-mixing compressors do (PAQ, cmix): the mixture's
log-probability of a class is a weighted sum of the inputs' log-probabilities, normalised over
the classes in use. After every message the weights take one gradient step on the log-loss of
the mixture the inputs gave *for* that message (before it), so no mixture is ever made with
weights that learned its own target. The weights are a shared vector plus one vector per
previous token (the last token of the key's window), so the mixer learns fast what holds
everywhere and, with more data, where to trust the counts and where the LSTM (after a space in
text, after a login in a session...). A previous token seen only a few times mixes mostly with
an overall vector instead, learned on every message as whole weights (`_weights`). It starts by
copying its last input, the count model's longest blended order (PPM-like), and moves away from
it only where that pays off. A recycled id's vector starts afresh with the id's other rows.

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

__all__ = [
    "MIN_PROB",
    "MIXER_VOCAB_AXES",
    "MixerState",
    "initial_mixer",
    "learn",
    "mix",
    "mixer_shapes",
    "reset",
]

MIN_PROB = 1e-6  # inputs are clipped here: one confident wrong input can't veto a class
DECAY_STEPS = 200.0  # a weight vector's rate decays as 1/sqrt(1 + its updates / DECAY_STEPS)
TRUST = 20.0  # a context's own weights take over from the overall vector as n / (n + TRUST) of its updates


class MixerState(NamedTuple):
    weights: tf.Tensor  # (contexts, inputs): per previous token, its part of the weights
    shared: tf.Tensor  # (inputs,): the part every context shares
    updates: tf.Tensor  # (contexts,): steps each context's vector took (its rate decays)
    shared_updates: tf.Tensor  # (): steps the shared vector took
    overall: tf.Tensor  # (inputs,): whole weights learned on every message: a new context's


def mixer_shapes(inputs: int, contexts: int) -> MixerState:
    return MixerState((contexts, inputs), (inputs,), (contexts,), (), (inputs,))


# Each array's axis over token ids (its contexts are the token before), beside the shapes above.
MIXER_VOCAB_AXES = MixerState(0, None, 0, None, None)


def initial_mixer(inputs: int, contexts: int, start: int) -> MixerState:
    """All weight on input `start` (the baseline's), nothing learned yet."""
    shared = np.zeros(inputs, np.float32)
    shared[start] = 1.0
    return MixerState(
        np.zeros((contexts, inputs), np.float32),
        shared,
        np.zeros(contexts, np.float32),
        np.zeros((), np.float32),
        shared.copy(),
    )


def _log_inputs(probs: tf.Tensor) -> tf.Tensor:
    return tf.math.log(tf.maximum(probs, MIN_PROB))


def _weights(state: MixerState, context: tf.Tensor) -> tf.Tensor:
    """The context's weights: the shared vector plus its own once the context has been seen
    often, the overall vector while it is new. The shared vector is only the part the contexts
    have in common (it may well sum below zero, the contexts' own parts making up for it), so a
    rare previous token would turn the inputs' consensus upside down with it alone."""
    seen = tf.gather(state.updates, context)
    trust = seen / (seen + TRUST)
    return trust * (state.shared + tf.gather(state.weights, context)) + (1.0 - trust) * state.overall


def mix(state: MixerState, probs: tf.Tensor, context: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """The mixture (V,) of the inputs' distributions `probs` (inputs, V) over the `valid` classes."""
    return _softmax(_log_inputs(probs), _weights(state, context), valid)


def _softmax(logs: tf.Tensor, weights: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    z = tf.linalg.matvec(logs, weights, transpose_a=True)
    return tf.nn.softmax(tf.where(valid, z, tf.constant(-1e9, z.dtype)))


def learn(
    state: MixerState,
    probs: tf.Tensor,
    context: tf.Tensor,
    valid: tf.Tensor,
    target: tf.Tensor,
    rate: float,
    own: tf.Tensor | float = 1.0,
) -> MixerState:
    """One gradient step on -log mixture(target) for the shared vector with the context's own,
    and one for the overall vector, each on the mixture it makes. `own` 0 leaves the context's
    own vector alone: a message read as an outlier, which every input failed, says nothing
    about how to weigh them after that token."""
    logs = _log_inputs(probs)
    # Gathers, not slicing: an index sliced from an argument would make XLA compile the
    # argument's values into the program (one compile per call).
    residual = _softmax(logs, state.shared + tf.gather(state.weights, context), valid)
    overall = _softmax(logs, state.overall, valid)
    at_target = tf.gather(logs, target, axis=1)
    gradient = at_target - tf.linalg.matvec(logs, residual)  # d log q(target) / d weights
    gradient_overall = at_target - tf.linalg.matvec(logs, overall)
    mine = tf.one_hot(context, tf.shape(state.weights)[0]) * own
    own_rate = rate / tf.sqrt(1.0 + tf.gather(state.updates, context) / DECAY_STEPS)
    shared_rate = rate / tf.sqrt(1.0 + state.shared_updates / DECAY_STEPS)
    return MixerState(
        state.weights + mine[:, None] * (own_rate * gradient)[None, :],
        state.shared + shared_rate * gradient,
        state.updates + mine,
        state.shared_updates + 1.0,
        state.overall + shared_rate * gradient_overall,
    )


def reset(state: MixerState, context: tf.Tensor) -> MixerState:
    """Context `context` (a recycled id; -1: none) starts afresh."""
    keep = 1.0 - tf.one_hot(context, tf.shape(state.weights)[0])  # all ones for -1
    return state._replace(weights=state.weights * keep[:, None], updates=state.updates * keep)
