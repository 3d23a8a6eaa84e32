"""bench/quality.py at a small size: the learner, the count model alone, the reference PPM-C and
the known optima are all printed for each stream, and agree with each other (the figures
docs/benchmarks.md shows come from `make bench-quality`)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO


@pytest.mark.slow
def test_the_quality_benchmark_prints_every_reference_beside_the_learner() -> None:
    only = "order_3,clickstream,lifecycles,words,text_gpl"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "bench" / "quality.py"),
            "--only",
            only,
            "--seeds",
            "1",
            "--scale",
            "0.1",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert sorted(report["streams"]) == sorted(only.split(","))
    for name, summary in report["streams"].items():
        (run,) = summary["runs"]
        for figure in (
            "hit_rate",
            "lstm_hit_rate",
            "counts_hit_rate",
            "ppm_hit_rate",
            "second_half_hit_rate",
        ):
            assert 0.0 <= run[figure] <= 1.0, (name, figure)
        for figure in ("log_loss", "lstm_log_loss", "counts_log_loss", "ppm_log_loss"):
            assert 0.0 < run[figure] < 10.0, (name, figure)
        assert 2 <= run["ppm_hit_order"] <= 12
        assert 2 <= run["ppm_log_loss_order"] <= 12
        assert summary["min_hit_rate_over_ppm"] == round(run["hit_rate"] - run["ppm_hit_rate"], 4)
        assert name in result.stderr  # the summary line
    text = report["streams"]["text_gpl"]
    assert 0.5 < text["runs"][0]["ppmd_order_6_log_loss"] < 4.0  # PPMd beside the learner on text
    assert text["max_log_loss_over_ppmd"] == round(
        text["runs"][0]["log_loss"] - text["runs"][0]["ppmd_order_6_log_loss"], 4
    )
    assert "PPMd-6" in result.stderr
    assert "ppmd_order_6_log_loss" not in report["streams"]["words"]["runs"][0]  # characters only
    for name in ("order_3", "clickstream"):
        run = report["streams"][name]["runs"][0]
        assert 0.1 < run["second_half_optimal_hit_rate"] < 1.0
        assert run["second_half_of_optimal"] == pytest.approx(
            run["second_half_hit_rate"] / run["second_half_optimal_hit_rate"], abs=1e-3
        )
    lifecycles = report["streams"]["lifecycles"]["runs"][0]
    assert lifecycles["keys"] > 50
    assert lifecycles["ppm_hit_rate"] > 0.8
    assert report["streams"]["words"]["runs"][0]["vocabulary"] > 200
