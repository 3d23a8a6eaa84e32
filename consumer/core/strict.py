"""Strict mode: each message learned and predicted in turn, inside one compiled loop.

For message i of a call, in order: the LSTM trains one step on the key's window (and the
replayed windows, sampled from recent history), at the message's own vocabulary width; the
mixer learns the message from the distributions before it, then mixes those after it. Every
message is a model step, so the results are bit-identical however the messages are grouped
into calls (`consumer.core.learner`'s contract).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from consumer.core.batch import Batch
from consumer.core.compiled import Program, valid_classes
from consumer.core.mixer import reset as mixer_reset
from consumer.core.network import predict_probs

__all__ = ["StrictProgram"]


class StrictProgram(Program):
    replays = True
    step_per_message = True

    def call_widths(self, per_message: np.ndarray) -> np.ndarray:
        """Each message at its own width (that of the vocabulary after it): a message's
        arithmetic never depends on the call it came in."""
        return per_message

    def _loop(
        self, state: tf.Variable, batch: Batch[tf.Tensor, tf.Tensor]
    ) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        inputs, targets, predict = batch.inputs, batch.targets, batch.predict
        replay_inputs, replay_targets, reset = batch.replay_inputs, batch.replay_targets, batch.reset
        learn_mixer, vocab_end, counts, count = (
            batch.learn_mixer,
            batch.vocab_end,
            batch.counts,
            batch.messages,
        )
        size = counts.shape[-1]  # the width: every id in use is below it
        rows_per_step = 1 + replay_inputs.shape[1]
        row_weights = tf.fill((rows_per_step,), 1.0 / rows_per_step)
        params, adam, mixer, flat = self._read(state, size)
        lstm_out = tf.TensorArray(tf.float32, size=inputs.shape[0])
        mixture_out = tf.TensorArray(tf.float32, size=inputs.shape[0])
        loss_out = tf.TensorArray(tf.float32, size=inputs.shape[0])

        def body(i, params, adam, mixer, lstm_out, mixture_out, loss_out):  # type: ignore[no-untyped-def]
            params, adam = self._reset_rows(params, adam, reset[i])
            rows = tf.concat([inputs[i][None], replay_inputs[i]], axis=0)
            row_targets = tf.concat([targets[i][None], replay_targets[i]], axis=0)
            # The fresh id is no class to train against yet: its message's target is NEW.
            valid_before = valid_classes(vocab_end[i], size, reset[i])
            valid = valid_classes(vocab_end[i], size)
            loss, params, adam, before = self._train(
                params, adam, rows, row_targets, valid_before, row_weights, self.config.trained_positions
            )
            after = predict_probs(params, predict[i][None], valid)[0]
            mixer = mixer_reset(mixer, reset[i])
            contexts = (inputs[i][-2], predict[i][-1])
            mixer, mixture = self._mix_one(
                mixer,
                before[0],
                after,
                counts[i],
                contexts,
                targets[i][-1],
                valid_before,
                valid,
                learn_mixer[i],
            )
            return (
                i + 1,
                params,
                adam,
                mixer,
                lstm_out.write(i, after),
                mixture_out.write(i, mixture),
                loss_out.write(i, loss),
            )

        _, params, adam, mixer, lstm_out, mixture_out, loss_out = tf.while_loop(
            lambda i, *_: i < count,
            body,
            (tf.constant(0), params, adam, mixer, lstm_out, mixture_out, loss_out),
        )
        self._write(state, params, adam, mixer, flat)
        return lstm_out.stack(), mixture_out.stack(), loss_out.stack()
