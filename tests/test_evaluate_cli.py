"""`lstm-consumer evaluate`: parsing, the per-message tracker, and the command end to end.

A process that learns imports TensorFlow and compiles the model (10-20 s here), so one
subprocess checks the JSON, the plot and KEY<TAB>TOKEN input together; the error paths fail
before TensorFlow is imported and are quick.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import subprocess
import sys
import tempfile
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
PER_PREDICTOR = (
    "hit_rate",
    "rolling_hit_rate_100",
    "rolling_hit_rate_1000",
    "log_loss",
    "bits_per_token",
    "msgs_to_99",
    "hit_rate_after_99",
)
RESULT_KEYS = {
    "messages", "predictions", "msgs_per_s", "vocabulary", "new_tokens", "recycled_tokens", "max_rss_mb",
    "rss_mb", "compile_cache_dir", "compiled_programs", "model_step", "mode", "config",
    "anomaly_top_g", "anomaly_from", "anomalies", "anomaly_rate",
    *PER_PREDICTOR, *(f"lstm_{k}" for k in PER_PREDICTOR), *(f"baseline_{k}" for k in PER_PREDICTOR),
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
def test_lines_are_tokens_or_key_tab_token_with_an_optional_label() -> None:
    assert parse_line(" a \n") == (None, "a", None)
    assert parse_line("k\t b\n") == ("k", "b", None)
    assert parse_line("\tb") == (None, "b", None)
    assert parse_line("k\ta\t1") == ("k", "a", True)
    assert parse_line("k\ta\tnormal\n") == ("k", "a", False)
    assert parse_line("   \n") is None
    assert parse_line("k\t \n") is None
    with pytest.raises(ValueError, match="label"):
        parse_line("k\ta\tb")


def test_anomalies_over_time_segments_and_time_to_silence(tmp_path: Path) -> None:
    """Segments partition the counted messages; a new normal event recurring from mid-stream
    alarms at first, then falls silent, and its time to silence is reported."""
    lines, pattern = [], "abcabd"
    for i in range(1800):
        if i >= 600 and i % 10 == 0:
            lines.append("s\tdeploy\t0")  # new, and normal from then on
        elif i in (905, 1305, 1705):
            lines.append(f"s\tzz{i}\t1")
        else:
            lines.append(f"s\t{pattern[i % 6]}\t0")
    source = tmp_path / "drift.txt"
    source.write_text("\n".join(lines) + "\n")
    result = consumer(
        "evaluate", str(source), "--json", *SMALL, "--anomaly-from", "300", "--anomaly-segment", "500"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    segments = report["anomaly_segments"]
    assert [s["from"] for s in segments] == [300, 800, 1300]
    assert [s["messages"] for s in segments] == [500, 500, 500]
    assert sum(s["alarms"] for s in segments) == report["anomalies"]
    assert sum(s["labelled_anomalies"] for s in segments) == report["labelled_anomalies"] == 3
    for s in segments:
        assert s["alarms_per_1000"] == 1000 * s["alarms"] / s["messages"]
    new = {t["token"]: t for t in report["new_normal"]["tokens"]}
    assert set(new) == {"deploy"}  # the foreign tokens are labelled anomalies: not normal
    deploy = new["deploy"]
    assert deploy["first"] == 600
    assert deploy["alarms"] >= 1  # a token never seen is flagged
    assert deploy["messages_to_silence"] == deploy["last_alarm"] - 600
    assert deploy["alarms"] < 120  # of its 120 messages: it is being learned
    # Learned over time: the last segment alarms less than one before it did.
    assert segments[-1]["alarms"] < max(s["alarms"] for s in segments[:-1])
    assert report["new_normal"]["max_messages_to_silence"] == deploy["messages_to_silence"]
    assert "new normal tokens" in result.stderr


def test_labels_give_anomaly_precision_and_recall(tmp_path: Path) -> None:
    """A labelled file: the anomaly figures against the labels, in the JSON and the summary."""
    lines = [f"s\t{'abcabc'[i % 6]}\t0" for i in range(600)]
    for at in (400, 450, 500, 550):  # foreign tokens, labelled
        lines[at] = f"s\tzz{at}\t1"
    lines[300] = "s\ta\tmaybe"
    source = tmp_path / "labelled.txt"
    source.write_text("\n".join(lines) + "\n")
    bad = consumer("evaluate", str(source), "--json", "--quiet", *SMALL)
    assert bad.returncode == 2
    assert "line 301" in bad.stderr
    lines[300] = "s\ta"  # an unlabelled line of a labelled file is normal
    source.write_text("\n".join(lines) + "\n")
    result = consumer(
        "evaluate", str(source), "--json", *SMALL, "--anomaly-top-g", "1", "--anomaly-from", "300"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["labelled_anomalies"] == 4
    assert report["anomaly_recall"] == 1.0  # a token never seen is never in the top 1
    assert report["anomaly_precision"] == report["anomaly_true_positives"] / report["anomalies"]
    assert report["anomaly_top_g"] == 1
    assert report["anomaly_from"] == 300
    # each foreign token took a token's place: read out of the history as imputed
    assert (report["outliers_kept"], report["outliers_removed"], report["outliers_imputed"]) == (0, 0, 4)
    assert "anomalies (not in the previous top 1)" in result.stderr
    assert "precision" in result.stderr


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        read_records(str(tmp_path / "missing.txt"))
    (tmp_path / "t.txt").write_bytes(b"a\n\n\xff\nk\tb\n")
    assert read_records(str(tmp_path / "t.txt")) == [(None, "a"), (None, "\udcff"), ("k", "b")]


# -- the tracker -------------------------------------------------------------------------------
def prediction(hit: bool | None, lstm_hit: bool | None = None) -> Any:
    from consumer.core.prediction import Prediction

    lstm = hit if lstm_hit is None else lstm_hit
    return Prediction(None, "a", 0.5, 0, hit, "a", 0.0, "a", 0.5, lstm, hit)


def test_msgs_to_99_is_the_first_message_with_99_of_the_last_100() -> None:
    tracker = Tracker()
    hits = [None, False] + [True] * 98 + [False, True, True, False, True]
    tracker.update([prediction(h) for h in hits])
    # message 101 holds the 100 scored predictions 2..101 = False + 98 True + False: 98 hits;
    # message 102 drops the first False: 99 hits.
    curve = tracker.curves["published"]
    assert curve.msgs_to_99 == 102
    assert (curve.after_scored, curve.after_hits) == (3, 2)
    assert curve.window.sum() == 98  # messages 6..105: 95 + 3 hits


def test_each_predictor_has_its_own_curve() -> None:
    tracker = Tracker()
    hits = [None] + [True, False] * 100
    tracker.update([prediction(h, lstm_hit=None if h is None else True) for h in hits])
    assert tracker.curves["published"].msgs_to_99 is None
    assert tracker.curves["lstm"].msgs_to_99 == 101


def test_tracker_agrees_with_the_learner_scores() -> None:
    rnd = random.Random(0)
    pattern = "abcabd"
    records = [
        (key, rnd.choice("abcdefg") if rnd.random() < 0.2 else pattern[i % 6])
        for i in range(120)
        for key in ("k", None)
    ]
    config = LearnerConfig(window=4, units=4, loss_steps=2, capacity=4)
    report = evaluate(records, config, EvaluateSettings(chunk=8, quiet=True), keep_curves=True)
    tracker, results = report.tracker, report.results
    assert results["recycled_tokens"] > 0  # capacity 4 of 7 tokens
    assert results["new_tokens"] == results["recycled_tokens"] + results["vocabulary"]
    for name, prefix in (("published", ""), ("lstm", "lstm_"), ("baseline", "baseline_")):
        curve = tracker.curves[name]
        assert len(curve.rates) == results["messages"] == 240
        assert curve.rates[-1] == results[f"{prefix}rolling_hit_rate_100"]


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
    assert report["vocabulary"] == report["new_tokens"] == 3
    assert report["recycled_tokens"] == 0
    assert report["model_step"] == 300  # every message trains, each key's first one too
    assert report["mode"] == "strict"
    assert report["config"]["window"] == 8
    for prefix in ("", "lstm_", "baseline_"):
        for name in ("hit_rate", "rolling_hit_rate_100", "rolling_hit_rate_1000"):
            assert 0.0 <= report[prefix + name] <= 1.0
        assert report[prefix + "log_loss"] > 0
        assert report[prefix + "bits_per_token"] == pytest.approx(report[prefix + "log_loss"] / math.log(2))
    assert report["msgs_per_s"] > 0
    if report["msgs_to_99"] is not None:
        assert 100 < report["msgs_to_99"] <= 300
    assert plot.read_bytes().startswith(b"\x89PNG")
    assert plot.stat().st_size > 1000
    assert "lstm-consumer evaluate: 300 messages" in result.stderr


def test_evaluate_saves_the_learner_it_trained_for_python_to_load(tmp_path: Path) -> None:
    """`evaluate --save`: a learner trained offline, loaded in Python (docs/api.md) with the
    model settings the file records, holding what the replay taught it."""
    from consumer.core.snapshot import SnapshotError, load

    source = tmp_path / "tokens.tsv"
    source.write_text("".join(f"k\t{'abc'[i % 3]}\n" for i in range(300)))
    saved = tmp_path / "learner.lstm"
    result = consumer("evaluate", str(source), "--quiet", "--save", str(saved), *SMALL)
    assert result.returncode == 0, result.stderr
    learner = load(saved)
    assert (learner.config.window, learner.config.units, learner.messages) == (8, 8, 300)
    assert learner.predict("k", k=1)[0][0] == "a"  # "c" came last
    with pytest.raises(SnapshotError, match="--units is 8 in the snapshot, 16 here"):
        load(saved, dataclasses.replace(learner.config, units=16))
    missing = consumer("evaluate", str(source), "--save", str(tmp_path / "nowhere" / "x.lstm"), *SMALL)
    assert missing.returncode == 2
    assert "--save: no directory" in missing.stderr


def test_processes_share_the_compile_cache_and_the_next_start_compiles_nothing(tmp_path: Path) -> None:
    """Two processes start at once on an empty cache directory, as replicas on one volume do:
    both work, the directory ends up with whole entries only, and a third process loads its
    program from there instead of compiling. TensorFlow's start-up lines stay silent."""
    source = tmp_path / "tokens.txt"
    source.write_text("".join(f"{'abcab'[i % 5]}\n" for i in range(120)))
    cache = tmp_path / "xla"
    command = [sys.executable, "-m", "consumer", "evaluate", str(source), "--json", "--quiet", *SMALL]
    command += ["--compile-cache-dir", str(cache)]
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_XLA_FLAGS")}
    pair = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, env=env
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in pair]
    reports = []
    for process, (stdout, stderr) in zip(pair, outputs, strict=True):
        assert process.returncode == 0, stderr
        assert stderr == ""  # no TensorFlow C++ lines, no warnings
        reports.append(json.loads(stdout))
    assert all(report["compiled_programs"] >= 1 for report in reports)
    entries = sorted(p.name for p in cache.iterdir())
    assert entries
    assert all(name.endswith(".pb") and not name.startswith(".") for name in entries)
    third = subprocess.run(command, capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert third.returncode == 0, third.stderr
    report = json.loads(third.stdout)
    assert report["compiled_programs"] == 0
    assert report["compile_cache_dir"] == str(cache)
    assert sorted(p.name for p in cache.iterdir()) == entries
    for key in ("hit_rate", "lstm_hit_rate", "log_loss", "model_step"):
        assert report[key] == reports[0][key]  # a loaded program computes what a compiled one does
    for process in pair:  # each process's private copy went with it
        assert not list(Path(tempfile.gettempdir()).glob(f"lstm-stream-xla-{process.pid}-*"))


def test_no_compile_cache_when_the_option_is_empty(tmp_path: Path) -> None:
    source = tmp_path / "tokens.txt"
    source.write_text("a\nb\n" * 20)
    result = consumer("evaluate", str(source), "--json", "--quiet", "--compile-cache-dir", "none", *SMALL)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["compile_cache_dir"] is None
    assert report["compiled_programs"] is None


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


def test_peak_memory_is_in_megabytes_where_proc_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    """macOS has no /proc and gives ru_maxrss in bytes; Linux in KiB."""
    import resource

    from consumer import token_file

    class NoProc:
        def __init__(self, *args: object) -> None:
            pass

        def read_text(self) -> str:
            raise OSError("no /proc here")

    usage = resource.getrusage(resource.RUSAGE_SELF)
    monkeypatch.setattr(token_file, "Path", NoProc)
    monkeypatch.setattr(sys, "platform", "linux")
    linux = token_file.peak_resident_mb()
    monkeypatch.setattr(sys, "platform", "darwin")
    darwin = token_file.peak_resident_mb()
    assert linux >= usage.ru_maxrss / 1024
    assert darwin * 1024 == pytest.approx(linux, rel=0.01)


def test_plot_without_matplotlib_exits_2_before_learning(tmp_path: Path) -> None:
    """The service's image has no matplotlib (it is the [plot] extra): `--plot` says what to install
    instead of failing after the learning."""
    source = tmp_path / "tokens.txt"
    source.write_text("4\n8\n" * 50)
    hide = "import sys; sys.modules['matplotlib'] = None; from consumer.cli import main; sys.exit(main())"
    result = subprocess.run(
        [sys.executable, "-c", hide, "evaluate", str(source), "--plot", str(tmp_path / "p.png"), *SMALL],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("lstm-consumer: error: --plot: needs matplotlib"), result.stderr
    assert "lstm-stream[plot]" in result.stderr
    assert not (tmp_path / "p.png").exists()
