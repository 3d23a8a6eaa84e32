"""How well anomalies are found: the seed pattern with injected foreign tokens, every way.

    .venv/bin/python bench/anomalies.py [--seeds 3] [--messages 6000] [--rate 0.01] [--g 1]

For each way of injecting (`bench.streams.injected`: inserted between two tokens or replacing
one; a token never seen again, one token again and again, or one of five), one and six keys, and
several generator seeds, `evaluate` replays the labelled stream and scores the anomalies (an
input not among its key's previous G most likely tokens) against the labels, once learned: from
the 1,000th message of each key on. Prints one JSON object, {"cases": {name: figures}, "worst":
..., "over_time": ...}; a table goes to stderr.

Over time (`bench.streams_over_time`), scored chronologically in segments of --segment messages:
a new normal event that starts mid-stream (how many alarms it raises, and the messages from its
first appearance to its last alarm), and a log of interleaved lifecycles whose workflow drifts
twice, with error events injected.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import record, streams, streams_over_time
from consumer.anomalies import LabelReader
from consumer.core import compile_cache
from consumer.core.config import LearnerConfig
from consumer.evaluate import evaluate
from consumer.settings import EvaluateSettings
from consumer.tf_import import import_tensorflow_quietly

FIGURES = ("anomaly_precision", "anomaly_recall", "anomaly_f1", "labelled_anomalies", "anomalies", "hit_rate")


# Marks apply after the evaluate chunk of their alarm, as a reader's mark reaches the service
# some time after the alert; strict mode's other figures do not depend on the chunk.
FEEDBACK_CHUNK = 16


def case(mode: str, foreign: str, keys: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    messages = args.messages * keys if keys > 1 else args.messages
    records, labels = streams.injected(messages, args.rate, mode, foreign, keys, seed)
    settings = EvaluateSettings(anomaly_top_g=args.g, anomaly_from=1000 * keys)
    results = evaluate(records, LearnerConfig(), settings, labels=labels).results
    figures = {name: results[name] for name in FIGURES}
    if foreign == "five":  # a few kinds of error: with a mark on the first false alarm of each transition
        marked = _with_marks(records, labels, settings, LabelReader(labels, 1, start=1000 * keys))
        figures.update({f"feedback_{name}": marked[name] for name in FEEDBACK_FIGURES})
    return figures


FEEDBACK_FIGURES = ("anomaly_precision", "anomaly_recall", "anomalies", "feedback_marks", "feedback_silenced")


def _with_marks(
    records: Any, labels: list[bool], settings: EvaluateSettings, reader: LabelReader
) -> dict[str, Any]:
    marked = dataclasses.replace(settings, chunk=FEEDBACK_CHUNK)
    return evaluate(records, LearnerConfig(), marked, labels=labels, reader=reader).results


def over_time(name: str, args: argparse.Namespace) -> dict[str, Any]:
    """One stream of `bench.streams_over_time`, scored segment by segment."""
    if name == "new_normal":
        records, labels = streams_over_time.new_normal(args.messages, args.rate, seed=100)
    else:
        records, labels = streams_over_time.drifting_log(2 * args.messages, seed=100)
    settings = EvaluateSettings(anomaly_top_g=args.g, anomaly_from=1000, anomaly_segment=args.segment)
    results = evaluate(records, LearnerConfig(), settings, labels=labels).results
    new = results["new_normal"]
    marked: dict[str, Any] = {}
    for first in (1, 3) if name == "new_normal" else ():  # marks on the first k false alarms
        r = _with_marks(records, labels, settings, LabelReader(labels, first, per="stream", start=1000))
        marked[str(first)] = {
            **{f: r[f] for f in FEEDBACK_FIGURES},
            "new_normal_alarms": r["new_normal"]["alarms"],
            "new_normal_max_messages_to_silence": r["new_normal"]["max_messages_to_silence"],
        }
    return {
        **{name: results[name] for name in FIGURES},
        "segments": [
            {k: v for k, v in s.items() if k in ("from", "alarms_per_1000", "precision", "recall")}
            for s in results["anomaly_segments"]
        ],
        "new_normal_alarms": new["alarms"],
        "new_normal_max_messages_to_silence": new["max_messages_to_silence"],
        "new_normal_tokens": new["tokens"],
        "with_feedback_on_first": marked,
    }


def _segments(figures: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        return "-" if value is None else f"{value:.2f}"

    return "  ".join(
        f"[{s['from']}: {s['alarms_per_1000']:.0f}/1000 p {one(s['precision'])} r {one(s['recall'])}]"
        for s in figures["segments"]
    )


def _shown(figures: dict[str, Any]) -> str:
    def one(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    return " ".join(f"{name.removeprefix('anomaly_')} {one(value)}" for name, value in figures.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--messages", type=int, default=6000, help="per key")
    parser.add_argument("--rate", type=float, default=0.01)
    parser.add_argument("--g", type=int, default=1)
    parser.add_argument("--segment", type=int, default=1000, help="messages per segment, over time")
    record.add_argument(parser)
    args = parser.parse_args(argv)
    recorder = record.Recorder("anomalies", args.record, argv)
    compile_cache.enable(os.environ.get("LSTM_CONSUMER_COMPILE_CACHE_DIR", str(compile_cache.DEFAULT_DIR)))
    import_tensorflow_quietly()  # after the cache flags; without TF's start-up lines
    cases: dict[str, Any] = {}
    for keys in (1, 6):
        for mode in ("insert", "replace"):
            for foreign in streams.FOREIGN:
                for seed in range(100, 100 + args.seeds):
                    name = f"{mode}_{foreign}_keys{keys}_seed{seed}"
                    cases[name] = figures = case(mode, foreign, keys, seed, args)
                    print(f"{name:32s} {_shown(figures)}", file=sys.stderr, flush=True)
    precisions = [c["anomaly_precision"] or 0.0 for c in cases.values()]
    recalls = [c["anomaly_recall"] or 0.0 for c in cases.values()]
    five = [c for c in cases.values() if "feedback_anomaly_precision" in c]
    marked = [c["feedback_anomaly_precision"] or 0.0 for c in five]
    worst = {
        "five_with_feedback_precision": min(marked),
        "five_with_feedback_recall": min(c["feedback_anomaly_recall"] or 0.0 for c in five),
        "five_with_feedback_at_least_0.98": sum(p >= 0.98 for p in marked),
        "five_cases": len(marked),
        "precision": min(precisions),
        "recall": min(recalls),
        "mean_precision": sum(precisions) / len(precisions),
        "cases_precision_at_least_0.95": sum(p >= 0.95 for p in precisions),
        "cases": len(cases),
    }
    timed: dict[str, Any] = {}
    for name in ("new_normal", "drifting_log"):
        timed[name] = figures = over_time(name, args)
        print(f"{name:32s} {_shown({k: figures[k] for k in FIGURES})}", file=sys.stderr)
        print(f"{'':32s} {_segments(figures)}", file=sys.stderr)
        print(
            f"{'':32s} new normal tokens: {figures['new_normal_alarms']} alarms, the last "
            f"{figures['new_normal_max_messages_to_silence']} messages after the first appearance",
            file=sys.stderr,
            flush=True,
        )
        for first, r in figures["with_feedback_on_first"].items():
            print(f"{'':32s} marks on the first {first}: {_shown(r)}", file=sys.stderr, flush=True)
    result = {
        "benchmark": "anomalies",
        "g": args.g,
        "rate": args.rate,
        "worst": worst,
        "cases": cases,
        "over_time": timed,
    }
    print(json.dumps(result))
    recorder.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
