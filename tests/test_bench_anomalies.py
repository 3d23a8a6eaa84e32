"""bench/anomalies.py at a small size: every way of injecting is run and scored, and the figures
docs/benchmarks.md shows are printed and agree with each other (the figures come from
`make bench-anomalies`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_anomaly_benchmark_prints_its_figures() -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "anomalies.py")),
            *("--seeds", "1", "--messages", "1300", "--segment", "100"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "oneDNN" not in result.stderr  # TensorFlow's start-up lines are dropped
    report = json.loads(result.stdout.strip().splitlines()[-1])
    cases = report["cases"]
    assert len(cases) == 2 * 2 * 3  # keys 1 and 6, inserted or replacing, 3 kinds of foreign token
    for figures in cases.values():
        assert figures["labelled_anomalies"] > 0
        assert 0.0 <= figures["anomaly_precision"] <= 1.0
        assert figures["anomaly_recall"] == 1.0  # a foreign token is never the top guess
    precisions = [figures["anomaly_precision"] for figures in cases.values()]
    assert report["worst"]["precision"] == min(precisions)
    assert report["worst"]["cases_precision_at_least_0.95"] == sum(p >= 0.95 for p in precisions)
    assert report["worst"]["cases"] == len(cases)
    timed = report["over_time"]  # chronological: the counted messages in segments of 100
    assert set(timed) == {"new_normal", "drifting_log"}
    for name, length in (("new_normal", 1300), ("drifting_log", 2600)):
        segments = timed[name]["segments"]
        assert [s["from"] for s in segments] == list(range(1000, length, 100))
        assert timed[name]["labelled_anomalies"] > 0
        flagged = sum(s["alarms_per_1000"] * 100 / 1000 for s in segments)
        assert round(flagged) == timed[name]["anomalies"]
    five = {name: c for name, c in cases.items() if "_five_" in name}
    assert five
    assert all(("feedback_anomaly_precision" in c) == ("_five_" in name) for name, c in cases.items())
    for c in five.values():  # marks on false alarms only silence them: no true alarm is lost
        assert c["feedback_anomalies"] <= c["anomalies"]
        assert c["feedback_anomaly_recall"] == c["anomaly_recall"]
        assert c["feedback_anomaly_precision"] >= c["anomaly_precision"]
    assert report["worst"]["five_with_feedback_precision"] == min(
        c["feedback_anomaly_precision"] for c in five.values()
    )
    marked = timed["new_normal"]["with_feedback_on_first"]
    assert set(marked) == {"1", "3"}
    for r in marked.values():
        assert r["anomalies"] <= timed["new_normal"]["anomalies"]
