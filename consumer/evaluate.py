"""`lstm-consumer evaluate`: replay a token file through the learner offline and score it.

Each line is one token of the default stream (whitespace stripped, blank lines skipped),
``KEY<TAB>TOKEN``, or ``KEY<TAB>TOKEN<TAB>LABEL`` with LABEL 1/0 (also true/false, anomaly/normal):
whether that input is a real anomaly. The messages go through the learner in chunks, as the
service feeds it, and every prediction is scored when its key's next token arrives
(prequential: predict, score, learn): the published one, and the LSTM's and the baseline's
beside it. The anomaly figures (`consumer.anomalies`) count the inputs not among their key's
previous --anomaly-top-g most likely tokens, from --anomaly-from on; with labels, their
precision, recall and F1.

>>> [parse_line(line) for line in ["a\\n", "  \\n", "user-1\\tb c\\n", "\\tc", "k\\tx\\t1"]]
[(None, 'a', None), None, ('user-1', 'b c', None), (None, 'c', None), ('k', 'x', True)]
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from consumer.anomalies import AnomalyTally, LabelReader
from consumer.core import compile_cache
from consumer.core.config import LearnerConfig
from consumer.core.repair import READINGS
from consumer.evaluate_curves import GOAL_HITS, GOAL_WINDOW, Curve, Tracker
from consumer.settings import EvaluateSettings
from consumer.token_file import (
    Record,
    parse_line,
    peak_resident_mb,
    read_labelled,
    read_records,
    resident_mb,
)
from lstm_stream.settings import ConfigError

if TYPE_CHECKING:
    from consumer.core.learner import Learner

__all__ = [
    "Curve",
    "Report",
    "Tracker",
    "evaluate",
    "parse_line",
    "read_labelled",
    "read_records",
    "run",
    "summary",
]


@dataclass
class Report:
    """The results (the JSON object) and, when kept, the per-message curves."""

    results: dict[str, Any]
    tracker: Tracker = field(repr=False)


def _replay(
    learner: Learner,
    records: list[Record],
    settings: EvaluateSettings,
    tracker: Tracker,
    reader: LabelReader | None = None,
) -> list[float]:
    """Feed every chunk, each input judged as the service judges it (its rank, and the marks
    given so far); the `reader`'s marks on a chunk's alarms apply after it. Return each
    chunk's wall time."""
    times = []
    with tqdm(
        total=len(records), unit="msg", desc="evaluate", disable=True if settings.quiet else None
    ) as bar:
        for start in range(0, len(records), settings.chunk):
            began = time.perf_counter()
            part = records[start : start + settings.chunk]
            predictions = learner.learn_predict_many(part)
            tokens = [token for _, token in part]
            alarms, flags = [], []
            for index, (p, token) in enumerate(zip(predictions, tokens, strict=True), start=start):
                flagged = learner.feedback.judge(index, p.key, p.context, token, tracker.anomalies.flags(p))
                flags.append(flagged)
                if flagged:
                    alarms.append((index, p.key, (*p.context, token)))
            tracker.update(predictions, tokens, flags)
            for index, key, normal in reader.marks(alarms) if reader else []:
                learner.feedback.mark(index, key, normal)
            times.append(time.perf_counter() - began)
            bar.update(len(part))
            bar.set_postfix(hit100=f"{learner.score.rolling_hit_rate(100):.3f}", refresh=False)
    return times


def evaluate(
    records: list[Record],
    config: LearnerConfig,
    settings: EvaluateSettings,
    *,
    keep_curves: bool = False,
    learner: Learner | None = None,
    labels: list[bool] | None = None,
    reader: LabelReader | None = None,
) -> Report:
    """Replay `records` through a fresh learner of `config` (or through `learner`, as it is);
    keep the curves if asked or a plot is; score the anomalies against `labels` if given, with
    the marks of `reader` (default: one marking the first --feedback-first false alarms of each
    transition normal, if that is above 0)."""
    if learner is None:
        from consumer.core.learner import Learner  # TensorFlow: only once there is work to do

        learner = Learner(config, min_batch=settings.chunk)  # one compiled program, the last chunk too
    anomalies = AnomalyTally(
        settings.anomaly_top_g, settings.anomaly_from, labels, segment=settings.anomaly_segment
    )
    tracker = Tracker(keep_curves=keep_curves or bool(settings.plot), anomalies=anomalies)
    if reader is None and settings.feedback_first and labels is not None:
        reader = LabelReader(labels, settings.feedback_first, start=settings.anomaly_from)
    times = _replay(learner, records, settings, tracker, reader)
    return Report(_results(learner, tracker, times, settings), tracker)


def _rate(hits: int, scored: int) -> float | None:
    return hits / scored if scored else None


def _scores(learner: Learner, tracker: Tracker) -> dict[str, Any]:
    """Per predictor: hit rates, log-loss, when it learned. The published one has no prefix."""
    out: dict[str, Any] = {}
    for name, score in learner.scores.items():
        prefix = "" if name == "published" else f"{name}_"
        curve = tracker.curves[name]
        out.update(
            {
                f"{prefix}hit_rate": score.hit_rate,
                f"{prefix}rolling_hit_rate_100": score.rolling_hit_rate(100),
                f"{prefix}rolling_hit_rate_1000": score.rolling_hit_rate(1000),
                f"{prefix}log_loss": score.log_loss,
                # Compressors quote bits: the same loss in bits per token.
                f"{prefix}bits_per_token": score.log_loss / math.log(2),
                f"{prefix}msgs_to_99": curve.msgs_to_99,
                f"{prefix}hit_rate_after_99": _rate(curve.after_hits, curve.after_scored),
            }
        )
    return out


def _results(
    learner: Learner, tracker: Tracker, times: list[float], settings: EvaluateSettings
) -> dict[str, Any]:
    seconds = sum(times)
    # The first chunk also compiles the model (seconds); the rest shows the steady rate.
    steady = learner.messages - min(settings.chunk, learner.messages)
    return {
        "messages": learner.messages,
        "keys": len(learner.keys),
        "evicted_keys": learner.evicted_keys,
        "predictions": learner.score.scored,
        **_scores(learner, tracker),
        **tracker.anomalies.results(),
        "feedback_marks": learner.feedback.marks,
        "feedback_silenced": learner.feedback.silenced,
        "seconds": seconds,
        "msgs_per_s": learner.messages / seconds if seconds > 0 else None,
        "steady_msgs_per_s": steady / sum(times[1:]) if steady and sum(times[1:]) > 0 else None,
        "vocabulary": len(learner.vocab),
        "new_tokens": learner.vocab.new_tokens,
        "recycled_tokens": learner.vocab.recycled,
        "baseline_contexts": learner.count_model.contexts,
        **{f"outliers_{name}": n for name, n in zip(READINGS, learner.outliers_read, strict=True)},
        "max_rss_mb": peak_resident_mb(),
        "rss_mb": resident_mb(),
        "compile_cache_dir": str(compile_cache.shared_dir()) if compile_cache.shared_dir() else None,
        "compiled_programs": compile_cache.compiled_programs() if compile_cache.shared_dir() else None,
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
            f"  published hit rate {r['hit_rate']:.3f} (last 100: {r['rolling_hit_rate_100']:.3f}, "
            f"last 1000: {r['rolling_hit_rate_1000']:.3f}), log-loss {r['log_loss']:.3f} nats "
            f"({r['bits_per_token']:.3f} bits); {learned}",
            f"  LSTM alone {r['lstm_hit_rate']:.3f}, log-loss {r['lstm_log_loss']:.3f}; "
            f"baseline {r['baseline_hit_rate']:.3f}, log-loss {r['baseline_log_loss']:.3f}",
            _anomaly_line(r),
            f"  {r['keys']} key{'' if r['keys'] == 1 else 's'}, vocabulary {r['vocabulary']} "
            f"({r['new_tokens']} new tokens, {r['recycled_tokens']} recycled ids), "
            f"model step {r['model_step']}, mode {r['mode']}",
        ]
    )


def _anomaly_line(r: dict[str, Any]) -> str:
    rate = "n/a" if r["anomaly_rate"] is None else f"{r['anomaly_rate']:.2%}"
    line = f"  anomalies (not in the previous top {r['anomaly_top_g']}): {r['anomalies']}, rate {rate}"
    if "anomaly_precision" in r:
        figures = [(name, r[f"anomaly_{name}"]) for name in ("precision", "recall", "f1")]
        line += ", against the labels " + ", ".join(
            f"{n} {'n/a' if v is None else f'{v:.3f}'}" for n, v in figures
        )
    new = r.get("new_normal")
    if new and new["count"]:
        silence = new["max_messages_to_silence"]
        line += (
            f"\n  new normal tokens (labelled normal, first met from message {r['anomaly_from']}): "
            f"{new['count']}, {new['alarms']} alarms, "
            + ("none alarmed" if silence is None else f"the last alarm {silence} messages after one's first")
        )
    return line


def run(path: str, settings: EvaluateSettings, config: LearnerConfig) -> int:
    """The command: read, replay, report. `ConfigError` for an unreadable file or a bad plot path;
    `OSError` if the plot cannot be written."""
    for option, target in (("--plot", settings.plot), ("--save", settings.save)):
        if target and not Path(target).resolve().parent.is_dir():
            raise ConfigError(f"{option}: no directory to write {target} in")
    if settings.plot and importlib.util.find_spec("matplotlib") is None:
        # Before the learning, not after it: the plot extra is not in the service's image.
        raise ConfigError("--plot: needs matplotlib, which is not installed: pip install 'lstm-stream[plot]'")
    records, labels = read_labelled(path)
    if settings.feedback_first and labels is None:
        raise ConfigError("--feedback-first: replays marks from the labels, and the file has none")
    learner = None
    if settings.save:
        from consumer.core.learner import Learner

        learner = Learner(config, min_batch=settings.chunk)
    report = evaluate(records, config, settings, labels=labels, learner=learner)
    if learner is not None:
        from consumer.core.snapshot import save

        save(learner, settings.save)
    if settings.json:
        print(json.dumps(report.results, allow_nan=False), flush=True)
    if settings.plot:
        from consumer.plot import plot_hit_rates  # matplotlib: only when asked for

        curves = report.tracker.curves
        rates = {name: curve.rates for name, curve in curves.items()}
        plot_hit_rates(rates, curves["published"].msgs_to_99, report.results, settings.plot)
    if not settings.quiet:
        print(summary(report.results), file=sys.stderr)
    return 0
