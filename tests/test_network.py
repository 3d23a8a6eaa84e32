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
    # Targets below NEW_ID (padding, begin-of-stream) are not trained: a row's trained
    # positions share its weight. Row 1 is a young key's window, row 2 trains nothing.
    targets_np = rng.integers(2, 8, (3, STEPS)).astype(np.int32)
    targets_np[1, : STEPS - 2] = rng.integers(0, 2, STEPS - 2)
    targets_np[2] = 0
    targets = tf.constant(targets_np)
    weights = tf.constant([0.5, 0.3, 0.2])
    valid = (tf.range(VOCAB) >= 2) & (tf.range(VOCAB) < 8)
    loss, grads, last = loss_and_grads(p, ids, targets, valid, weights, loss_steps)
    with tf.GradientTape() as tape:
        tape.watch(list(p))
        _, cache = forward(p, ids, keep=True)
        assert cache is not None
        hidden = tf.transpose(cache.hiddens[STEPS + 1 - loss_steps :], [1, 0, 2])
        nxt = targets[:, STEPS - loss_steps :]
        trained = tf.cast(nxt >= 2, tf.float32)
        logits = masked_logits(p, hidden, valid)
        ce = tf.nn.sparse_softmax_cross_entropy_with_logits(nxt, logits)
        per_row = tf.maximum(tf.reduce_sum(trained, axis=1, keepdims=True), 1.0)
        expected = tf.reduce_sum(weights[:, None] * trained * ce / per_row)
    np.testing.assert_allclose(loss.numpy(), expected.numpy(), rtol=1e-5)
    np.testing.assert_allclose(last.numpy(), tf.nn.softmax(logits[:, -1]).numpy(), rtol=1e-5, atol=1e-7)
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
