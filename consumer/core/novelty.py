"""How likely a token no one has seen yet is, when a published guess meets the key's next token.

A key's published guess is made at its previous message and scored at its next one. A token
that another key brought into the vocabulary in between is known by then, but it was new (the
NEW class) to the guess. The mixer learns on the count model's view just before each message
(`consumer.core.mixer`), where that token is already known, so on interleaved streams that
keep bringing new tokens (a package log's new steps, a site's new pages) the mixture's NEW
probability is too low for what the published guesses meet. The baseline's PPM escape, made at
publish, is closer to it there; on a stream whose vocabulary is complete, the mixture's is the
better of the two.

`Novelty` weighs the two by how well each has forecast, at publish, whether the next token was
NEW: Bayesian weights on that yes/no outcome, with a small fixed share back to even so that
either can come back when the stream changes. The published distribution takes its NEW
probability from that blend; the known tokens share the rest in the mixture's proportions
(`calibrate`), so no guess changes, only how much room is left for the unknown.

>>> novelty = Novelty()
>>> for _ in range(100):  # new tokens keep coming where the mixture gave them 0.1%
...     novelty.learn(mixture=0.001, baseline=0.05, new=True)
>>> round(novelty.weight, 3)
0.001
>>> rows = np.array([[0.0, 0.0, 0.001, 0.6, 0.399]], np.float32)
>>> [round(float(p), 4) for p in novelty.calibrate(rows, np.array([0.05]))[0]]
[0.0, 0.0, 0.05, 0.5706, 0.3794]
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from consumer.core.vocab import NEW_ID

if TYPE_CHECKING:
    from consumer.core.prediction import Message


__all__ = ["SHARE", "Novelty"]

SHARE = 0.001  # after each outcome, this part of the weights goes back to even
FLOOR = 1e-6  # a forecast's least likelihood: one surprise cannot silence it for good


class Novelty:
    def __init__(self, weight: float = 0.5) -> None:
        self.weight = weight  # the mixture's part; the baseline's is 1 - weight

    def learn(self, mixture: float, baseline: float, new: bool) -> None:
        """A published guess met its key's next token: `new` if that was NEW to the guess;
        `mixture` and `baseline` are the NEW probabilities each gave in it."""
        a = max(mixture if new else 1.0 - mixture, FLOOR)
        b = max(baseline if new else 1.0 - baseline, FLOOR)
        weight = self.weight * a / (self.weight * a + (1.0 - self.weight) * b)
        self.weight = (1.0 - SHARE) * weight + SHARE * 0.5

    def probability(self, mixture: float, baseline: float) -> float:
        """The published NEW probability, from the mixture's and the baseline's."""
        return self.weight * mixture + (1.0 - self.weight) * baseline

    @staticmethod
    def calibrate(mixtures: np.ndarray, new: np.ndarray) -> np.ndarray:
        """The mixtures (count, V) with NEW at `new` (count,) and the known tokens scaled to
        the rest. A mixture (nearly) all NEW has nothing to scale: it is left as it is."""
        before = mixtures[:, NEW_ID].astype(np.float64)
        room = 1.0 - before
        scalable = room > 1e-6
        scale = np.where(scalable, (1.0 - new) / np.where(scalable, room, 1.0), 1.0)
        out = (mixtures * scale[:, None]).astype(np.float32)
        out[:, NEW_ID] = np.where(scalable, new, before)
        return out

    def published(self, messages: list[Message], mixture: np.ndarray, baseline: np.ndarray) -> np.ndarray:
        """Each message's published NEW probability (`consumer.core.novelty`), message by
        message: each key's pending guess (made at its previous message, in an earlier call or
        in this one) first teaches the weights whether its key's next token was NEW to it. The
        values are those the keys keep (the baseline's as its float16 log), so that a call's
        grouping never changes them."""
        # As the keys keep them: float16 logs, read back as Python floats (math.exp on both paths).
        base_logs = np.log(np.maximum(baseline[:, NEW_ID], 1e-12)).astype(np.float16).tolist()
        mix_new = mixture[:, NEW_ID].tolist()
        held: dict[int, tuple[float, float]] = {}  # id(state) -> its guess of this call's NEW
        new = np.empty(len(messages))
        novelty, exp = self, math.exp
        for i, m in enumerate(messages):
            state = m.state
            pending = held.get(id(state))
            if pending is None and state.log_probs is not None:
                pending = (state.new_mix, exp(float(state.log_probs[2, 0])))
            if pending is not None:
                novelty.learn(*pending, new=m.known_since > m.previous_serial)
            guess = (mix_new[i], exp(base_logs[i]))
            new[i] = novelty.probability(*guess)
            held[id(state)] = guess
            state.new_mix = guess[0]
        return new
