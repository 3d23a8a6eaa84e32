"""One compiled call's inputs, prepared by the host: `Batch`, declared once.

The same structure is numpy arrays and a message count on the host, and tensors in the compiled
programs; each field's padding is in `PADDING`.
"""

from __future__ import annotations

from typing import Any, Generic, NamedTuple, TypeVar, cast

import numpy as np
import tensorflow as tf

from consumer.core.config import LearnerConfig
from consumer.core.vocab import RESERVED

__all__ = ["PADDING", "Batch"]

A = TypeVar("A")  # a batch's arrays: numpy on the host, tensors in the programs
C = TypeVar("C")  # its message count: an int, or an int32 tensor


class Batch(NamedTuple, Generic[A, C]):
    """Host-prepared inputs of one call, already padded to a bucket size: numpy arrays and the
    message count on the host (`Batch[np.ndarray, int]`), the same as tensors in the compiled
    programs (`Batch[tf.Tensor, tf.Tensor]`). Each field's padding is in `PADDING`."""

    inputs: A  # (N, L+1) int32: the L ids before the message, then the message's id
    targets: A  # (N, L) int32: the id that follows each of the first L positions
    # (N, L) int32: the window the next token is predicted from: the last L ids, the message's
    # included, as the key's history reads then (`consumer.core.repair`)
    predict: A
    replay_inputs: A  # (N, R, L+1) int32: windows sampled from recent history
    replay_targets: A  # (N, R, L) int32
    reset: A  # (N,) int32: an id (re)assigned by the message, its rows start afresh; -1 none
    # (N,) float32: 1, or 0 for an outlier read out of its key's history: the mixer's vector of
    # the token before it does not learn from it (the shared vector does)
    learn_mixer: A
    vocab_end: A  # (N,) int32: ids below this are in use after the message
    counts: A  # (N, 2, mixed rows, V or a width W) float32: count rows before / after it
    messages: C  # real messages; the rest is padding

    @classmethod
    def empty(
        cls, size: int, config: LearnerConfig, replay: int, width: int | None = None
    ) -> Batch[np.ndarray, int]:
        """A batch of `size` padding rows, its count rows `width` wide (default the full size:
        a call allocates only the width its vocabulary can reach)."""
        window, vocab = config.window, width or config.vocab_size
        shapes = Batch(
            (window + 1,),
            (window,),
            (window,),
            (replay, window + 1),
            (replay, window),
            (),
            (),
            (),
            (2, len(config.mixed_rows), vocab),
            0,
        )
        arrays = [np.full((size, *shape), pad) for shape, pad in zip(shapes[:-1], PADDING[:-1], strict=True)]
        return Batch._make([*arrays, 0])

    def segment(self, start: int, end: int, size: int, width: int) -> Batch[np.ndarray, int]:
        """Messages start..end of a host batch as a batch of `size` (padded as `empty` pads) at
        a vocabulary `width`: the count rows cut to it (every id in use is below it)."""
        batch = cast("Batch[np.ndarray, int]", self)
        count = end - start
        # The whole batch at its own size: its padding rows are padding already, no copy.
        whole = start == 0 and end == batch.messages and size == batch.inputs.shape[0]

        def take(array: np.ndarray, pad: float) -> np.ndarray:
            if whole:
                return array
            out = np.full((size, *array.shape[1:]), pad, array.dtype)
            out[:count] = array[start:end]
            return out

        arrays = [take(array, pad) for array, pad in zip(batch[:-1], PADDING[:-1], strict=True)]
        return Batch._make([*arrays[:-1], arrays[-1][:, :, :, :width], count])

    def tensors(self) -> Batch[tf.Tensor, tf.Tensor]:
        """A host batch as the compiled programs take it."""
        batch = cast("Batch[np.ndarray, int]", self)
        return Batch._make(
            [*(tf.constant(array) for array in batch[:-1]), tf.constant(batch.messages, tf.int32)]
        )


# Each field's padding, a value of its array's type: a `Batch` of them.
_I, _F = np.int32, np.float32
PADDING: Batch[Any, int] = Batch(_I(0), _I(0), _I(0), _I(0), _I(0), _I(-1), _F(1.0), _I(RESERVED), _F(0.0), 0)
