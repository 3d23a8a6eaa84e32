"""`lstm-consumer evaluate`: parsing, the per-message tracker, and the command end to end.

A process that learns imports TensorFlow and compiles the model (10-20 s here), so one
subprocess checks the JSON, the plot and KEY<TAB>TOKEN input together; the error paths fail
before TensorFlow is imported and are quick.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumer.cli import build_parser
from consumer.core.config import LearnerConfig
from consumer.evaluate import Tracker, evaluate, parse_line, read_records
from consumer.settings import EvaluateSettings
from lstm_stream.settings import ConfigError

REPO = Path(__file__).resolve().parent.parent
SMALL = ["--window", "8", "--loss-steps", "4", "--units", "8"]
RESULT_KEYS = {
    "messages", "predictions", "hit_rate", "rolling_hit_rate_100", "rolling_hit_rate_1000", "log_loss",
    "baseline_hit_rate", "msgs_to_99", "hit_rate_after_99", "msgs_per_s", "oov", "vocabulary",
    "model_step", "mode", "config",
}  # fmt: skip


def consumer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "consumer", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
        env={**os.environ, **(env or {})},
    )


# -- input -------------------------------------------------------------------------------------
def test_lines_are_tokens_or_key_tab_token() -> None:
    assert parse_line(" a \n") == (None, "a")
    assert parse_line("k\t b\n") == ("k", "b")
    assert parse_line("\tb") == (None, "b")
    assert parse_line("k\ta\tb") == ("k", "a\tb")
    assert parse_line("   \n") is None
    assert parse_line("k\t \n") is None


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_records(str(tmp_path / "missing.txt"))
    (tmp_path / "t.txt").write_bytes(b"a\n\n\xff\nk\tb\n")
    assert read_records(str(tmp_path / "t.txt")) == [(None, "a"), (None, "\udcff"), ("k", "b")]


# -- the tracker -------------------------------------------------------------------------------
def prediction(hit: bool | None, baseline: str | None = "a", key: str | None = None) -> Any:
    from consumer.core.learner import Prediction

    return Prediction(key, "a", 0.5, 0, hit, baseline, 0.0)


def test_msgs_to_99_is_the_first_message_with_99_of_the_last_100() -> None:
    tracker = Tracker()
    hits = [None, False] + [True] * 98 + [False, True, True, False, True]
    tracker.update([prediction(h) for h in hits], ["a"] * len(hits), {"a"})
    # message 101 holds the 100 scored predictions 2..101 = False + 98 True + False: 98 hits;
    # message 102 drops the first False: 99 hits.
    assert tracker.msgs_to_99 == 102
    assert (tracker.after_scored, tracker.after_hits) == (3, 2)
    assert tracker.lstm.hits == 98  # messages 6..105: 95 + 3 hits


def test_tracker_never_reaching_99_reports_none() -> None:
    tracker = Tracker()
    hits = [None] + [True, False] * 100
    tracker.update([prediction(h) for h in hits], ["a"] * len(hits), {"a"})
    assert tracker.msgs_to_99 is None


def test_baseline_guess_of_none_hits_an_oov_token() -> None:
    tracker = Tracker(keep_curves=True)
    predictions = [prediction(None, baseline=None), prediction(False, baseline="a"), prediction(True)]
    tracker.update(predictions, ["x", "zz", "a"], known={"a", "x"})  # "zz" is OOV
    assert list(tracker.baseline.rates)[1:] == [1.0, 1.0]


def test_tracker_agrees_with_the_learner_scores() -> None:
    rnd = random.Random(0)
    pattern = "abcabd"
    records = [
        (key, rnd.choice("abcdefg") if rnd.random() < 0.2 else pattern[i % 6])
        for i in range(120)
        for key in ("k", None)
    ]
    config = LearnerConfig(window=4, units=4, loss_steps=2, capacity=4)
    report = evaluate(records, config, EvaluateSettings(chunk=8, quiet=True, plot="x.png"))
    tracker, results = report.tracker, report.results
    assert results["oov"] > 0  # capacity 4 of 7 tokens
    assert len(tracker.lstm.rates) == results["messages"] == 240
    assert tracker.lstm.rates[-1] == results["rolling_hit_rate_100"]
    assert tracker.baseline.rates[-1] == results["baseline_rolling_hit_rate_100"]
    assert tracker.baseline.total_hits / tracker.baseline.scored == results["baseline_hit_rate"]
    assert tracker.lstm.total_hits / tracker.lstm.scored == results["hit_rate"]


# -- the command -------------------------------------------------------------------------------
def test_help_lists_commands_and_model_options_with_env_variables() -> None:
    main = build_parser().format_help()
    assert "evaluate" in main
    sub = consumer("evaluate", "--help")
    assert sub.returncode == 0
    for text in ("--window", "LSTM_CONSUMER_WINDOW", "--mode", "--json", "--plot", "--chunk", "FILE"):
        assert text in sub.stdout


def test_help_does_not_import_tensorflow() -> None:
    code = (
        "import sys; from consumer.cli import build_parser; build_parser().format_help(); "
        "sys.exit(any(m.split('.')[0] in ('tensorflow', 'keras', 'matplotlib') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_evaluate_reports_one_json_object_and_plots(tmp_path: Path) -> None:
    lines = [f"{key}\t{'abc'[(i + (key == 'k2')) % 3]}" for i in range(150) for key in ("k1", "k2")]
    source = tmp_path / "tokens.tsv"
    source.write_text("\n".join([*lines[:100], "", "  ", *lines[100:]]) + "\n")
    plot = tmp_path / "rate.png"
    result = consumer("evaluate", str(source), "--json", "--plot", str(plot), *SMALL)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)  # exactly one JSON object: anything more fails to parse
    assert set(report) >= RESULT_KEYS
    assert report["messages"] == 300
    assert report["keys"] == 2
    assert report["predictions"] == 298
    assert report["vocabulary"] == 3
    assert report["oov"] == 0
    assert report["model_step"] == 300 - 2 * 8  # each key trains once it has 8 earlier tokens
    assert report["mode"] == "strict"
    assert report["config"]["window"] == 8
    for name in ("hit_rate", "rolling_hit_rate_100", "rolling_hit_rate_1000", "baseline_hit_rate"):
        assert 0.0 <= report[name] <= 1.0
    assert report["log_loss"] > 0
    assert report["msgs_per_s"] > 0
    if report["msgs_to_99"] is not None:
        assert 100 < report["msgs_to_99"] <= 300
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert plot.stat().st_size > 1000
    assert "lstm-consumer evaluate: 300 messages" in result.stderr


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        (["--window", "abc"], {}, "--window"),
        (["--mode", "fast"], {}, "--mode"),
        ([], {"LSTM_CONSUMER_WINDOW": "0"}, "--window"),
        ([], {"LSTM_CONSUMER_CHUNK": "-1"}, "--chunk"),
    ],
)
def test_bad_option_value_exits_2_naming_it(args: list[str], env: dict[str, str], named: str) -> None:
    result = consumer("evaluate", "tokens.txt", *args, env=env, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"lstm-consumer: error: {named}")


def test_missing_file_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "missing.txt"
    result = consumer("evaluate", str(missing), timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"lstm-consumer: error: cannot read {missing}: No such file or directory\n"
