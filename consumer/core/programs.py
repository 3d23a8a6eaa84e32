"""The compiled program of a learner's mode: `program_for(config)`."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from consumer.core.batch import Batch
from consumer.core.compiled import Program
from consumer.core.config import LearnerConfig
from consumer.core.layout import widths
from consumer.core.relaxed import RelaxedProgram
from consumer.core.strict import StrictProgram

__all__ = ["program_for", "run_at_widths"]

PROGRAMS: dict[str, type[Program]] = {"strict": StrictProgram, "relaxed": RelaxedProgram}


def program_for(config: LearnerConfig) -> Program:
    """A new program of `config.mode` (one of `consumer.core.config.MODES`)."""
    return PROGRAMS[config.mode](config)


def run_at_widths(
    program: Program, batch: Batch[np.ndarray, int], bucket: Callable[[int], int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The compiled call(s), at the narrowest vocabulary width that holds the ids in use.

    Strict: each message runs at its own width (the width for the vocabulary after it), so
    that a message's arithmetic never depends on how messages are grouped into calls; a call
    whose vocabulary crosses a width runs as one segment per width. Relaxed: one step per
    call, at the width of its last message."""
    count, vocab, reach = batch.messages, program.config.vocab_size, batch.counts.shape[-1]
    lstm = np.zeros((count, reach), np.float32)
    mixture = np.zeros((count, reach), np.float32)
    losses = np.zeros(count, np.float32)
    if not count:
        return lstm, mixture, losses
    sizes = np.array(widths(vocab))
    per_message = sizes[np.searchsorted(sizes, batch.vocab_end[:count])]  # as width_for, vectorised
    per_message = program.call_widths(per_message)
    cuts = [0, *(np.flatnonzero(np.diff(per_message)) + 1).tolist(), count]
    for start, end in itertools.pairwise(cuts):
        width = int(per_message[start])
        size = batch.inputs.shape[0] if len(cuts) == 2 else bucket(end - start)
        out = program.run(batch.segment(start, end, size, width))
        lstm[start:end, :width], mixture[start:end, :width], losses[start:end] = out
    return lstm, mixture, losses
