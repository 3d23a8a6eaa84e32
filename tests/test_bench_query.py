"""bench/query.py at a small size against the test broker: the consumer learns with and without
queries and the figures docs/benchmarks.md shows are printed (the figures come from `make bench-query`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.integration


def test_the_query_benchmark_prints_its_figures(kafka_bootstrap: str) -> None:
    result = subprocess.run(
        [
            *(sys.executable, str(REPO / "bench" / "query.py"), "--bootstrap-servers", kafka_bootstrap),
            *("--partitions", "1", "--keys", "20", "--records", "1500", "--rounds", "1", "--rate", "50"),
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
    assert len(report["e2e_msgs_per_s_without_queries"]) == len(report["e2e_msgs_per_s_with_queries"]) == 1
    assert report["queries"] > 0
    assert set(report["statuses"]) <= {"200", "404"}  # answers, or keys not committed yet
    assert 0 < report["query_p50_ms"] <= report["query_p99_ms"] <= report["query_max_ms"]
    assert report["throughput_drop"] == pytest.approx(
        1 - report["median_with_queries"] / report["median_without_queries"], abs=1e-3
    )
