"""bench/consumer.py at a small size against the test broker: it runs the service end to end and
prints every figure docs/benchmarks.md shows (the figures themselves come from `make bench-consumer`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration

KEYS = {
    "e2e_msgs_per_s", "learner_msgs_per_s", "e2e_to_learner_ratio", "latency_p50_ms", "latency_p99_ms",
    "guarantee", "partitions", "keys", "records", "workers", "cores", "load_average",
}  # fmt: skip


def test_the_consumer_benchmark_prints_its_figures(kafka_bootstrap: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "consumer.py"), "--bootstrap-servers", kafka_bootstrap),
            *("--partitions", "2", "--keys", "50", "--records", "1500", "--latency-seconds", "2"),
            *("--timeout-s", "240"),
        ],
        capture_output=True,
        text=True,
        timeout=500,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(report) >= KEYS
    assert (report["partitions"], report["keys"], report["records"]) == (2, 50, 1500)
    assert report["e2e_msgs_per_s"] > 0
    assert report["learner_msgs_per_s"] > 0
    assert report["e2e_to_learner_ratio"] == pytest.approx(
        report["e2e_msgs_per_s"] / report["learner_msgs_per_s"], rel=0.01
    )
    assert 0 < report["latency_p50_ms"] <= report["latency_p99_ms"]
    assert report["latency_records"] > 0
