"""bench/feedback.py at a small size against the test broker: anomalies are marked through
``POST /v1/streams/{key}/feedback`` and each mark is timed until the transaction that applied it
commits (the figures come from `make bench-feedback`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_feedback_benchmark_prints_its_figures(kafka_bootstrap: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "feedback.py"), "--bootstrap-servers", kafka_bootstrap),
            *("--seconds", "15", "--warm-s", "5", "--anomaly-rate", "0.03", "--timeout-s", "240"),
        ],
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["marks"] > 0
    assert 0 < report["post_p50_ms"] <= report["round_trip_p50_ms"]
    assert report["round_trip_p50_ms"] <= report["round_trip_p99_ms"] <= report["round_trip_max_ms"]
    assert report["round_trip_p99_commit_intervals"] == pytest.approx(
        report["round_trip_p99_ms"] / report["commit_interval_ms"], abs=0.01
    )
