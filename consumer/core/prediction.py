"""What a learner says after each message (`Prediction`) and how its published distribution is
made from the mixture (`publish`, `top_classes`): plain data and NumPy, no TensorFlow, so the
service's record encoders read them without loading the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from consumer.core.scoring import PREDICTORS, Score
from consumer.core.vocab import NEW_ID

if TYPE_CHECKING:
    from consumer.core.keys import Key, KeyState

__all__ = ["BASELINE_SHARE", "Message", "Prediction", "publish", "score_pending", "top_classes"]

# The baseline's part of the published distribution. Replayed on the quality benchmark's
# streams, 0.01 lowered every log-loss but two (by at most 0.0004 nats there) and moved no hit
# rate by more than a tenth of a point; 0.02 and more began to cost hits.
BASELINE_SHARE = np.float32(0.01)


def publish(mixture: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """The published distributions: the mixture with `BASELINE_SHARE` of the baseline's blended
    in, linearly, so that no class the baseline gives p falls below p / 100.

    >>> [round(float(p), 4) for p in publish(np.array([0.999999, 1e-06, 0.0]), np.array([0.5, 0.5, 0.0]))]
    [0.995, 0.005, 0.0]
    """
    return (1 - BASELINE_SHARE) * mixture + BASELINE_SHARE * baseline


@dataclass(frozen=True)
class Prediction:
    """What the learner says after one message."""

    key: Key
    predicted: str  # the published guess: the most likely token of the mixture
    probability: float
    model_step: int  # training steps the predicting weights had taken
    previous_hit: bool | None  # outcome of this key's previous published guess; None if none
    baseline: str  # the baseline's guess for the same next token
    loss: float  # training loss of this message's step
    lstm: str  # the LSTM's own guess
    lstm_probability: float
    previous_lstm_hit: bool | None
    previous_baseline_hit: bool | None
    # The published distribution's `top_k` most likely classes, most likely first (ties: the
    # lower id), with their probabilities; None is NEW, a token not in the vocabulary.
    top: tuple[tuple[str | None, float], ...] = ()
    # This message's token under the key's previous published prediction: -log2 of its
    # probability, and its rank in that prediction's order (1: its most likely class). None
    # for a key's first message. A token new to the vocabulary is ranked and priced as NEW.
    surprise_bits: float | None = None
    rank: int | None = None
    # The `consumer.core.feedback.CONTEXT` tokens the key had before this message, oldest first
    # ("^": the stream's start): with the token, the transition an anomaly mark names.
    context: tuple[str, ...] = ()


@dataclass
class Message:
    """Per-message facts the host pass hands to the pass after the compiled call."""

    key: Key
    state: KeyState
    token: str
    token_id: int
    serial: int
    new: bool
    known_since: int  # serial at which the token got its id (== serial when new)
    previous_serial: int  # serial of the key's previous message (its pending predictions)
    end: int  # vocabulary end after the message
    outlier: bool  # an outlier read out of the history (`consumer.core.repair`)
    context: tuple[str, ...] = ()  # the key's tokens before it (`Prediction.context`)


def top_classes(
    logs: np.ndarray, mixture: np.ndarray, ends: np.ndarray, k: int
) -> list[list[tuple[int, float]]]:
    """Per message, the published distribution's `k` most likely classes (ids) and probabilities,
    ordered by the float16 log-probabilities its key keeps (ties: the lower id), so that the rank
    the key's next message is scored with agrees with this list. `logs` (count, classes from
    NEW), `mixture` (count, width), `ends` (count,): the vocabulary's end after each message."""
    k = min(k, logs.shape[1])
    if not k or not len(logs):
        return [[] for _ in range(len(logs))]
    in_use = np.arange(logs.shape[1]) < (ends - NEW_ID)[:, None]
    order = np.argsort(-np.where(in_use, logs.astype(np.float32), -np.inf), axis=1, kind="stable")[:, :k]
    ids = order + NEW_ID
    probs = np.take_along_axis(mixture, ids, axis=1)
    return [
        [(int(c), float(p)) for c, p, ok in zip(row, prow, use, strict=True) if ok]
        for row, prow, use in zip(ids, probs, np.take_along_axis(in_use, order, axis=1), strict=True)
    ]


def score_pending(
    m: Message, scores: dict[str, Score]
) -> tuple[tuple[bool | None, ...], float | None, int | None]:
    """Score the key's pending predictions against the message's token: each predictor's
    hit, and the token's surprise (bits) and rank under the published one."""
    state = m.state
    if state.log_probs is None:
        return (None,) * len(PREDICTORS), None, None
    known = m.known_since <= m.previous_serial  # the token had its id when the guesses were made
    column = m.token_id - NEW_ID if known else 0  # else it was NEW to them
    losses = (-state.log_probs[:, column].astype(np.float64)).tolist()
    hits = tuple(known and guess == m.token_id for guess in state.guesses)
    for score, hit, loss in zip(scores.values(), hits, losses, strict=True):
        score.update(hit, loss)
    row = state.log_probs[0]
    value = row[column]
    rank = 1 + int(np.count_nonzero(row > value)) + int(np.count_nonzero(row[:column] == value))
    return hits, losses[0] / math.log(2), rank
