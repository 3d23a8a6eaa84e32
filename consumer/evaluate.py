"""`lstm-consumer evaluate`: replay a token file through the learner offline and score it.

Each line is one token of the default stream (whitespace stripped, blank lines skipped) or
``KEY<TAB>TOKEN``. The messages go through the learner in chunks, as the service feeds it, and
every prediction is scored when its key's next token arrives (prequential: predict, score, learn).

>>> [parse_line(line) for line in ["a\\n", "  \\n", "user-1\\tb c\\n", "\\tc"]]
[(None, 'a'), None, ('user-1', 'b c'), (None, 'c')]
>>> curve = HitCurve(size=2)
>>> for hit in [None, True, False, True]:
...     curve.push(hit)
>>> list(curve.rates)[1:], curve.hits
([1.0, 0.5, 0.5], 1)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from array import array
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from consumer.core.config import LearnerConfig
from consumer.settings import EvaluateSettings
from lstm_stream.settings import ConfigError

if TYPE_CHECKING:
    from consumer.core.learner import Learner, Prediction

__all__ = ["HitCurve", "Report", "Tracker", "evaluate", "parse_line", "read_records", "run", "summary"]

Record = tuple[str | None, str]
GOAL_WINDOW, GOAL_HITS = 100, 99  # "learned": 99 hits among the last 100 scored predictions


def parse_line(line: str) -> Record | None:
    """``TOKEN`` or ``KEY<TAB>TOKEN`` (an empty key is the default stream); None for a blank line."""
    key, tab, token = line.partition("\t")
    if not tab:
        key, token = "", key
    token = token.strip()
    return (key.strip() or None, token) if token else None


def read_records(path: str) -> list[Record]:
    """Every record of the file (``-``: standard input); a `ConfigError` if it cannot be read."""
    try:
        if path == "-":
            lines: Iterable[str] = sys.stdin.readlines()
        else:
            # surrogateescape: undecodable bytes stay distinct tokens instead of failing the run
            lines = Path(path).read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    return [record for record in map(parse_line, lines) if record is not None]


class HitCurve:
    """Hits among the last `size` scored predictions; with `keep`, their rate after every message."""

    def __init__(self, size: int = GOAL_WINDOW, keep: bool = True) -> None:
        self.window: deque[bool] = deque(maxlen=size)
        self.hits = 0  # in the window
        self.scored = self.total_hits = 0  # since the start
        self.keep = keep
        self.rates = array("d")  # NaN until a prediction is scored

    @property
    def full(self) -> bool:
        return len(self.window) == self.window.maxlen

    def push(self, hit: bool | None) -> None:
        """Record one message; `hit` None when it scored no prediction."""
        if hit is not None:
            if self.full:
                self.hits -= self.window[0]
            self.window.append(hit)
            self.hits += hit
            self.scored += 1
            self.total_hits += hit
        if self.keep:
            self.rates.append(self.hits / len(self.window) if self.window else math.nan)


class Tracker:
    """What the learner's cumulative scores cannot tell: per-message curves, when it learned."""

    def __init__(self, keep_curves: bool = False) -> None:
        self.lstm = HitCurve(keep=keep_curves)
        self.baseline = HitCurve(keep=keep_curves)
        self.messages = 0
        self.msgs_to_99: int | None = None  # 1-based index of the first message with 99 of 100
        self.after_scored = self.after_hits = 0  # scored predictions after that message
        self._baseline_guess: dict[str | None, str | None] = {}

    def update(self, predictions: Sequence[Prediction], tokens: Sequence[str], known: set[str]) -> None:
        """Account for one chunk; `known` holds the vocabulary's tokens (the rest were OOV)."""
        for prediction, token in zip(predictions, tokens, strict=True):
            self.messages += 1
            hit, key = prediction.previous_hit, prediction.key
            base_hit = None
            if hit is not None:  # the key's pending predictions, the LSTM's and the baseline's, exist
                # A guess of None is the OOV id: it hits a token past the vocabulary's capacity.
                base_hit = self._baseline_guess.get(key) == (token if token in known else None)
            self._baseline_guess[key] = prediction.baseline
            self.lstm.push(hit)
            self.baseline.push(base_hit)
            if hit is not None and self.msgs_to_99 is not None:
                self.after_scored += 1
                self.after_hits += hit
            if self.msgs_to_99 is None and self.lstm.full and self.lstm.hits >= GOAL_HITS:
                self.msgs_to_99 = self.messages


@dataclass
class Report:
    """The results (the JSON object) and, when kept, the per-message curves."""

    results: dict[str, Any]
    tracker: Tracker = field(repr=False)


def _replay(
    learner: Learner, records: list[Record], settings: EvaluateSettings, tracker: Tracker
) -> list[float]:
    """Feed every chunk; return each chunk's wall time."""
    known: set[str] = set()
    times = []
    with tqdm(
        total=len(records), unit="msg", desc="evaluate", disable=True if settings.quiet else None
    ) as bar:
        for start in range(0, len(records), settings.chunk):
            began = time.perf_counter()
            part = records[start : start + settings.chunk]
            predictions = learner.learn_predict_many(part)
            known.update(learner.vocab.tokens[len(known) :])  # tokens only ever get appended
            tracker.update(predictions, [token for _, token in part], known)
            times.append(time.perf_counter() - began)
            bar.update(len(part))
            bar.set_postfix(hit100=f"{learner.score.rolling_hit_rate(100):.3f}", refresh=False)
    return times


def evaluate(records: list[Record], config: LearnerConfig, settings: EvaluateSettings) -> Report:
    """Replay `records` through a fresh learner; keep the curves if a plot is asked for."""
    from consumer.core.learner import Learner  # TensorFlow: only once there is work to do

    learner = Learner(config)
    tracker = Tracker(keep_curves=bool(settings.plot))
    times = _replay(learner, records, settings, tracker)
    return Report(_results(learner, tracker, times, settings), tracker)


def _rate(hits: int, scored: int) -> float | None:
    return hits / scored if scored else None


def _results(
    learner: Learner, tracker: Tracker, times: list[float], settings: EvaluateSettings
) -> dict[str, Any]:
    score, baseline, seconds = learner.score, learner.baseline_score, sum(times)
    # The first chunk also compiles the model (seconds); the rest shows the steady rate.
    steady = learner.messages - min(settings.chunk, learner.messages)
    return {
        "messages": learner.messages,
        "keys": len(learner.keys),
        "evicted_keys": learner.evicted_keys,
        "predictions": score.scored,
        "hit_rate": score.hit_rate,
        "rolling_hit_rate_100": score.rolling_hit_rate(100),
        "rolling_hit_rate_1000": score.rolling_hit_rate(1000),
        "log_loss": score.log_loss,
        "baseline_hit_rate": baseline.hit_rate,
        "baseline_rolling_hit_rate_100": baseline.rolling_hit_rate(100),
        "msgs_to_99": tracker.msgs_to_99,
        "hit_rate_after_99": _rate(tracker.after_hits, tracker.after_scored),
        "seconds": seconds,
        "msgs_per_s": learner.messages / seconds if seconds > 0 else None,
        "steady_msgs_per_s": steady / sum(times[1:]) if steady and sum(times[1:]) > 0 else None,
        "oov": learner.vocab.oov_count,
        "vocabulary": len(learner.vocab),
        "model_step": learner.model_step,
        "mode": learner.config.mode,
        "chunk": settings.chunk,
        "config": dataclasses.asdict(learner.config),
    }


def summary(results: dict[str, Any]) -> str:
    """A few lines for a human, on stderr."""
    r = results
    learned = (
        f"{GOAL_HITS} of the last {GOAL_WINDOW} first at message {r['msgs_to_99']}, "
        f"hit rate {r['hit_rate_after_99'] or 0:.3f} after"
        if r["msgs_to_99"] is not None
        else f"never {GOAL_HITS} of the last {GOAL_WINDOW}"
    )
    speed = f"{r['msgs_per_s']:.1f} msgs/s" if r["msgs_per_s"] else "no messages"
    return "\n".join(
        [
            f"lstm-consumer evaluate: {r['messages']} messages, {r['predictions']} scored "
            f"in {r['seconds']:.2f} s ({speed})",
            f"  LSTM hit rate {r['hit_rate']:.3f} (last 100: {r['rolling_hit_rate_100']:.3f}, last 1000: "
            f"{r['rolling_hit_rate_1000']:.3f}), log-loss {r['log_loss']:.3f}; {learned}",
            f"  baseline hit rate {r['baseline_hit_rate']:.3f} "
            f"(last 100: {r['baseline_rolling_hit_rate_100']:.3f})",
            f"  {r['keys']} key{'' if r['keys'] == 1 else 's'}, vocabulary {r['vocabulary']} "
            f"({r['oov']} OOV), model step {r['model_step']}, mode {r['mode']}",
        ]
    )


def run(path: str, settings: EvaluateSettings, config: LearnerConfig) -> int:
    """The command: read, replay, report. `ConfigError` for an unreadable file or a bad plot path;
    `OSError` if the plot cannot be written."""
    if settings.plot and not Path(settings.plot).resolve().parent.is_dir():
        raise ConfigError(f"--plot: no directory to write {settings.plot} in")
    records = read_records(path)
    report = evaluate(records, config, settings)
    if settings.json:
        print(json.dumps(report.results, allow_nan=False), flush=True)
    if settings.plot:
        from consumer.plot import plot_hit_rates  # matplotlib: only when asked for

        plot_hit_rates(report, settings.plot)
    if not settings.quiet:
        print(summary(report.results), file=sys.stderr)
    return 0
