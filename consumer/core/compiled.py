"""The compiled programs: the strict in-graph loop over messages and the relaxed batched step.

Inputs are prepared by the host (windows, training flags, replay windows, vocabulary masks);
weights and Adam state live in one flat `tf.Variable`, updated in place. Batches are padded to
a few bucket sizes so each program is traced and compiled once per bucket; the loop stops at
the real message count, so padding costs no compute.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf

from consumer.core.config import LearnerConfig
from consumer.core.network import AdamState, Params, adam_update, loss_and_grads, predict_probs
from consumer.core.vocab import OOV_ID

__all__ = ["BUCKETS", "Batch", "Program", "configure_threads", "initial_weights"]

BUCKETS = (1, 8, 64, 512, 4096)


def configure_threads(intra: int, inter: int) -> None:
    """Set TensorFlow's thread pools; only possible before TensorFlow's runtime starts."""
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() == intra and (
        threading.get_inter_op_parallelism_threads() == inter
    ):
        return
    try:
        threading.set_intra_op_parallelism_threads(intra)
        threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError:
        # The runtime already started with other pools: results stay deterministic per process
        # but differ in the last bits from a process configured as asked.
        warnings.warn(
            f"TensorFlow already initialized: cannot set intra/inter-op threads to {intra}/{inter}",
            RuntimeWarning,
            stacklevel=2,
        )


def initial_weights(config: LearnerConfig) -> Params:
    """Keras's initializers for Embedding, LSTM and Dense, from a seeded NumPy generator."""
    rng = np.random.default_rng(config.seed)
    units, dim, vocab = config.units, config.embedding_dim, config.vocab_size

    def glorot(rows: int, cols: int) -> np.ndarray:
        limit = np.sqrt(6.0 / (rows + cols))
        return rng.uniform(-limit, limit, (rows, cols)).astype(np.float32)

    def orthogonal(rows: int, cols: int) -> np.ndarray:
        q, r = np.linalg.qr(rng.normal(size=(max(rows, cols), min(rows, cols))))
        q = q * np.sign(np.diag(r))
        return (q if rows >= cols else q.T).astype(np.float32)

    bias = np.zeros(4 * units, np.float32)
    bias[units : 2 * units] = 1.0  # unit_forget_bias
    return Params(
        embedding=rng.uniform(-0.05, 0.05, (vocab, dim)).astype(np.float32),
        kernel=glorot(dim, 4 * units),
        recurrent_kernel=orthogonal(units, 4 * units),
        bias=bias,
        dense_kernel=glorot(units, vocab),
        dense_bias=np.zeros(vocab, np.float32),
    )


@dataclass
class Batch:
    """Host-prepared inputs of one call, already padded to a bucket size."""

    windows: np.ndarray  # (N, L+1) int32: the L ids before the message, then the message's id
    train: np.ndarray  # (N,) bool: the key had L earlier tokens
    replay: np.ndarray  # (N, R, L+1) int32: windows sampled from recent history
    vocab_end: np.ndarray  # (N,) int32: ids below this are known after the message
    oov_seen: np.ndarray  # (N,) bool: the OOV id has occurred (so it may be predicted)
    count: int  # real messages; the rest is padding


def _valid(vocab_end: tf.Tensor, oov_seen: tf.Tensor, size: int) -> tf.Tensor:
    ids = tf.range(size)
    known = (ids >= 2) & (ids < vocab_end[..., None])
    return known | ((ids == OOV_ID) & oov_seen[..., None])


class Program:
    """Weights, Adam state and the compiled steps of one partition's model."""

    def __init__(self, config: LearnerConfig) -> None:
        self.config = config
        weights = initial_weights(config)
        arrays = [*weights, *(np.zeros_like(w) for w in weights), *(np.zeros_like(w) for w in weights)]
        self._shapes = [a.shape for a in arrays] + [()]
        self._sizes = [int(np.prod(shape)) for shape in self._shapes]
        # One flat variable for weights, Adam slots and step: a call passes one resource handle
        # instead of 19, which is most of a single-message call's overhead.
        self.state = tf.Variable(self._pack([*arrays, np.zeros((), np.float32)]))
        self._step = _shared_step(self)

    # -- state -----------------------------------------------------------------------------
    @staticmethod
    def _pack(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays])

    def get_state(self) -> list[np.ndarray]:
        """Weights, Adam m, Adam v (each in `Params` order), then the Adam step."""
        flat = self.state.numpy()
        parts = np.split(flat, np.cumsum(self._sizes)[:-1])
        return [part.reshape(shape) for part, shape in zip(parts, self._shapes, strict=True)]

    def set_state(self, arrays: list[np.ndarray]) -> None:
        if [np.shape(a) for a in arrays] != self._shapes:
            raise ValueError("state arrays do not match the model's shapes")
        self.state.assign(self._pack(arrays))

    def _read(self, state: tf.Variable) -> tuple[Params, AdamState]:
        parts = tf.split(state.read_value(), self._sizes)
        tensors = [tf.reshape(part, shape) for part, shape in zip(parts, self._shapes, strict=True)]
        n = len(Params._fields)
        return Params(*tensors[:n]), AdamState(
            Params(*tensors[n : 2 * n]), Params(*tensors[2 * n : 3 * n]), tensors[3 * n]
        )

    def _write(self, state: tf.Variable, params: Params, adam: AdamState) -> None:
        tensors = [*params, *adam.m, *adam.v, adam.step]
        state.assign(tf.concat([tf.reshape(t, [-1]) for t in tensors], axis=0))

    # -- programs --------------------------------------------------------------------------
    def run(self, batch: Batch) -> tuple[np.ndarray, np.ndarray]:
        """Process a batch; return next-token probabilities (count, V) and training losses (count,)."""
        probs, losses = self._step(
            self.state,
            tf.constant(batch.windows),
            tf.constant(batch.train),
            tf.constant(batch.replay),
            tf.constant(batch.vocab_end),
            tf.constant(batch.oov_seen),
            tf.constant(batch.count, tf.int32),
        )
        return probs.numpy()[: batch.count], losses.numpy()[: batch.count]

    def _train(
        self,
        params: Params,
        adam: AdamState,
        rows: tf.Tensor,
        valid: tf.Tensor,
        weights: tf.Tensor,
        positions: int,
    ) -> tuple[tf.Tensor, Params, AdamState]:
        window = self.config.window
        loss, grads = loss_and_grads(params, rows[:, :window], rows[:, window], valid, weights, positions)
        params, adam = adam_update(
            params, grads, adam, self.config.learning_rate, float(self.config.learning_rate_decay_steps)
        )
        return loss, params, adam

    def warm_up(self, size: int) -> None:
        """Compile the program of the bucket for `size` messages now (a call of none: state unchanged)."""
        bucket = next(b for b in BUCKETS if b >= size)
        window, replay = self.config.window, self.config.replay if self.config.mode == "strict" else 0
        self.run(
            Batch(
                np.zeros((bucket, window + 1), np.int32),
                np.zeros(bucket, bool),
                np.zeros((bucket, replay, window + 1), np.int32),
                np.zeros(bucket, np.int32),
                np.zeros(bucket, bool),
                0,
            )
        )

    def _strict_loop(
        self,
        state: tf.Variable,
        windows: tf.Tensor,
        train: tf.Tensor,
        replay: tf.Tensor,
        vocab_end: tf.Tensor,
        oov_seen: tf.Tensor,
        count: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        size = self.config.vocab_size
        rows_per_step = 1 + replay.shape[1]
        row_weights = tf.fill((rows_per_step,), 1.0 / rows_per_step)
        params, adam = self._read(state)
        probs_out = tf.TensorArray(tf.float32, size=windows.shape[0])
        loss_out = tf.TensorArray(tf.float32, size=windows.shape[0])

        def body(i, params, adam, probs_out, loss_out):  # type: ignore[no-untyped-def]
            window = windows[i]
            valid = _valid(vocab_end[i], oov_seen[i], size)

            rows = tf.concat([window[None], replay[i]], axis=0)
            loss, new_params, new_adam = self._train(
                params, adam, rows, valid, row_weights, self.config.trained_positions
            )

            # A select rather than tf.cond keeps the body one straight computation; the step
            # computed and dropped for a key's first L messages costs the same as a cond did.
            def keep(new: tf.Tensor, old: tf.Tensor) -> tf.Tensor:
                return tf.where(train[i], new, old)

            loss = keep(loss, 0.0)
            params = Params(*map(keep, new_params, params))
            adam = AdamState(
                Params(*map(keep, new_adam.m, adam.m)),
                Params(*map(keep, new_adam.v, adam.v)),
                keep(new_adam.step, adam.step),
            )
            probs = predict_probs(params, window[None, 1:], valid)[0]
            return i + 1, params, adam, probs_out.write(i, probs), loss_out.write(i, loss)

        _, params, adam, probs_out, loss_out = tf.while_loop(
            lambda i, *_: i < count, body, (tf.constant(0), params, adam, probs_out, loss_out)
        )
        self._write(state, params, adam)
        return probs_out.stack(), loss_out.stack()

    def _relaxed_step(
        self,
        state: tf.Variable,
        windows: tf.Tensor,
        train: tf.Tensor,
        replay: tf.Tensor,
        vocab_end: tf.Tensor,
        oov_seen: tf.Tensor,
        count: tf.Tensor,
    ) -> tuple[tf.Tensor, tf.Tensor]:
        size = self.config.vocab_size
        params, adam = self._read(state)
        # Every prediction of the batch comes from the weights as of the batch start.
        probs = predict_probs(params, windows[:, 1:], _valid(vocab_end, oov_seen, size))
        # The batch holds consecutive windows of its keys, which already cover what strict mode
        # adds with loss_steps and replay: one row per message, trained at its newest position.
        use = tf.cast(train & (tf.range(windows.shape[0]) < count), tf.float32)
        total = tf.reduce_sum(use)
        last = tf.maximum(count - 1, 0)
        valid = _valid(vocab_end[last], oov_seen[last], size)

        def learn():  # type: ignore[no-untyped-def]
            loss, new_params, new_adam = self._train(params, adam, windows, valid, use / total, 1)
            self._write(state, new_params, new_adam)
            return loss

        loss = tf.cond(total > 0, learn, lambda: tf.constant(0.0))
        return probs, tf.fill((windows.shape[0],), loss)


# Compiled steps shared by every Program of the same model settings and mode, so that a
# process with many partitions (or a learner restored from a snapshot) traces and compiles each
# bucket once: the state variable is an argument, not a captured value.
_SHARED: dict[tuple[Any, ...], Any] = {}


def _shared_step(program: Program) -> Any:
    config = program.config
    key = (config.mode, *sorted(config.model_fields().items()))
    step = _SHARED.get(key)
    if step is None:
        method = program._strict_loop if config.mode == "strict" else program._relaxed_step
        step = _SHARED[key] = tf.function(method, jit_compile=True, reduce_retracing=False)
    return step
