"""How well the learner predicts each kind of stream, with default settings, at full size.

    .venv/bin/python bench/quality.py [--only text,logs] [--seeds 3] [--json-only]

For every kind of stream in `bench/streams.py` (sessions, natural text, log lines, all-distinct
ids, a vocabulary that never stops growing, the seed alone, over 50 keys, with noise, switching
pattern, prose as words, interleaved lifecycles, a random order-3 source, a Markov clickstream,
and this machine's own installer log when it has one), and for several generator seeds of each,
`evaluate` runs the stream from scratch and the figures of its JSON are kept: the hit rate and
log-loss of the published prediction, of the LSTM alone (lstm_*) and of the order-4 back-off
baseline (baseline_*), msgs_to_99, recycled tokens and peak RSS. Seeds other than the tests'
are used on purpose: the figures hold for the kind of stream, not for one sample.

Beside them, for every stream:
- the count model without the LSTM (counts_*: the longest Witten-Bell blend the mixer reads;
  counts_order_N_*: each of its rows), so the LSTM's part of the published figure is measured
  (ablation: counts alone, LSTM alone, mixture);
- the reference: a plain PPM-C with exclusions, orders 2 to 12, the best order picked in
  hindsight per figure (ppm_*: `bench/ppm.py`, code of its own), scored the classic way (a
  key's guess made when its next message comes) and under the product's contract
  (ppm_at_publish_*: the guess made when the key's previous message was learned, as published;
  the same figures for a single key);
- for sources whose best possible hit rate is known (`streams.Known`), that optimum and the
  published hit rate over the stream's second half as a fraction of it;
- for text as characters (one key, every token a character), PPMd order 6, a strong compressor
  (`pyppmd`, a benchmark dependency only): its compressed size as nats per character
  (ppmd_order_6_log_loss), the figure compressors are compared by.

Prints one JSON object: {"streams": {name: {figure: value}}, "machine": {...}}; a summary table
goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from bench import ppm, record, streams
from consumer.core import compile_cache
from consumer.core.batch import Batch
from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner
from consumer.core.vocab import FIRST_ID, NEW_ID
from consumer.evaluate import evaluate
from consumer.settings import EvaluateSettings

Records = list[tuple[str | None, str]]
GFDL = Path("/usr/share/common-licenses/GFDL-1.3")
KEPT = (
    *("hit_rate", "lstm_hit_rate", "baseline_hit_rate", "log_loss", "lstm_log_loss", "baseline_log_loss"),
    *("msgs_to_99", "lstm_msgs_to_99", "hit_rate_after_99", "messages", "keys", "vocabulary"),
    *("new_tokens", "recycled_tokens", "baseline_contexts", "max_rss_mb", "msgs_per_s"),
)


def kinds(
    seed: int, scale: float = 1.0
) -> dict[str, tuple[Callable[[], Records | streams.Known], int | None]]:
    """name -> (the stream for this generator seed, the message of a pattern switch or None);
    `scale`: a fraction of each stream's full size (a quick run; the installer log is whole)."""

    def size(n: int) -> int:
        return max(300, int(n * scale))

    text_offset = [0, 20_000, 10_000][seed % 3]
    return {
        "sessions": (lambda: streams.sessions(size(12_000), scripts=3, live=20, seed=10 + seed), None),
        "sessions_branching": (
            lambda: streams.sessions(size(12_000), scripts=4, live=30, branch=0.05, seed=20 + seed),
            None,
        ),
        "text_gpl": (lambda: streams.text(size(20_000), offset=text_offset), None),
        "text_gfdl": (lambda: streams.text(size(20_000), path=GFDL, offset=text_offset // 2), None),
        "logs": (lambda: streams.log_lines(size(20_000), seed=30 + seed), None),
        "distinct": (lambda: streams.distinct(size(20_000)), None),
        "drifting_vocabulary": (lambda: streams.drifting_vocabulary(size(20_000), seed=40 + seed), None),
        "seed": (lambda: streams.seed(size(6_000)), None),
        "seed_50_keys": (lambda: streams.seed_keys(size(20_000), keys=50, seed=50 + seed), None),
        "seed_noise_5": (lambda: streams.seed_noise(size(20_000), noise=0.05, seed=60 + seed), None),
        "switch": (lambda: streams.switch(size(9_000), at=size(6_000)), size(6_000)),
        "words": (lambda: streams.words(size(10_000), offset=[0, 7_000, 14_000][seed % 3]), None),
        "lifecycles": (lambda: streams.lifecycles(size(10_000), seed=70 + seed), None),
        "order_3": (lambda: streams.order_k(size(30_000), k=3, symbols=8, seed=80 + seed), None),
        "clickstream": (lambda: streams.clickstream(size(13_600), seed=90 + seed), None),
        **(
            {"dpkg_log": (lambda: streams.dpkg_log(), None)}
            if streams.DPKG_LOG.is_file() and len(streams.dpkg_log()) >= 1_000
            else {}
        ),
    }


class CountRowScores:
    """Wraps a learner's compiled program to score each count row the mixer reads on its own:
    the count model without the LSTM (counts_order_N: the Witten-Bell blend up to order N; the
    longest is `counts_*`). Each row is scored on its view just before each message, the one
    the mixer learns from; a key's first message is not scored, as for the published figures."""

    def __init__(self, learner: Learner, keys: list[str | None]) -> None:
        self.orders = [(0, *learner.config.count_orders)[r] for r in learner.config.mixed_rows]
        self.window = learner.config.window
        self.first = np.zeros(len(keys), bool)
        seen: set[str | None] = set()
        for i, key in enumerate(keys):
            self.first[i] = key not in seen
            seen.add(key)
        self.guesses: list[np.ndarray] = []  # (n, rows): each row's most likely token
        self.targets: list[np.ndarray] = []  # (n,): the message's id, NEW_ID for a new token
        self.chances: list[np.ndarray] = []  # (n, rows): each row's probability of the target
        run = learner.program.run

        def recording(batch: Batch[np.ndarray, int]) -> Any:
            n = batch.messages
            before = batch.counts[:n, 0]  # (n, rows, width)
            ids = batch.inputs[:n, self.window]
            target = np.where(batch.reset[:n] >= 0, NEW_ID, ids)
            self.targets.append(target)
            self.guesses.append(before[:, :, FIRST_ID:].argmax(axis=-1) + FIRST_ID)
            self.chances.append(np.take_along_axis(before, target[:, None, None], axis=-1)[..., 0])
            return run(batch)

        learner.program.run = recording  # type: ignore[method-assign]

    def scores(self) -> dict[str, float]:
        target, guesses, chances = (np.concatenate(x) for x in (self.targets, self.guesses, self.chances))
        scored = ~self.first[: len(target)]
        hits = guesses[scored] == target[scored, None]
        losses = -np.log(np.maximum(chances[scored], 1e-12))
        out: dict[str, float] = {}
        for j, order in enumerate(self.orders):
            out[f"counts_order_{order}_hit_rate"] = round(float(hits[:, j].mean()), 4)
            out[f"counts_order_{order}_log_loss"] = round(float(losses[:, j].mean()), 4)
        out["counts_hit_rate"] = out[f"counts_order_{self.orders[-1]}_hit_rate"]
        out["counts_log_loss"] = out[f"counts_order_{self.orders[-1]}_log_loss"]
        return out


class Hits:
    """Each message's published hit (None: not scored), from the learner's predictions."""

    def __init__(self, learner: Learner) -> None:
        self.hits: list[bool | None] = []
        learn = learner.learn_predict_many

        def recording(records: Any) -> Any:
            predictions = learn(records)
            self.hits += [p.previous_hit for p in predictions]
            return predictions

        learner.learn_predict_many = recording  # type: ignore[method-assign]

    def rate(self, start: int) -> float:
        scored = [h for h in self.hits[start:] if h is not None]
        return sum(scored) / len(scored) if scored else 0.0


def run_one(stream: Records | streams.Known, switch: int | None, chunk: int) -> dict[str, Any]:
    known = stream if isinstance(stream, streams.Known) else None
    records = known.records if known else stream
    assert isinstance(records, list)
    began = time.perf_counter()
    config = LearnerConfig()
    learner = Learner(config, min_batch=chunk)
    counts = CountRowScores(learner, [key for key, _ in records])
    hits = Hits(learner)
    settings = EvaluateSettings(chunk=chunk, quiet=True)
    report = evaluate(records, config, settings, keep_curves=switch is not None, learner=learner)
    out = {k: report.results.get(k) for k in KEPT}
    out["seconds"] = round(time.perf_counter() - began, 1)
    out.update(counts.scores())
    reference = time.perf_counter()
    classic = ppm.best(ppm.run(records))
    out.update(classic)
    # Under the product's contract (a key's guess made at its previous message): the same as
    # the classic way for one key, computed for interleaved keys only.
    single = len({key for key, _ in records}) == 1
    published = classic if single else ppm.best(ppm.run(records, at_publish=True))
    out.update({k.replace("ppm_", "ppm_at_publish_", 1): v for k, v in published.items()})
    out["ppm_seconds"] = round(time.perf_counter() - reference, 1)
    if len({key for key, _ in records}) == 1 and all(len(token) == 1 for _, token in records):
        out["ppmd_order_6_log_loss"] = ppmd_log_loss(records)
    half = len(records) // 2
    out["second_half_hit_rate"] = second_half = hits.rate(half)
    if known is not None:
        optimal = known.optimal_hit_rate(half)
        out["optimal_hit_rate"] = known.optimal_hit_rate()
        out["second_half_optimal_hit_rate"] = optimal
        out["second_half_of_optimal"] = second_half / optimal
    if switch is not None:
        rates = report.tracker.curves["published"].rates
        out["relearned_after_switch"] = next(
            (i - switch for i in range(switch + 100, len(rates)) if rates[i] >= 0.99), None
        )
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}


def ppmd_log_loss(records: Records, order: int = 6) -> float:
    """PPMd (variant I, 16 MiB) of the characters' text: compressed bits as nats per character.
    The whole text is coded, the first character too, and the end mark: a few bytes more than
    the learner's figure, which skips a key's first message."""
    import pyppmd  # a benchmark dependency (the dev extra), never the service's

    text = "".join(token for _, token in records).encode("utf-8")
    compressed = pyppmd.compress(text, max_order=order, mem_size=16 << 20, variant="I")
    return len(compressed) * 8 * math.log(2) / len(records)


def summary(name: str, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per figure: the mean over seeds, and the worst for the learner's own rates."""
    out: dict[str, Any] = {"runs": runs}
    for figure in runs[0]:
        values = [r[figure] for r in runs]
        if all(isinstance(v, int | float) for v in values):
            out[f"mean_{figure}"] = round(float(np.mean(values)), 4)
    for figure in ("hit_rate", "lstm_hit_rate"):
        out[f"min_{figure}"] = min(r[figure] for r in runs)
    out["min_lift_over_baseline"] = round(min(r["hit_rate"] - r["baseline_hit_rate"] for r in runs), 4)
    # Against the reference PPM-C: >= 0 is at least as good, per seed (the worst one kept).
    out["min_hit_rate_over_ppm"] = round(min(r["hit_rate"] - r["ppm_hit_rate"] for r in runs), 4)
    out["max_log_loss_over_ppm"] = round(max(r["log_loss"] - r["ppm_log_loss"] for r in runs), 4)
    out["min_hit_rate_over_ppm_at_publish"] = round(
        min(r["hit_rate"] - r["ppm_at_publish_hit_rate"] for r in runs), 4
    )
    out["max_log_loss_over_ppm_at_publish"] = round(
        max(r["log_loss"] - r["ppm_at_publish_log_loss"] for r in runs), 4
    )
    if "second_half_of_optimal" in runs[0]:
        out["min_second_half_of_optimal"] = min(r["second_half_of_optimal"] for r in runs)
    if "ppmd_order_6_log_loss" in runs[0]:
        worst = max(r["log_loss"] - r["ppmd_order_6_log_loss"] for r in runs)
        out["max_log_loss_over_ppmd"] = round(worst, 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", help="comma-separated stream names (default: all)")
    parser.add_argument("--seeds", type=int, default=3, help="generator seeds per stream (default 3)")
    parser.add_argument("--chunk", type=int, default=512, help="records per learner call (default 512)")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="a fraction of each stream's full size (default 1: full)"
    )
    parser.add_argument("--json-only", action="store_true", help="no summary table on stderr")
    record.add_argument(parser)
    args = parser.parse_args(argv)
    recorder = record.Recorder("quality", args.record, argv)
    # Every run builds the same programs: compile each once, in the user's cache as the CLI does.
    compile_cache.enable(os.environ.get("LSTM_CONSUMER_COMPILE_CACHE_DIR", compile_cache.DEFAULT_DIR))
    names = list(kinds(0))
    if args.only:
        unknown = sorted(set(args.only.split(",")) - set(names))
        if unknown:
            parser.error(f"--only: unknown stream(s) {', '.join(unknown)}; known: {', '.join(names)}")
        names = [n for n in names if n in args.only.split(",")]
    results: dict[str, Any] = {}
    for name in names:
        runs = []
        # Streams that have no generator seed are run once.
        seeds = 1 if name in ("seed", "distinct", "switch", "dpkg_log") else args.seeds
        for seed in range(seeds):
            make, switch = kinds(seed, args.scale)[name]
            runs.append(run_one(make(), switch, args.chunk))
        results[name] = summary(name, runs)
        if not args.json_only:
            s = results[name]
            ppmd = s.get("mean_ppmd_order_6_log_loss")
            print(
                f"{name:22s} published {s['mean_hit_rate']:.4f} (min {s['min_hit_rate']:.4f})  "
                f"LSTM {s['mean_lstm_hit_rate']:.4f}  baseline {s['mean_baseline_hit_rate']:.4f}  "
                f"counts {s['mean_counts_hit_rate']:.4f}  PPM-C {s['mean_ppm_hit_rate']:.4f} "
                f"(at publish {s['mean_ppm_at_publish_hit_rate']:.4f})  "
                f"log-loss {s['mean_log_loss']:.3f} / {s['mean_lstm_log_loss']:.3f} / "
                f"{s['mean_baseline_log_loss']:.3f} / {s['mean_counts_log_loss']:.3f} / "
                f"{s['mean_ppm_log_loss']:.3f}"
                + (
                    f"  second half {s['mean_second_half_of_optimal']:.3f} of optimal"
                    if "mean_second_half_of_optimal" in s
                    else ""
                )
                + (f"  PPMd-6 {ppmd:.3f}" if ppmd is not None else ""),
                file=sys.stderr,
                flush=True,
            )
    machine = {"cpus": os.cpu_count(), "python": platform.python_version(), "load_average": os.getloadavg()}
    result = {"streams": results, "config": LearnerConfig().__dict__, "machine": machine}
    print(json.dumps(result))
    recorder.write(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
