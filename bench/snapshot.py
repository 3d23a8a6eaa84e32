"""Benchmark: snapshot size and snapshot/restore time of a learner, printed as one JSON object.

    .venv/bin/python bench/snapshot.py [--keys N] [--messages-per-key N] [--repeat N] [MODEL OPTIONS]

It feeds N keys a token stream each, random or periodic (interleaved, `--messages-per-key`
messages per key, enough to fill their windows by default) through a learner built from the model options (the
defaults of `lstm-consumer evaluate`, except `--mode relaxed` to fill it quickly: the mode does
not change what a snapshot holds), then times `snapshot_bytes` and `restore` (median of
`--repeat`). Also reports the zlib-compressed size, for a Kafka producer's `compression_type`.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# bench/consumer.py shadows the consumer package: this directory must not come first on sys.path.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, Any]:
    from consumer.core.config import LearnerConfig
    from lstm_stream.settings import add_arguments, from_namespace

    parser = argparse.ArgumentParser(description="Snapshot size and timings (JSON on stdout).")
    parser.add_argument("--keys", type=int, default=1000, help="streams (keys) in the learner")
    parser.add_argument("--messages-per-key", type=int, default=70, help="messages fed per key")
    parser.add_argument("--tokens", type=int, default=50, help="distinct tokens of the streams")
    parser.add_argument("--period", type=int, default=0, help="periodic streams of this period (0: random)")
    parser.add_argument("--repeat", type=int, default=7, help="timed repetitions (median reported)")
    add_arguments(parser, LearnerConfig, "LSTM_CONSUMER_")
    ns = parser.parse_args(argv)
    env = {"LSTM_CONSUMER_MODE": "relaxed", **os.environ}  # flags still win, then the environment
    return ns, from_namespace(LearnerConfig, "LSTM_CONSUMER_", ns, env)


def median_ms(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 2)


def main(argv: list[str] | None = None) -> int:
    ns, config = parse_args(argv)
    from consumer.core.learner import Learner
    from consumer.core.snapshot import restore, snapshot_bytes

    learner = Learner(config)
    rnd = random.Random(0)

    def token(step: int, key: int) -> str:
        return f"t{(step + key) % ns.period % ns.tokens}" if ns.period else f"t{rnd.randrange(ns.tokens)}"

    records = [(f"key-{k}", token(i, k)) for i in range(ns.messages_per_key) for k in range(ns.keys)]
    start = time.perf_counter()
    for i in range(0, len(records), 512):
        learner.learn_predict_many(records[i : i + 512])
    fill_s = time.perf_counter() - start
    data = snapshot_bytes(learner)
    spare = Learner(config)
    result = {
        "keys": ns.keys,
        "messages": len(records),
        "fill_s": round(fill_s, 2),
        "period": ns.period,
        "baseline_contexts": learner.count_model.contexts,
        "snapshot_bytes": len(data),
        "snapshot_zlib_bytes": len(zlib.compress(data, 1)),
        "snapshot_ms": median_ms(lambda: snapshot_bytes(learner), ns.repeat),
        "restore_ms": median_ms(lambda: restore(data, config), ns.repeat),
        "restore_into_ms": median_ms(lambda: restore(data, config, into=spare), ns.repeat),
        "config": config.model_fields(),
    }
    assert snapshot_bytes(restore(data, config)) == data
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
