"""Benchmark the learner core beside the seed's own loop, in one process and one run.

    .venv/bin/python bench/learner.py [--naive-messages 150] [--learn-messages 5600] [--capacities 64,256]

Prints one JSON object: naive_msgs_per_s (Keras model.fit + model.predict per message, the
seed's loop with its bug fixed), strict_msgs_per_s (backlog: 4,096 messages per call),
strict_single_msgs_per_s (one message per call), relaxed_msgs_per_s, each with its
speedup_*_vs_naive (the ratio that carries from one machine to another) and where its time went
per message (*_compiled_us_per_msg in the compiled program's calls, *_host_us_per_msg in the
host pass); ppm_msgs_per_s, a plain PPM-C in pure Python on the same stream (the cost of
counting alone); the start-up as whole
`lstm-consumer evaluate` processes on --start-messages seed tokens: cold_start_s (empty compile
cache) and warm_start_s (the cache the cold run filled), resident memory after each
(rss_after_start_mb is the warm one) and its peak, the stderr lines each printed, and
tensorflow_import_s (the floor under both); msgs_to_99 and hit_rate_after_99 (default settings,
from scratch, on the seed sequence) for the published predictions and the LSTM alone (lstm_*);
and the machine's load average. With --capacities 64,256,1024: strict backlog msgs/s at each
vocabulary capacity too (each capacity compiles its own programs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import deque
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench import ppm, record
from consumer.core.compiled import configure_threads
from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner

SEED_UNIT = [4] * 6 + [8] + [4] * 5 + [8] + [4] * 6 + [8] + [4] * 6 + [28]


def seed_stream(n: int, start: int = 0) -> list[int]:
    return [SEED_UNIT[(start + i) % len(SEED_UNIT)] for i in range(n)]


def naive_loop(messages: int) -> dict[str, float]:
    """The seed's loop (SEED.md), bug fixed: predict from x_pred, not from the training array."""
    import keras

    seq_length, vocab_size = 64, 4
    model = keras.Sequential(
        [
            keras.Input((seq_length, 1)),
            keras.layers.LSTM(16),
            keras.layers.Dense(vocab_size),
            keras.layers.Activation("softmax"),
        ]
    )
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["categorical_accuracy"])
    vocab: list[int] = []
    legend: dict[int, int] = {}
    window: deque[int] = deque(maxlen=seq_length + 1)
    stream = seed_stream(seq_length + messages)
    pending, hits, scored, started = None, 0, 0, 0.0
    for number in stream:
        if number not in legend:
            legend[number] = len(vocab)
            vocab.append(number)
        if pending is not None:
            scored += 1
            hits += pending == number
        window.append(number)
        if len(window) <= seq_length:
            continue
        if started == 0.0:
            started = time.perf_counter()
        ids = [legend[n] for n in window]
        x = np.array(ids[:seq_length], np.float32).reshape(1, seq_length, 1)
        y = keras.utils.to_categorical([ids[seq_length]], vocab_size)
        model.fit(x, y, batch_size=1, epochs=1, verbose=0)
        x_pred = np.array(ids[1:], np.float32).reshape(1, seq_length, 1)
        guess = int(np.argmax(model.predict(x_pred, verbose=0)))
        pending = vocab[min(guess, len(vocab) - 1)]
    elapsed = time.perf_counter() - started
    return {"naive_msgs_per_s": messages / elapsed, "naive_hit_rate": hits / max(scored, 1)}


def throughput(
    config: LearnerConfig, messages: int, per_call: int, split: dict[str, float] | None = None
) -> float:
    """msgs/s through `learn_predict_many` in calls of `per_call`; into `split`, where the time
    went per message: compiled_us (the compiled program's calls, arguments and results
    included) and host_us (everything else: the host pass before and after)."""
    learner = Learner(config)
    warm = [(None, str(t)) for t in seed_stream(max(per_call, 128) * 2)]
    for start in range(0, len(warm), per_call):  # compile the bucket(s) used below
        learner.learn_predict_many(warm[start : start + per_call])
    stream = [(None, str(t)) for t in seed_stream(messages)]
    program, run, in_program = learner.program, learner.program.run, [0.0]

    def timed(batch: Any) -> Any:
        at = time.perf_counter()
        try:
            return run(batch)
        finally:
            in_program[0] += time.perf_counter() - at

    program.run = timed  # type: ignore[method-assign]
    started = time.perf_counter()
    for start in range(0, messages, per_call):
        learner.learn_predict_many(stream[start : start + per_call])
    elapsed = time.perf_counter() - started
    if split is not None:
        split["compiled_us"] = in_program[0] / messages * 1e6
        split["host_us"] = (elapsed - in_program[0]) / messages * 1e6
    return messages / elapsed


def plain_ppm(messages: int) -> float:
    """msgs/s of a plain PPM-C predictor in pure Python (`bench.ppm`, order 4, each guess made
    as the product publishes it) on the same seed stream: the cost of counting alone."""
    stream: list[tuple[str | None, str]] = [(None, str(t)) for t in seed_stream(messages)]
    started = time.perf_counter()
    ppm.run(stream, orders=(4,), at_publish=True)
    return messages / (time.perf_counter() - started)


def start_up(messages: int) -> dict[str, float | None]:
    """Whole processes, as a user starts one: `lstm-consumer evaluate` on `messages` seed
    tokens, from process start to its report (every prediction made), with an empty compile
    cache (cold) and again with the cache the first run filled (warm); resident memory after
    start-up (rss) and its peak; and, for the floor under both, `import tensorflow` alone."""
    out: dict[str, float | None] = {}
    with tempfile.TemporaryDirectory(prefix="lstm-stream-bench-start-") as tmp:
        tokens = Path(tmp) / "tokens.txt"
        tokens.write_text("".join(f"{t}\n" for t in seed_stream(messages)))
        command = [
            sys.executable,
            "-c",
            "import sys; from consumer.cli import main; sys.exit(main())",
            "evaluate",
            "--quiet",
            "--json",
            "--compile-cache-dir",
            str(Path(tmp) / "xla"),
            str(tokens),
        ]
        env = {k: v for k, v in os.environ.items() if k not in ("TF_XLA_FLAGS", "TF_CPP_MIN_LOG_LEVEL")}
        env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
        for run in ("cold", "warm"):
            started = time.perf_counter()
            result = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
            report = json.loads(result.stdout)
            out[f"{run}_start_s"] = time.perf_counter() - started
            out[f"{run}_rss_after_start_mb"] = report["rss_mb"]
            out[f"{run}_peak_rss_mb"] = report["max_rss_mb"]
            out[f"{run}_stderr_lines"] = len(result.stderr.splitlines())
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", "import tensorflow"],
            env={**env, "TF_USE_LEGACY_KERAS": "1"},
            check=True,
            capture_output=True,
        )
        out["tensorflow_import_s"] = time.perf_counter() - started
    return out


def learning(config: LearnerConfig, messages: int) -> dict[str, float | int | None]:
    """msgs_to_99 and the hit rate over the next 5,000, for the published predictions and the
    LSTM alone, from `consumer.evaluate` (the same figures as `lstm-consumer evaluate`)."""
    from consumer.evaluate import evaluate
    from consumer.settings import EvaluateSettings

    stream: list[tuple[str | None, str]] = [(None, str(t)) for t in seed_stream(messages)]
    results = evaluate(stream, config, EvaluateSettings(chunk=512, quiet=True)).results
    return {
        name: results[name]
        for name in (
            "msgs_to_99",
            "hit_rate_after_99",
            "lstm_msgs_to_99",
            "lstm_hit_rate_after_99",
            "baseline_hit_rate",
        )
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--naive-messages", type=int, default=150)
    parser.add_argument("--backlog-messages", type=int, default=8192)
    parser.add_argument("--single-messages", type=int, default=500)
    parser.add_argument("--relaxed-messages", type=int, default=40960)
    parser.add_argument("--learn-messages", type=int, default=5600)
    parser.add_argument("--start-messages", type=int, default=100, help="messages of the start-up runs")
    parser.add_argument(
        "--capacities",
        default="",
        help="also measure strict backlog msgs/s at these vocabulary capacities, e.g. 64,256,1024",
    )
    record.add_argument(parser)
    args = parser.parse_args()
    recorder = record.Recorder("learner", args.record)
    config = LearnerConfig()
    configure_threads(config.intra_op_threads, config.inter_op_threads)
    result: dict[str, object] = {}
    result.update(naive_loop(args.naive_messages))
    splits: dict[str, dict[str, float]] = {"strict": {}, "strict_single": {}, "relaxed": {}}
    result["strict_msgs_per_s"] = throughput(config, args.backlog_messages, 4096, splits["strict"])
    result["strict_single_msgs_per_s"] = throughput(config, args.single_messages, 1, splits["strict_single"])
    result["relaxed_msgs_per_s"] = throughput(
        replace(config, mode="relaxed"), args.relaxed_messages, 4096, splits["relaxed"]
    )
    for name, split in splits.items():
        for part, value in split.items():
            result[f"{name}_{part}_per_msg"] = value
    result["ppm_msgs_per_s"] = plain_ppm(args.backlog_messages)
    strict, naive = result["strict_msgs_per_s"], result["naive_msgs_per_s"]
    assert isinstance(strict, float)
    assert isinstance(naive, float)
    result["speedup_strict_vs_naive"] = strict / naive
    for name in ("strict_single", "relaxed"):
        rate = result[f"{name}_msgs_per_s"]
        assert isinstance(rate, float)
        result[f"speedup_{name}_vs_naive"] = rate / naive
    result.update(start_up(args.start_messages))
    # The targets' figure: resident memory after a start, one partition, cache filled.
    result["rss_after_start_mb"] = result["warm_rss_after_start_mb"]
    result.update(learning(config, args.learn_messages))
    if args.capacities:
        result["strict_msgs_per_s_by_capacity"] = {
            capacity: round(throughput(replace(config, capacity=int(capacity)), args.backlog_messages, 4096))
            for capacity in args.capacities.split(",")
        }
    result["config"] = asdict(config)
    result["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    rounded = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
    print(json.dumps(rounded))
    recorder.write(rounded)
    return 0


if __name__ == "__main__":
    sys.exit(main())
