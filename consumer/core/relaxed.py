"""Relaxed mode: a call's messages learned as one batch, for throughput.

Every prediction of the call comes from the weights as of its start; the LSTM trains one step
on all of the call's windows at once (they already cover what strict mode adds with replay and
loss steps), at the width of the call's last message; the mixer still learns message by message.
The whole call is one model step.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from consumer.core.batch import Batch
from consumer.core.compiled import Program, valid_classes
from consumer.core.mixer import reset as mixer_reset
from consumer.core.network import predict_probs

__all__ = ["RelaxedProgram"]


class RelaxedProgram(Program):
    replays = False
    step_per_message = False

    def call_widths(self, per_message: np.ndarray) -> np.ndarray:
        """Every message at the width of the call's last (the widest)."""
        return np.full_like(per_message, per_message[-1])

    def _loop(
        self, state: tf.Variable, batch: Batch[tf.Tensor, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        inputs, targets, predict, reset = batch.inputs, batch.targets, batch.predict, batch.reset
        learn_mixer, vocab_end, counts, count = (
            batch.learn_mixer,
            batch.vocab_end,
            batch.counts,
            batch.messages,
        )
        size = counts.shape[-1]
        params, adam, mixer, flat = self._read(state, size)
        # Every prediction of the batch comes from the weights as of the batch start.
        after = predict_probs(params, predict, valid_classes(vocab_end, size))
        # The batch holds consecutive windows of its keys, which already cover what strict mode
        # adds with loss_steps and replay: one row per message, trained at its newest position.
        use = tf.cast(tf.range(inputs.shape[0]) < count, tf.float32)
        total = tf.maximum(tf.reduce_sum(use), 1.0)
        last = tf.maximum(count - 1, 0)

        def reset_one(i, params, adam):  # type: ignore[no-untyped-def]
            return (i + 1, *self._reset_rows(params, adam, reset[i]))

        _, params, adam = tf.while_loop(lambda i, *_: i < count, reset_one, (tf.constant(0), params, adam))
        valid = valid_classes(vocab_end[last], size)
        loss, new_params, new_adam, before = self._train(params, adam, inputs, targets, valid, use / total, 1)
        mixture_out = tf.TensorArray(tf.float32, size=inputs.shape[0])

        def mix_one(i, mixer, mixture_out):  # type: ignore[no-untyped-def]
            mixer = mixer_reset(mixer, reset[i])
            mixer, mixture = self._mix_one(
                mixer,
                before[i],
                after[i],
                counts[i],
                (inputs[i][-2], predict[i][-1]),
                targets[i][-1],
                valid_classes(vocab_end[i], size, reset[i]),
                valid_classes(vocab_end[i], size),
                learn_mixer[i],
            )
            return i + 1, mixer, mixture_out.write(i, mixture)

        _, mixer, mixture_out = tf.while_loop(
            lambda i, *_: i < count, mix_one, (tf.constant(0), mixer, mixture_out)
        )
        # A call of no message (a warm-up) leaves the state as it was.
        params, adam = tf.nest.map_structure(
            lambda new, old: tf.where(count > 0, new, old), (new_params, new_adam), (params, adam)
        )
        self._write(state, params, adam, mixer, flat)
        loss = tf.where(count > 0, loss, 0.0)
        return after, mixture_out.stack(), tf.fill((inputs.shape[0],), loss)
