"""The LSTM's math: forward pass, hand-written backpropagation through time, Adam.

Why by hand: the per-message step runs inside one XLA-compiled loop over messages, and
autodiff of an unrolled 64-step LSTM compiles into slow code there (milliseconds per step),
while the explicit backward below is a few fused kernels per time step. Both passes are loops
over time steps, not unrolled: an unrolled window made a program 64 steps long that took 25 s
to compile (and 13 s to trace), where the loop compiles in about 4 s and runs faster (measured:
914 against 1,172 us per strict message; unrolling 4 or 8 steps per iteration is slower again,
1,175 and 1,209 us, as XLA fuses across steps). Relaxed batches of 4,096 rows are the one case
the unrolled window ran faster (134 against 182 us per message in the compiled call, seed);
4, 8 or 16 steps per iteration did not help there either (221, 288, 569 us). The layout and the
math are Keras's: gates ordered i, f, c, o in `kernel` (E, 4U), `recurrent_kernel` (U, 4U),
`bias` (4U,), sigmoid recurrent activation, tanh activation, so the weights load into
`keras.layers.LSTM` as they are (see `consumer.core.export`). The gradient is checked against
TensorFlow's autodiff in tests/test_network.py.

Token ids enter through an Embedding; because the first layer is linear, the input projection
of every id is one table, ``embedding @ kernel + bias`` (V, 4U), gathered per time step.
"""

from __future__ import annotations

from typing import NamedTuple

import tensorflow as tf

from consumer.core.vocab import NEW_ID

__all__ = [
    "PARAM_VOCAB_AXES",
    "AdamState",
    "Params",
    "adam_update",
    "forward",
    "loss_and_grads",
    "param_shapes",
    "predict_probs",
]


class Params(NamedTuple):
    embedding: tf.Tensor  # (V, E)
    kernel: tf.Tensor  # (E, 4U)
    recurrent_kernel: tf.Tensor  # (U, 4U)
    bias: tf.Tensor  # (4U,)
    dense_kernel: tf.Tensor  # (U, V)
    dense_bias: tf.Tensor  # (V,)


# Each weight's axis over token ids (None: it has none), beside its shape below: a call reads
# and trains only the ids its vocabulary reaches.
PARAM_VOCAB_AXES = Params(
    embedding=0, kernel=None, recurrent_kernel=None, bias=None, dense_kernel=1, dense_bias=0
)


def param_shapes(vocab_size: int, embedding_dim: int, units: int) -> Params:
    """The shape of each weight: a pure function of the model's settings."""
    return Params(
        embedding=(vocab_size, embedding_dim),
        kernel=(embedding_dim, 4 * units),
        recurrent_kernel=(units, 4 * units),
        bias=(4 * units,),
        dense_kernel=(units, vocab_size),
        dense_bias=(vocab_size,),
    )


class AdamState(NamedTuple):
    m: Params
    v: Params
    step: tf.Tensor  # float32 scalar: number of updates applied


class _Cache(NamedTuple):
    ids: tf.Tensor  # (T, B) time-major
    gates: tf.Tensor  # (T, B, 4U): activated i, f, g, o
    cells: tf.Tensor  # (T+1, B, U): c_{-1} = 0, c_0 .. c_{T-1}
    tanh_cells: tf.Tensor  # (T, B, U)
    hiddens: tf.Tensor  # (T+1, B, U): h_{-1} = 0, h_0 .. h_{T-1}


def _cell(z: tf.Tensor, c: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
    """One LSTM step from its pre-activations z (B, 4U): (gates, c, tanh c, h)."""
    zi, zf, zg, zo = tf.split(z, 4, axis=1)
    i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zg), tf.sigmoid(zo)
    c = f * c + i * g
    tc = tf.tanh(c)
    return tf.concat([i, f, g, o], axis=1), c, tc, o * tc


def forward(p: Params, ids: tf.Tensor, keep: bool = False) -> tuple[tf.Tensor, _Cache | None]:
    """Run the LSTM over ids (B, T); return the last hidden state (B, U) and, if keep, a cache.

    The time steps are a loop, not unrolled: the program stays the size of one step, so it
    traces and compiles in a fraction of the time, and runs as fast."""
    units = p.recurrent_kernel.shape[0]
    steps = ids.shape[1]
    table = tf.matmul(p.embedding, p.kernel) + p.bias
    time_major = tf.transpose(ids)
    batch = tf.shape(ids)[0]
    h = tf.zeros((batch, units))
    c = tf.zeros((batch, units))
    if not keep:

        def step(t, h, c):  # type: ignore[no-untyped-def]
            _, c, _, h = _cell(tf.gather(table, time_major[t]) + tf.matmul(h, p.recurrent_kernel), c)
            return t + 1, h, c

        _, h, _ = tf.while_loop(lambda t, *_: t < steps, step, (tf.constant(0), h, c))
        return h, None

    def array(size: int) -> tf.TensorArray:
        return tf.TensorArray(tf.float32, size=size)

    # The loop keeps only what is sequential, the states h and c of every step; the gates and
    # tanh c are recomputed from them after it, for all steps at once.
    def kept(t, h, c, cells, hiddens):  # type: ignore[no-untyped-def]
        _, c, _, h = _cell(tf.gather(table, time_major[t]) + tf.matmul(h, p.recurrent_kernel), c)
        return t + 1, h, c, cells.write(t + 1, c), hiddens.write(t + 1, h)

    start = (tf.constant(0), h, c, array(steps + 1).write(0, c), array(steps + 1).write(0, h))
    _, h, _, cells, hiddens = tf.while_loop(lambda t, *_: t < steps, kept, start)
    cells, hiddens = cells.stack(), hiddens.stack()
    z = tf.gather(table, time_major) + tf.einsum("tbu,uv->tbv", hiddens[:-1], p.recurrent_kernel)
    zi, zf, zg, zo = tf.split(z, 4, axis=2)
    gates = tf.concat([tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zg), tf.sigmoid(zo)], axis=2)
    return h, _Cache(time_major, gates, cells, tf.tanh(cells[1:]), hiddens)


def masked_logits(p: Params, hidden: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Dense output with the logits of ids not in the vocabulary yet (valid False) masked out."""
    logits = tf.tensordot(hidden, p.dense_kernel, axes=1) + p.dense_bias
    return tf.where(valid, logits, tf.constant(-1e9, logits.dtype))


def predict_probs(p: Params, ids: tf.Tensor, valid: tf.Tensor) -> tf.Tensor:
    """Next-token probabilities (B, V) after each window of ids (B, T)."""
    h, _ = forward(p, ids)
    return tf.nn.softmax(masked_logits(p, h, valid))


def loss_and_grads(
    p: Params, ids: tf.Tensor, targets: tf.Tensor, valid: tf.Tensor, weights: tf.Tensor, loss_steps: int = 1
) -> tuple[tf.Tensor, Params, tf.Tensor]:
    """Cross-entropy of the tokens that follow the last `loss_steps` positions of windows ids
    (B, T), its gradient, and the distribution (B, V) after each whole window.

    targets (B, T) holds, for each position, the id that follows it: inside the window for all
    but the last, the message's own for the last (everything earlier than the message, so
    nothing is learned from the future). Positions whose target is below `NEW_ID` (padding,
    the begin-of-stream mark) are not trained; each row's trained positions share its weight
    equally, so a short session's step weighs as much as a long one's. weights (B,) sum to 1;
    a zero weight drops a row (padding in relaxed batches).
    """
    steps = ids.shape[1]
    _, cache = forward(p, ids, keep=True)
    assert cache is not None
    hidden = tf.transpose(cache.hiddens[steps + 1 - loss_steps :], [1, 0, 2])  # (B, k, U)
    next_ids = targets[:, steps - loss_steps :]  # (B, k)
    trained = tf.cast(next_ids >= NEW_ID, tf.float32)
    per_row = tf.maximum(tf.reduce_sum(trained, axis=1, keepdims=True), 1.0)
    position_weights = (weights[:, None] * trained / per_row)[:, :, None]  # (B, k, 1)
    logits = masked_logits(p, hidden, valid)  # (B, k, V)
    onehot = tf.one_hot(next_ids, tf.shape(logits)[2])
    probs = tf.nn.softmax(logits)
    loss = -tf.reduce_sum(position_weights * onehot * tf.nn.log_softmax(logits))
    d_logits = (probs - onehot) * position_weights
    d_dense_kernel = tf.einsum("bku,bkv->uv", hidden, d_logits)
    d_dense_bias = tf.reduce_sum(d_logits, axis=(0, 1))
    units = p.recurrent_kernel.shape[0]
    # The loss's gradient for each hidden state h_0 .. h_{T-1}: zero before the trained positions.
    d_loss_hidden = tf.einsum("bkv,uv->kbu", d_logits, p.dense_kernel)  # (k, B, U)
    d_hiddens = tf.concat([tf.zeros((steps - loss_steps, tf.shape(ids)[0], units)), d_loss_hidden], axis=0)
    recurrent_t = tf.transpose(p.recurrent_kernel)

    # Every factor of the step's derivatives that does not depend on the gradient flowing back,
    # for all steps at once: the loop then does only what is sequential.
    i, f, g, o = tf.split(cache.gates, 4, axis=2)  # (T, B, U) each
    tc = cache.tanh_cells
    to_cell = o * (1.0 - tc * tc)  # d h / d c
    # d z / d c for the i, f, g pre-activations, and d z / d h for o's.
    factors = tf.concat(
        [g * i * (1.0 - i), cache.cells[:-1] * f * (1.0 - f), i * (1.0 - g * g), tc * o * (1.0 - o)], 2
    )

    def back(t, dh, dc, d_z):  # type: ignore[no-untyped-def]
        dh = dh + d_hiddens[t]
        dc = dc + dh * to_cell[t]
        dz = tf.concat([dc, dc, dc, dh], axis=1) * factors[t]
        return t - 1, tf.matmul(dz, recurrent_t), dc * f[t], d_z.write(t, dz)

    zero = tf.zeros_like(d_hiddens[0])
    _, _, _, d_z = tf.while_loop(
        lambda t, *_: t >= 0,
        back,
        (tf.constant(steps - 1), zero, zero, tf.TensorArray(tf.float32, size=steps)),
    )
    units4 = p.recurrent_kernel.shape[1]
    dz_flat = tf.reshape(d_z.stack(), (-1, units4))  # (T * B, 4U)
    h_prev = tf.reshape(cache.hiddens[:-1], (-1, units))
    d_recurrent = tf.matmul(h_prev, dz_flat, transpose_a=True)
    d_table = tf.math.unsorted_segment_sum(dz_flat, tf.reshape(cache.ids, (-1,)), p.embedding.shape[0])
    grads = Params(
        embedding=tf.matmul(d_table, p.kernel, transpose_b=True),
        kernel=tf.matmul(p.embedding, d_table, transpose_a=True),
        recurrent_kernel=d_recurrent,
        bias=tf.reduce_sum(dz_flat, axis=0),
        dense_kernel=d_dense_kernel,
        dense_bias=d_dense_bias,
    )
    return loss, grads, probs[:, -1]


def adam_update(
    p: Params,
    grads: Params,
    state: AdamState,
    learning_rate: float,
    decay_steps: float = 0.0,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-3,
) -> tuple[Params, AdamState]:
    """One Adam step, tuned for online learning where each step sees one message.

    Two changes from the textbook, both against the late loss spikes plain Adam shows once a
    stream is learned (the gradient vanishes, the second moment decays, a step blows up):
    the second-moment estimate never decreases (AMSGrad-style), and the learning rate decays
    as 1/sqrt(1 + step/decay_steps) (no decay when decay_steps is 0). Epsilon sits outside
    the square root as in Keras, at 1e-3 so that vanishing gradients give small steps.
    """
    step = state.step + 1.0
    rate = learning_rate / tf.sqrt(1.0 + step / decay_steps) if decay_steps else learning_rate
    lr = rate * tf.sqrt(1.0 - tf.pow(beta_2, step)) / (1.0 - tf.pow(beta_1, step))
    m = Params(*(beta_1 * m + (1.0 - beta_1) * g for m, g in zip(state.m, grads, strict=True)))
    v = Params(
        *(tf.maximum(v, beta_2 * v + (1.0 - beta_2) * g * g) for v, g in zip(state.v, grads, strict=True))
    )
    new = Params(*(w - lr * mm / (tf.sqrt(vv) + epsilon) for w, mm, vv in zip(p, m, v, strict=True)))
    return new, AdamState(m, v, step)
