"""The hand-written LSTM math matches TensorFlow's autodiff and Keras's LSTM layer."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras
import numpy as np
import pytest
import tensorflow as tf

from consumer.core.compiled import configure_threads
from consumer.core.network import Params, forward, loss_and_grads, masked_logits

configure_threads(1, 1)  # before any op: the learner tests rely on the same (deterministic) pools

VOCAB, DIM, UNITS, STEPS = 12, 5, 6, 9


def random_params(seed: int) -> Params:
    rng = np.random.default_rng(seed)
    shapes = [(VOCAB, DIM), (DIM, 4 * UNITS), (UNITS, 4 * UNITS), (4 * UNITS,), (UNITS, VOCAB), (VOCAB,)]
    return Params(*(tf.constant(rng.normal(0, 0.4, s).astype(np.float32)) for s in shapes))


@pytest.mark.parametrize("loss_steps", [1, 4, STEPS])
def test_gradient_matches_autodiff(loss_steps: int) -> None:
    rng = np.random.default_rng(loss_steps)
    p = random_params(loss_steps)
    ids = tf.constant(rng.integers(2, 8, (3, STEPS)).astype(np.int32))
    targets = tf.constant(rng.integers(2, 8, 3).astype(np.int32))
    weights = tf.constant([0.5, 0.3, 0.2])
    valid = tf.range(VOCAB) < 8
    loss, grads = loss_and_grads(p, ids, targets, valid, weights, loss_steps)
    with tf.GradientTape() as tape:
        tape.watch(list(p))
        _, cache = forward(p, ids, keep=True)
        assert cache is not None
        hidden = tf.stack(cache.hiddens[STEPS + 1 - loss_steps :], axis=1)
        nxt = tf.concat([ids[:, STEPS + 1 - loss_steps :], targets[:, None]], axis=1)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(nxt, masked_logits(p, hidden, valid))
        expected = tf.reduce_sum(weights[:, None] * ce) / loss_steps
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)
    for mine, auto in zip(grads, tape.gradient(expected, list(p)), strict=True):
        np.testing.assert_allclose(mine.numpy(), tf.convert_to_tensor(auto).numpy(), atol=1e-6, rtol=1e-4)


def test_forward_matches_keras_lstm() -> None:
    p = random_params(7)
    ids = np.random.default_rng(7).integers(0, VOCAB, (2, STEPS)).astype(np.int32)
    embedding = keras.layers.Embedding(VOCAB, DIM)
    lstm = keras.layers.LSTM(UNITS)
    lstm(embedding(ids))
    embedding.set_weights([p.embedding.numpy()])
    lstm.set_weights([p.kernel.numpy(), p.recurrent_kernel.numpy(), p.bias.numpy()])
    expected = lstm(embedding(ids)).numpy()
    mine, _ = forward(p, tf.constant(ids))
    np.testing.assert_allclose(mine.numpy(), expected, atol=1e-5)
