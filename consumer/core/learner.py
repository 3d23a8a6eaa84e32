"""One partition's online learner: shared LSTM, per-key windows and pending predictions.

The per-message contract, for message m of key k:

1. k's pending prediction (made after k's previous message) is scored against m: hit or miss;
2. the model trains one step on (the L tokens before m -> m), once k has L earlier tokens;
3. the model predicts k's next token from the last L tokens, m included: that is the
   prediction for m, and it becomes k's pending prediction;
4. no prediction is ever made with weights that were updated on its own target.

Strict mode (default) runs (2) and (3) message by message inside one compiled loop, so the
results are bit-identical however the messages are grouped into calls. Relaxed mode predicts
every message of a call with the weights as of the call's start, then trains one batched step
on all of them: much faster, but a message's prediction no longer benefits from the messages
just before it in the same call. Rule 4 holds in both.

>>> learner = Learner(LearnerConfig(window=4, loss_steps=1))
>>> out = learner.learn_predict_many([(None, t) for t in "abab"])
>>> [p.previous_hit is None for p in out], [p.model_step for p in out]
([True, False, False, False], [0, 0, 0, 0])
>>> learner.learn_predict_one("other", "a").previous_hit is None
True
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from consumer.core.baseline import BackoffBaseline
from consumer.core.compiled import BUCKETS, Batch, Program, configure_threads
from consumer.core.config import LearnerConfig
from consumer.core.scoring import Score
from consumer.core.vocab import OOV_ID, PAD_ID, Vocabulary

__all__ = ["KeyState", "Learner", "Prediction"]

Key = str | None


@dataclass(frozen=True)
class Prediction:
    """What the learner says after one message."""

    key: Key
    predicted: str | None  # None: the model's best guess is a token past the vocabulary's capacity
    probability: float
    model_step: int  # training steps the predicting weights had taken
    previous_hit: bool | None  # outcome of this key's previous prediction; None if there was none
    baseline: str | None  # the baseline's guess for the same next token
    loss: float  # training loss of this message's step (0.0 when it did not train)


@dataclass
class KeyState:
    """One stream's memory: its recent ids and its pending predictions."""

    history: list[int] = field(default_factory=list)  # last max(L, baseline order) ids
    seen: int = 0
    pending: int | None = None  # predicted id
    pending_probs: np.ndarray | None = None  # full distribution, for log-loss
    baseline_pending: int | None = None


@dataclass
class _Pending:
    """Per-message bookkeeping between the host pass and the compiled call."""

    key: Key
    state: KeyState
    token_id: int


class Learner:
    """learn_predict_many(records) -> predictions; scores in `.score` and `.baseline_score`."""

    def __init__(self, config: LearnerConfig | None = None, *, min_batch: int = 1) -> None:
        """`min_batch`: pad every call to at least this many messages, so a service whose calls
        vary in size runs (and compiles) one program; padding costs no compute."""
        self.config = config or LearnerConfig()
        self.min_batch = min(max(min_batch, 1), BUCKETS[-1])
        configure_threads(self.config.intra_op_threads, self.config.inter_op_threads)
        self.program = Program(self.config)
        self.vocab = Vocabulary(self.config.capacity)
        self.keys: OrderedDict[Key, KeyState] = OrderedDict()
        self.baseline = BackoffBaseline(self.config.baseline_order)
        self.score = Score()
        self.baseline_score = Score()
        self.rng = np.random.default_rng(self.config.seed + 1)
        window = self.config.window
        self.replay_rows = np.zeros((self.config.replay_buffer, window + 1), np.int32)
        self.replay_filled = 0
        self.replay_next = 0
        self.model_step = 0
        self.messages = 0
        self.evicted_keys = 0
        self.oov_seen = False
        self._keep = max(window, self.config.baseline_order)

    # -- public API ------------------------------------------------------------------------
    def learn_predict_one(self, key: Key, token: str) -> Prediction:
        return self.learn_predict_many([(key, token)])[0]

    def learn_predict_many(self, records: Iterable[tuple[Key, str]]) -> list[Prediction]:
        """Score, train and predict for each (key, token) in order."""
        records = list(records)
        out: list[Prediction] = []
        for start in range(0, len(records), BUCKETS[-1]):
            out.extend(self._process(records[start : start + BUCKETS[-1]]))
        return out

    # -- internals -------------------------------------------------------------------------
    def _state(self, key: Key) -> KeyState:
        state = self.keys.get(key)
        if state is None:
            state = self.keys[key] = KeyState()
            if len(self.keys) > self.config.max_keys:
                self.keys.popitem(last=False)
                self.evicted_keys += 1
        else:
            self.keys.move_to_end(key)
        return state

    def _remember(self, row: np.ndarray) -> None:
        self.replay_rows[self.replay_next] = row
        self.replay_next = (self.replay_next + 1) % len(self.replay_rows)
        self.replay_filled = min(self.replay_filled + 1, len(self.replay_rows))

    def _process(self, records: Sequence[tuple[Key, str]]) -> list[Prediction]:
        count = len(records)
        size = next(b for b in BUCKETS if b >= max(count, self.min_batch))
        cfg = self.config
        window = cfg.window
        replay = cfg.replay if cfg.mode == "strict" else 0  # relaxed batches train without replay
        windows = np.zeros((size, window + 1), np.int32)
        train = np.zeros(size, bool)
        replays = np.zeros((size, replay, window + 1), np.int32)
        vocab_end = np.zeros(size, np.int32)
        oov_seen = np.zeros(size, bool)
        baseline_guess: list[int | None] = []
        pending: list[_Pending] = []
        for i, (key, token) in enumerate(records):
            state = self._state(key)
            token_id = self.vocab.encode(token)
            self.oov_seen |= token_id == OOV_ID
            history = state.history
            recent = history[-window:]
            windows[i, window - len(recent) : window] = recent
            windows[i, window] = token_id
            if state.seen >= window:
                train[i] = True
                if replay:
                    self._remember(windows[i])
                    replays[i] = self.replay_rows[self.rng.integers(0, self.replay_filled, replay)]
            if state.baseline_pending is not None:
                self.baseline_score.update(state.baseline_pending == token_id)
            self.baseline.learn(history, token_id)
            history.append(token_id)
            if len(history) > self._keep:
                del history[0]
            state.seen += 1
            state.baseline_pending = self.baseline.predict(history)
            baseline_guess.append(state.baseline_pending)
            vocab_end[i] = self.vocab.end
            oov_seen[i] = self.oov_seen
            pending.append(_Pending(key, state, token_id))
        probs, losses = self.program.run(Batch(windows, train, replays, vocab_end, oov_seen, count))
        return self._finish(pending, probs, losses, train, baseline_guess)

    def _finish(
        self,
        pending: list[_Pending],
        probs: np.ndarray,
        losses: np.ndarray,
        train: np.ndarray,
        baseline_guess: list[int | None],
    ) -> list[Prediction]:
        out = []
        strict = self.config.mode == "strict"
        step_at_start = self.model_step
        best = probs.argmax(axis=1)
        for i, item in enumerate(pending):
            state = item.state
            previous_hit = None
            if state.pending is not None:
                previous_hit = state.pending == item.token_id
                assert state.pending_probs is not None
                self.score.update(previous_hit, float(state.pending_probs[item.token_id]))
            if strict:
                self.model_step += int(train[i])
            state.pending, state.pending_probs = int(best[i]), probs[i]
            guess = baseline_guess[i]
            out.append(
                Prediction(
                    key=item.key,
                    predicted=self.vocab.decode(int(best[i])),
                    probability=float(probs[i, best[i]]),
                    model_step=self.model_step if strict else step_at_start,
                    previous_hit=previous_hit,
                    baseline=None if guess is None or guess == PAD_ID else self.vocab.decode(guess),
                    loss=float(losses[i]),
                )
            )
        if not strict and train[: len(pending)].any():  # relaxed: one step for the whole call
            self.model_step = step_at_start + 1
        self.messages += len(pending)
        return out
