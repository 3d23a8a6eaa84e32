"""The learner core: per-message contract, chunking invariance, vocabulary, learning."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from dataclasses import replace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from consumer.core.config import LearnerConfig
from consumer.core.learner import Learner, Prediction

SMALL = LearnerConfig(
    window=5, units=4, embedding_dim=3, capacity=6, replay=2, replay_buffer=16, loss_steps=3, baseline_order=2
)
SEED_UNIT = ["4"] * 6 + ["8"] + ["4"] * 5 + ["8"] + ["4"] * 6 + ["8"] + ["4"] * 6 + ["28"]
PROPERTY = settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])

records = st.lists(
    st.tuples(st.sampled_from([None, "a", "b"]), st.sampled_from(list("xyzuvw"))), min_size=1, max_size=40
)


def run_in_chunks(
    config: LearnerConfig, data: list[tuple[str | None, str]], sizes: list[int]
) -> list[Prediction]:
    learner = Learner(config)
    out: list[Prediction] = []
    start, k = 0, 0
    while start < len(data):
        size = sizes[k % len(sizes)]
        out.extend(learner.learn_predict_many(data[start : start + size]))
        start, k = start + size, k + 1
    return out


@PROPERTY
@given(data=records, sizes=st.lists(st.integers(1, 9), min_size=1, max_size=5))
def test_strict_results_do_not_depend_on_chunking(
    data: list[tuple[str | None, str]], sizes: list[int]
) -> None:
    assert run_in_chunks(SMALL, data, [len(data)]) == run_in_chunks(SMALL, data, sizes)


def _predicted(out: list[Prediction]) -> list[tuple[object, ...]]:
    return [(p.key, p.predicted, p.probability, p.model_step, p.previous_hit) for p in out]


@PROPERTY
@given(data=records, where=st.integers(0, 39), mode=st.sampled_from(["strict", "relaxed"]))
def test_no_prediction_sees_its_own_target(data: list[tuple[str | None, str]], where: int, mode: str) -> None:
    """Changing message j's token changes nothing predicted before j (rule 4), in one call."""
    where = where % len(data)
    key, token = data[where]
    altered = [*data[:where], (key, "q" if token != "q" else "r"), *data[where + 1 :]]
    config = replace(SMALL, mode=mode)
    first = Learner(config).learn_predict_many(data)
    second = Learner(config).learn_predict_many(altered)
    # Everything predicted; not `loss`, the training loss, which in relaxed mode is the batch's.
    assert _predicted(first[:where]) == _predicted(second[:where])


@PROPERTY
@given(tokens=st.lists(st.sampled_from(list("abcdefgh")), min_size=1, max_size=60))
def test_vocabulary_capacity_and_oov(tokens: list[str]) -> None:
    learner = Learner(replace(SMALL, capacity=3))
    predictions = learner.learn_predict_many([(None, t) for t in tokens])
    first_seen = list(dict.fromkeys(tokens))
    kept = set(first_seen[:3])
    assert learner.vocab.tokens == first_seen[:3]
    assert learner.vocab.oov_count == sum(t not in kept for t in tokens)
    assert all(p.predicted is None or p.predicted in kept for p in predictions)


def test_pending_prediction_is_scored_per_key() -> None:
    learner = Learner(SMALL)
    out = learner.learn_predict_many([("a", "x"), ("b", "y"), ("a", "x"), ("b", "y"), (None, "z")])
    assert [p.previous_hit is None for p in out] == [True, True, False, False, True]
    assert learner.score.scored == 2
    hits = [p.previous_hit for p in out if p.previous_hit is not None]
    assert learner.score.hits == sum(hits)
    assert out[2].previous_hit == (out[0].predicted == "x")


NESTED_UNIT = ["1", "1", "2", "1", "1", "2", "1", "1", "3"]
LONG_UNIT = [str(t) for t in random.Random(5).choices(range(5), k=100)]  # period 100 > window 64


@pytest.mark.slow
@pytest.mark.parametrize(
    ("unit", "within"),
    [(SEED_UNIT, 500), (NESTED_UNIT, 1000), (LONG_UNIT, 1000)],
    ids=["seed", "nested", "period100"],
)
def test_default_settings_learn_deterministic_patterns(unit: list[str], within: int) -> None:
    """CI-sized: 99 of the last 100 within `within` messages, then no miss up to 1,500."""
    learner = Learner(LearnerConfig())
    stream = [(None, unit[i % len(unit)]) for i in range(1500)]
    hits: list[bool] = []
    for start in range(0, len(stream), 250):
        predictions = learner.learn_predict_many(stream[start : start + 250])
        hits.extend(p.previous_hit for p in predictions if p.previous_hit is not None)
    # One key: message n (1-based) scores prediction n-1, so it closes a window at hits[: n - 1].
    reached = next((n for n in range(101, len(hits) + 2) if sum(hits[n - 101 : n - 1]) >= 99), None)
    assert reached is not None
    assert reached <= within
    assert all(hits[reached - 1 :])
    assert learner.score.hit_rate > learner.baseline_score.hit_rate


def test_core_imports_neither_kafka_nor_prometheus() -> None:
    code = (
        "import sys, consumer.core.learner, consumer.core.snapshot; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('kafka', 'prometheus_client')]; "
        "sys.exit(1 if bad else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
