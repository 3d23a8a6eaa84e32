"""One partition's online learner: shared LSTM and count model, per-key windows and predictions.

The per-message contract, for message m of key k:

1. k's pending predictions (made after k's previous message) are scored against m: hit or miss;
2. the model trains one step on (the up to L tokens before m -> m), once k has at least one
   earlier token; every key's history starts with a begin-of-stream mark, which counts as one,
   so a key learns from its first message on (a shorter history is left-padded): short sessions
   are learned too, and how sessions start;
3. the model predicts k's next token from the last L tokens, m included: that is the
   prediction for m, and it becomes k's pending prediction;
4. no prediction is ever made with weights that were updated on its own target.

Three predictors run side by side and are scored alike (`consumer.core.scoring`): the LSTM, the
baseline (`consumer.core.count_model`, order-N counts) and the published one, their geometric
mixture with weights learned online (`consumer.core.mixer`), rarely worse than its best input,
with a hundredth of the baseline's distribution blended in (`publish`): a mixture that grew too
sure of itself still leaves every class at least that share of the baseline's probability. Its
NEW probability is first set by what the published guesses have met (`consumer.core.novelty`):
a token another key brought in while the key waited is NEW to the key's guess.

Strict mode (default) runs (2) and (3) message by message inside one compiled loop, so the
results are bit-identical however the messages are grouped into calls. Relaxed mode predicts
every message of a call with the weights as of the call's start, then trains one batched step
on all of them: much faster, but a message's prediction no longer benefits from the messages
just before it in the same call. Rule 4 holds in both. The count model and the mixer learn
message by message in both modes.

A call runs in three passes: the host registers each message (its key, its token's id, its
window, the count model's view before and after it), the compiled program trains and predicts
(`consumer.core.compiled`, the mixer included), and the host scores the keys' pending guesses
and makes the new ones.

>>> learner = Learner(LearnerConfig(window=4, loss_steps=1))
>>> out = learner.learn_predict_many([(None, t) for t in "abab"])
>>> [p.previous_hit is None for p in out], [p.model_step for p in out]
([True, False, False, False], [1, 2, 3, 4])
>>> learner.learn_predict_one("other", "a").previous_hit is None
True
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from consumer.core import repair
from consumer.core.batch import Batch
from consumer.core.compiled import BUCKETS, configure_threads
from consumer.core.config import LearnerConfig
from consumer.core.count_model import NEW_UID, CountModel
from consumer.core.count_rows import AFTER, BEFORE, CountRows
from consumer.core.feedback import CONTEXT, Feedback, name_context
from consumer.core.keys import Key, KeyState, KeyTable
from consumer.core.layout import width_for
from consumer.core.novelty import Novelty
from consumer.core.prediction import BASELINE_SHARE, Message, Prediction, publish, score_pending, top_classes
from consumer.core.programs import program_for, run_at_widths
from consumer.core.replay import Replay
from consumer.core.scoring import PREDICTORS, Score
from consumer.core.stale import StaleIds
from consumer.core.vocab import FIRST_ID, NEW_ID, Vocabulary

__all__ = ["BASELINE_SHARE", "Key", "KeyState", "Learner", "Prediction", "publish"]


class Learner:
    """learn_predict_many(records) -> predictions; scores in `.scores` (per predictor)."""

    def __init__(self, config: LearnerConfig | None = None, *, min_batch: int = 1, top_k: int = 3) -> None:
        """`min_batch`: pad every call to at least this many messages, so a service whose calls
        vary in size runs (and compiles) one program; padding costs no compute. `top_k`: the
        classes each prediction lists in `Prediction.top`."""
        self.config = cfg = config or LearnerConfig()
        self.top_k = top_k
        self.min_batch = min(max(min_batch, 1), BUCKETS[-1])
        configure_threads(cfg.intra_op_threads, cfg.inter_op_threads)
        self.program = program_for(cfg)
        self.vocab = Vocabulary(cfg.capacity)
        self.keys = KeyTable(cfg.max_keys, cfg.history)
        self.count_model = CountModel(
            cfg.count_orders, cfg.vocab_size, cfg.baseline_max_contexts, cfg.baseline_order
        )
        self.replay = Replay(cfg.replay_buffer, cfg.window + 1, cfg.seed + 1)
        self.scores = {name: Score() for name in PREDICTORS}
        self.readings = repair.Readings()
        self.novelty = Novelty()
        self.feedback = Feedback()  # the marks readers of its anomaly alerts gave
        self._call_names: dict[int, str] = {}  # see _process
        # Outliers read out since this learner was made, by the reading they were settled to
        # (clear wins or not); diagnostics only, not in the snapshot.
        self.outliers_read = [0] * len(repair.READINGS)
        self.model_step = self.messages = 0
        self.names: list[str | None] = list(self.vocab.tokens)  # id -> token, as the last pass goes
        self._last: KeyState | None = None  # the key of the call's latest message

    @property
    def score(self) -> Score:
        """The published predictions' score."""
        return self.scores["published"]

    @property
    def evicted_keys(self) -> int:
        return self.keys.evicted

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

    def predict(self, key: Key, k: int = 3) -> list[tuple[str | None, float]]:
        """The key's pending prediction, learning nothing: its `k` most likely next tokens (None
        for a token not seen yet) with their probabilities, as published after the key's last
        message. Empty for a key the learner does not hold (never seen, or evicted). A token
        whose id was given to another token since then is left out: the probability was its."""
        state = self.keys.states.get(key)
        if state is None or state.log_probs is None or k < 1:
            return []
        row = state.log_probs[0].astype(np.float32)
        since = state.serials[-1]
        ids = np.arange(NEW_ID, NEW_ID + len(row))
        valid = (ids == NEW_ID) | (self.vocab.assigned_at[ids] <= since)
        order = np.argsort(-np.where(valid, row, -np.inf), kind="stable")[:k]
        names = [None if i == NEW_ID else self.names[i] for i in ids[order]]
        return [(name, float(np.exp(row[i]))) for name, i in zip(names, order, strict=True) if valid[i]]

    # -- the host pass before the compiled call --------------------------------------------
    def _process(self, records: Sequence[tuple[Key, str]]) -> list[Prediction]:
        cfg = self.config
        size = self._bucket(len(records))
        replay = self.program.replay
        # The widest the call's vocabulary can get: every array over token ids is that wide.
        reach = width_for(self.vocab.reach([t for _, t in records], self.messages), cfg.vocab_size)
        count = len(records)
        batch = Batch.empty(size, cfg, replay, reach)._replace(messages=count)
        assigned_before = self.vocab.assigned_at.copy()
        ids = np.zeros((count, cfg.window + 1), np.int32)
        serials = np.zeros((count, cfg.window + 1), np.int64)
        predict_ids = np.zeros((count, cfg.window), np.int32)
        predict_serials = np.zeros((count, cfg.window), np.int64)
        counts = CountRows(count, cfg.count_orders, reach)
        self._call_names = {}  # ids the call's messages brought in, named before the pass after
        messages = [
            self._prepare(i, key, token, (ids[i], serials[i], predict_ids[i], predict_serials[i]), counts)
            for i, (key, token) in enumerate(records)
        ]
        if self.vocab.end > reach:  # never: the arrays would hold ids past their width
            raise AssertionError(f"the vocabulary reached {self.vocab.end}, past its bound {reach}")
        events = [(m.token_id, m.serial) for m in messages if m.new]
        views = StaleIds(assigned_before, events, self.messages, count)
        batch.inputs[:count], batch.targets[:count] = views.encode(ids, serials)
        batch.predict[:count] = views.encode(predict_ids, predict_serials)[0]
        if replay and count:
            rows, row_serials = self.replay.sample_along(ids, serials, replay)
            batch.replay_inputs[:count], batch.replay_targets[:count] = views.encode(rows, row_serials)
        for i, m in enumerate(messages):
            batch.learn_mixer[i] = 0.0 if m.outlier else 1.0
            batch.reset[i] = m.token_id if m.new else -1
            batch.vocab_end[i] = m.end
        width = counts.width
        baseline = np.zeros((count, reach), np.float32)
        backoff, blended = counts.distributions(cfg.baseline_row)
        baseline[:, :width] = backoff
        batch.counts[:count, :, :, :width] = blended[:, :, cfg.mixed_rows]
        lstm, mixture, losses = run_at_widths(self.program, batch, self._bucket)
        new = self.novelty.published(messages, mixture, baseline)
        published = publish(self.novelty.calibrate(mixture, new), baseline)
        return self._finish_all(messages, lstm, published, baseline, losses)

    def _bucket(self, count: int) -> int:
        return next(b for b in BUCKETS if b >= max(count, self.min_batch))

    def _prepare(
        self, i: int, key: Key, token: str, rows: tuple[np.ndarray, ...], counts: CountRows
    ) -> Message:
        """Register message i: its key and token; into `rows` its window's entries (ids,
        serials) and the window the LSTM predicts from after it; the count model's views before
        and after it (the count model learns it in between). A key whose history holds an
        outlier is read under the outlier's leading reading (`consumer.core.repair`)."""
        ids, serials, predict_ids, predict_serials = rows
        window, order = self.config.window, self.config.count_orders[-1]
        serial = self.messages + i
        state = self.keys.touch(key, serial)
        previous_serial = state.serials[-1]
        context = name_context(state.ids[-CONTEXT:], self.names, self._call_names)
        token_id, new, displaced = self.vocab.encode(token, serial)
        if new:
            self._call_names[token_id] = token
        if new:
            self.count_model.assign(token_id, serial, displaced if displaced >= 0 else None)
        assigned_at = self.vocab.assigned_at
        state.refresh_uids(order, assigned_at, self.vocab.recycled)
        known_since = int(assigned_at[token_id])
        uid, target_id, end = (NEW_UID if new else known_since), (NEW_ID if new else token_id), self.vocab.end
        if i and self._last is state and displaced < 0:  # the key's last view after: nothing since
            counts.repeat(i, end)
        else:
            counts.gather(i, BEFORE, self.count_model, state.context(order, assigned_at), end)
        if state.outlier is not None:
            self._count_reading(state.weigh(self.count_model, uid, target_id, end, order, assigned_at))
        state.read_into(ids[:window], serials[:window])
        ids[window], serials[window] = token_id, serial
        read = state.context(order, assigned_at)
        guess = repair.outlier(self.count_model, read, uid)
        if guess is not None and state.outlier is not None:
            self._count_reading(state.settle(assigned_at))  # another: the first is read as it leads
        # The count model learns the stream as the key's history reads it: an outlier read out
        # is not learned as the context of the tokens after it.
        self.count_model.learn(read, uid, target_id, born=known_since if new else None)
        self.keys.append(state, token_id, serial)
        self._last = state
        state.uids.append(known_since)
        del state.uids[: -order - 1]
        if guess is not None:
            state.outlier = repair.OutlierReading(serial, *guess, self.readings.prior())
        counts.gather(i, AFTER, self.count_model, state.context(order, assigned_at), end)
        state.read_into(predict_ids, predict_serials)
        # An outlier read out (the readings so far say such tokens are noise) teaches the mixer's
        # vector of the token before it nothing: every input failed it. Read as kept, it is a
        # real, rarer event, learned like any other.
        outlier = (
            state.outlier is not None
            and state.outlier.serial == serial
            and state.outlier.leading() != repair.KEPT
        )
        return Message(
            key, state, token, token_id, serial, new, known_since, previous_serial, end, outlier, context
        )

    def _count_reading(self, reading: int | None) -> None:
        """An outlier of a key was settled as `reading`: the prior of the next ones learns it."""
        if reading is not None:
            self.outliers_read[reading] += 1
            self.readings.record(reading)

    # -- the host pass after it ------------------------------------------------------------
    def _finish_all(
        self,
        messages: list[Message],
        lstm: np.ndarray,
        mixture: np.ndarray,
        baseline: np.ndarray,
        losses: np.ndarray,
    ) -> list[Prediction]:
        """Score and guess for every message, in order. NEW is never a guess (it never hits):
        each predictor's guess is its most likely token in use."""
        count = len(messages)
        ends = np.array([m.end for m in messages], np.int64)
        stacked = np.stack([mixture, lstm, baseline], axis=1)  # (count, predictors, V)
        in_use = np.arange(stacked.shape[2]) < ends[:, None, None]
        guesses = np.argmax(np.where(in_use, stacked, -1.0)[:, :, FIRST_ID:], axis=2) + FIRST_ID
        chosen = np.take_along_axis(stacked, guesses[:, :, None], axis=2)[:, :, 0]
        logs = np.log(np.maximum(stacked[:, :, NEW_ID:], 1e-12)).astype(np.float16)
        tops = top_classes(logs[:, 0], mixture, ends, self.top_k)
        strict, step_at_start = self.program.step_per_message, self.model_step
        out = []
        for i, m in enumerate(messages):
            if m.new:
                self.names[m.token_id] = m.token
            hits, surprise, rank = score_pending(m, self.scores)
            published, own, base = guess = tuple(guesses[i].tolist())
            m.state.guesses = guess
            m.state.log_probs = logs[i, :, : m.end - NEW_ID].copy()
            self.model_step += strict
            out.append(
                Prediction(
                    key=m.key,
                    predicted=self._name(published),
                    probability=float(chosen[i, 0]),
                    model_step=self.model_step if strict else step_at_start,
                    previous_hit=hits[0],
                    baseline=self._name(base),
                    loss=float(losses[i]),
                    lstm=self._name(own),
                    lstm_probability=float(chosen[i, 1]),
                    previous_lstm_hit=hits[1],
                    previous_baseline_hit=hits[2],
                    top=tuple((None if c == NEW_ID else self._name(c), p) for c, p in tops[i]),
                    surprise_bits=surprise,
                    rank=rank,
                    context=m.context,
                )
            )
        if not strict and count:  # relaxed: one step for the whole call
            self.model_step += 1
        self.messages += count
        return out

    def _name(self, token_id: int) -> str:
        name = self.names[token_id]
        assert name is not None, "a guess is always a token in use"
        return name
