"""What the compiled programs share: their state variable, one training and mixing step, and the
compiled steps' cache. Their inputs are a `consumer.core.batch.Batch`; their state's arrays are
laid out in `consumer.core.layout`.

Each mode's program is a subclass of `Program` in a module of its own: the strict in-graph loop
over messages (`consumer.core.strict`) and the relaxed batched step (`consumer.core.relaxed`).

Inputs are prepared by the host (windows and their targets, replay windows, (re)assigned ids,
the vocabulary in use); weights and Adam state live in one flat `tf.Variable`, updated in place.
Batches are padded to a few bucket sizes so each program is traced and compiled once per bucket;
the loop stops at the real message count, so padding costs no compute. A program also works at a
vocabulary width (`widths`): the first W token ids, those in use, of every array over token ids
(embedding, output layer, their Adam slots, the mixer's contexts, the count rows), so a small
vocabulary does not pay for the capacity; the ids past it keep their values in the state.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import time
import warnings
from typing import Any

import numpy as np
import tensorflow as tf
from tensorflow.compiler.tf2xla.python import xla

from consumer.core import compile_cache
from consumer.core.batch import Batch
from consumer.core.config import LearnerConfig
from consumer.core.layout import initial_state, state_layout, width_for
from consumer.core.mixer import MixerState
from consumer.core.mixer import learn as mixer_learn
from consumer.core.mixer import mix as mixer_mix
from consumer.core.network import AdamState, Params, adam_update, loss_and_grads
from consumer.core.vocab import NEW_ID, RESERVED

__all__ = ["BUCKETS", "Program", "configure_threads", "valid_classes"]

BUCKETS = (8, 64, 512, 4096)

log = logging.getLogger(__name__)


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


def _update(flat: tf.Tensor, piece: tf.Tensor, offset: int) -> tf.Tensor:
    """`flat` with `piece` written from `offset` on, in place when XLA can (it can here: the
    state variable's buffer is aliased to the program's output)."""
    return xla.dynamic_update_slice(flat, piece, tf.constant([offset]))


def valid_classes(vocab_end: tf.Tensor, size: int, reset: tf.Tensor | None = None) -> tf.Tensor:
    """The classes a prediction ranges over: NEW and the ids in use (without a fresh one)."""
    ids = tf.range(size)
    valid = (ids >= NEW_ID) & (ids < vocab_end[..., None])
    return valid if reset is None else valid & (ids != reset[..., None])


class Program:
    """Weights, Adam state, the mixer and the compiled steps of one partition's model. A mode is
    a subclass (`consumer.core.strict`, `consumer.core.relaxed`; `program_for` picks it): its
    compiled `_loop`, whether it trains replayed windows, the widths its messages run at, and
    whether each message is a model step or the whole call is one."""

    replays: bool  # trains replayed windows beside each message's
    step_per_message: bool  # each message is a training step (else the whole call is one)

    def __init__(self, config: LearnerConfig) -> None:
        self.config = config
        initial = initial_state(config)
        self.initial = Params(*initial[: len(Params._fields)])
        layout = state_layout(config)
        self._shapes = [shape for shape, _ in layout]
        self._axes = [axis for _, axis in layout]
        self._sizes = [int(np.prod(shape)) for shape in self._shapes]
        self._offsets = [0, *np.cumsum(self._sizes)[:-1].tolist()]
        # One flat variable for weights, Adam slots, step and mixer: a call passes one resource
        # handle instead of 23, which is most of a single-message call's overhead.
        self.state = tf.Variable(self._pack(initial))
        self._key = _program_key(config)
        self._step = _shared_step(self)

    # -- state -----------------------------------------------------------------------------
    @staticmethod
    def _pack(arrays: list[np.ndarray]) -> np.ndarray:
        return np.concatenate([np.asarray(a, np.float32).ravel() for a in arrays])

    def get_state(self) -> list[np.ndarray]:
        """The arrays of `state_shapes`, in its order."""
        flat = self.state.numpy()
        parts = np.split(flat, np.cumsum(self._sizes)[:-1])
        return [part.reshape(shape) for part, shape in zip(parts, self._shapes, strict=True)]

    def set_state(self, arrays: list[np.ndarray]) -> None:
        if [np.shape(a) for a in arrays] != self._shapes:
            raise ValueError("state arrays do not match the model's shapes")
        self.state.assign(self._pack(arrays))

    def _read(self, state: tf.Variable, width: int) -> tuple[Params, AdamState, MixerState, tf.Tensor]:
        """The state's arrays cut to the first `width` token ids, and the flat state they came from."""
        flat = state.read_value()
        tensors = []
        for offset, size, shape, axis in zip(
            self._offsets, self._sizes, self._shapes, self._axes, strict=True
        ):
            t = tf.reshape(flat[offset : offset + size], shape)
            tensors.append(t if axis is None else (t[:width] if axis == 0 else t[:, :width]))
        n = len(Params._fields)
        adam = AdamState(Params(*tensors[n : 2 * n]), Params(*tensors[2 * n : 3 * n]), tensors[3 * n])
        return Params(*tensors[:n]), adam, MixerState(*tensors[3 * n + 1 :]), flat

    def _write(
        self, state: tf.Variable, params: Params, adam: AdamState, mixer: MixerState, flat: tf.Tensor
    ) -> None:
        """Store the arrays back in place, each as one or a few contiguous runs of the flat state
        (XLA updates the variable's buffer where it is: a call rewrites only the ids it read,
        not the whole state); ids past the width (never in use yet) keep what they held."""
        tensors = [*params, *adam.m, *adam.v, adam.step, *mixer]
        for new, offset, shape, axis in zip(tensors, self._offsets, self._shapes, self._axes, strict=True):
            if axis == 1:  # (rows, V) cut to (rows, W): one run per row
                for row in range(shape[0]):
                    flat = _update(flat, new[row], offset + row * shape[1])
            else:
                flat = _update(flat, tf.reshape(new, [-1]), offset)
        state.assign(flat)

    # -- programs --------------------------------------------------------------------------
    def run(self, batch: Batch[np.ndarray, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Process a batch; return the LSTM's next-token probabilities after each message
        (count, W), the mixture's (count, W), and the training losses (count,), W being the
        batch's width (its count rows'): one program per bucket size and width."""
        args = (self.state, batch.tensors())
        program = (self._key, batch.inputs.shape[0], batch.counts.shape[-1])
        concrete = _CONCRETE.get(program)
        first = concrete is None
        started = time.monotonic()
        if concrete is None:
            # The traced program itself: calling it skips tf.function's per-call argument
            # binding and lookup (about 0.4 ms of a one-message call).
            concrete = _CONCRETE[program] = self._step.get_concrete_function(*args)
        lstm, mixture, losses = concrete(*args)
        count = batch.messages
        outputs = lstm.numpy()[:count], mixture.numpy()[:count], losses.numpy()[:count]
        if first:  # this call compiled its program (or loaded it from the cache)
            compiled = compile_cache.publish()
            _release_freed_memory()
            log.info(
                "%s program for %d messages at vocabulary width %d ready in %.1f s (%s)",
                self.config.mode,
                batch.inputs.shape[0],
                batch.counts.shape[-1],
                time.monotonic() - started,
                "compiled" if compiled or not compile_cache.shared_dir() else "from the compile cache",
            )
        return outputs

    def _train(
        self,
        params: Params,
        adam: AdamState,
        inputs: tf.Tensor,
        targets: tf.Tensor,
        valid: tf.Tensor,
        weights: tf.Tensor,
        positions: int,
    ) -> tuple[tf.Tensor, Params, AdamState, tf.Tensor]:
        window = self.config.window
        loss, grads, before = loss_and_grads(params, inputs[:, :window], targets, valid, weights, positions)
        params, adam = adam_update(
            params, grads, adam, self.config.learning_rate, float(self.config.learning_rate_decay_steps)
        )
        return loss, params, adam, before

    def _mix_one(
        self,
        mixer: MixerState,
        before: tf.Tensor,
        after: tf.Tensor,
        counts: tf.Tensor,
        contexts: tuple[tf.Tensor, tf.Tensor],
        target: tf.Tensor,
        valid_before: tf.Tensor,
        valid_after: tf.Tensor,
        use: tf.Tensor,
    ) -> tuple[MixerState, tf.Tensor]:
        """The mixer learns the message from the inputs' distributions before it, then mixes
        those after it: the published distribution for the key's next token. Its `contexts` are
        the last token of each window: the one before the message, then the prediction's last."""
        inputs_before = tf.concat([before[None], counts[0]], axis=0)
        mixer = mixer_learn(
            mixer, inputs_before, contexts[0], valid_before, target, self.config.mixer_learning_rate, use
        )
        inputs_after = tf.concat([after[None], counts[1]], axis=0)
        return mixer, mixer_mix(mixer, inputs_after, contexts[1], valid_after)

    def warm_up(self, size: int, vocab_end: int = RESERVED) -> None:
        """Compile the program of the bucket for `size` messages, at the width for `vocab_end`,
        now (a call of none: state unchanged)."""
        bucket = next(b for b in BUCKETS if b >= size)
        replay = self.replay
        width = width_for(vocab_end, self.config.vocab_size)
        self.run(Batch.empty(bucket, self.config, replay, width).segment(0, 0, bucket, width))

    @property
    def replay(self) -> int:
        """Replayed windows trained with each message."""
        return self.config.replay if self.replays else 0

    def call_widths(self, per_message: np.ndarray) -> np.ndarray:
        """The vocabulary width each message of a call runs at, from the width each one needs."""
        raise NotImplementedError

    def _loop(
        self, state: tf.Variable, batch: Batch[tf.Tensor, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        """The compiled program: the LSTM's and the mixture's distributions and the losses."""
        raise NotImplementedError

    def _reset_rows(self, params: Params, adam: AdamState, token_id: tf.Tensor) -> tuple[Params, AdamState]:
        """A recycled id starts afresh: its embedding row, output column and bias, and their Adam
        slots back to their initial values. `token_id` -1: nothing changes."""
        units = self.config.units
        row = tf.maximum(token_id, 0)
        do = token_id >= 0
        init = self.initial
        column = tf.stack([tf.range(units), tf.fill((units,), row)], axis=1)

        def put(weights: tf.Tensor, at: Any, fresh: tf.Tensor) -> tf.Tensor:
            old = tf.gather_nd(weights, at)
            return tf.tensor_scatter_nd_update(weights, at, tf.where(do, fresh, old))

        def rows(p: Params, embedding: tf.Tensor, kernel: tf.Tensor, bias: tf.Tensor) -> Params:
            return p._replace(
                embedding=put(p.embedding, [[row]], embedding),
                dense_kernel=put(p.dense_kernel, column, kernel),
                dense_bias=put(p.dense_bias, [[row]], bias),
            )

        zeros = (tf.zeros((1, self.config.embedding_dim)), tf.zeros((units,)), tf.zeros((1,)))
        fresh = rows(
            params,
            tf.gather(tf.constant(init.embedding), [row]),
            tf.gather(tf.constant(init.dense_kernel), row, axis=1),
            tf.zeros((1,)),
        )
        return fresh, AdamState(rows(adam.m, *zeros), rows(adam.v, *zeros), adam.step)


# Compiled steps shared by every Program of the same model settings and mode, so that a
# process with many partitions (or a learner restored from a snapshot) traces and compiles each
# bucket once: the state variable is an argument, not a captured value.
_SHARED: dict[tuple[Any, ...], Any] = {}
_CONCRETE: dict[tuple[tuple[Any, ...], int, int], Any] = {}  # (program key, bucket, width) -> program


def _release_freed_memory() -> None:
    """Give the compiler's freed heap back to the system (glibc keeps it otherwise: about
    170 MB of a cold start's resident memory)."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _program_key(config: LearnerConfig) -> tuple[Any, ...]:
    return (config.mode, *sorted(config.model_fields().items()))


def _shared_step(program: Program) -> Any:
    key = program._key
    step = _SHARED.get(key)
    if step is None:
        method = program._loop
        step = _SHARED[key] = tf.function(method, jit_compile=True, reduce_retracing=False, autograph=False)
    return step
