"""The benchmark's reference PPM-C (`bench/ppm.py`) and the streams whose optimum is known.

Pure Python, no TensorFlow: the reference must be right for the quality figures to mean
anything, and the generators' Bayes-optimal hit rates must be what a predictor that knows the
source gets.
"""

from __future__ import annotations

import math
import random
from collections import defaultdict

import pytest

from bench import ppm, streams


def _tables(records: list[str], top: int) -> list[dict[tuple[str, ...], ppm._Context]]:
    tables: list[dict[tuple[str, ...], ppm._Context]] = [defaultdict(ppm._Context) for _ in range(top + 1)]
    history = [ppm.BOS]
    for token in records:
        for order in range(min(top, len(history)) + 1):
            tables[order][tuple(history[len(history) - order :]) if order else ()].add(token)
        history.append(token)
    return tables


@pytest.mark.parametrize("seed", range(5))
def test_the_distribution_sums_to_one_with_the_new_class(seed: int) -> None:
    rnd = random.Random(seed)
    tokens = [rnd.choice("abcdef"[: rnd.randint(2, 6)]) for _ in range(rnd.randint(5, 200))]
    tables = _tables(tokens, 4)
    history = [ppm.BOS, *tokens][-4:]
    for top in range(5):
        total = sum(ppm._predict(tables, history, top, t)[1] for t in sorted(set(tokens)))
        new = ppm._predict(tables, history, top, "never-seen")[1]
        assert new > 0
        assert total + new == pytest.approx(1.0, abs=1e-12)


def test_exclusions_as_written_by_hand() -> None:
    # After "a b": order 2 has seen (a b) -> c; order 1 (b) -> c, d; order 0 a:2 b:3 c:1 x:1 d:1.
    tables = _tables(["a", "b", "c", "x", "b", "d", "a", "b"], 2)
    guess, p_c = ppm._predict(tables, ["a", "b"], 2, "c")
    # order 2: n=1, d=1: c gets 1/2, escape 1/2. order 1 ("b" -> c, d; c excluded): d gets
    # 1/2 * 1/2, escape 1/4. order 0 (a:2, b:3, x:1 left): a 1/4 * 2/9, ...
    assert guess == "c"
    assert p_c == pytest.approx(0.5)
    assert ppm._predict(tables, ["a", "b"], 2, "d")[1] == pytest.approx(0.25)
    assert ppm._predict(tables, ["a", "b"], 2, "a")[1] == pytest.approx(0.25 * 2 / 9)
    assert ppm._predict(tables, ["a", "b"], 2, "new")[1] == pytest.approx(0.25 * 3 / 9)


def test_a_keys_first_message_is_not_scored_and_keys_have_their_own_history() -> None:
    records = [(k, t) for _ in range(50) for k, t in (("x", "1"), ("y", "2"))]
    figures = ppm.run(records, orders=(2,))[2]
    assert figures.scored == len(records) - 2
    assert figures.hit_rate > 0.95  # each key repeats its own token, though they alternate


@pytest.mark.parametrize("seed", range(3))
def test_an_order_k_sources_optimum_is_what_counting_approaches(seed: int) -> None:
    source = streams.order_k(12_000, k=2, symbols=4, alpha=0.5, seed=seed)
    assert len(source.records) == len(source.optimal) == 12_000
    assert source.optimal[0] is None
    assert all(p is not None for p in source.optimal[1:])
    optimum = source.optimal_hit_rate(6_000)
    got = ppm.run(source.records, orders=(2,))[2].second_half_hit_rate()
    assert 1 / 4 < optimum < 1
    # 16 contexts, learned long before the second half: counting gets close, never above
    # the optimum beyond the noise of 6,000 draws (3 standard deviations: about 0.02).
    assert optimum - 0.03 <= got <= optimum + 0.02


def test_a_nearly_deterministic_source_has_an_optimum_near_one() -> None:
    source = streams.order_k(3_000, k=3, symbols=8, alpha=0.001, seed=1)
    assert source.optimal_hit_rate() > 0.95


@pytest.mark.parametrize("seed", range(3))
def test_a_clickstreams_optimum_is_what_counting_approaches(seed: int) -> None:
    source = streams.clickstream(30_000, pages=10, seed=seed)
    keys = [key for key, _ in source.records]
    first = {key: i for i, key in reversed(list(enumerate(keys)))}  # each key's first message
    starts = set(first.values())
    assert {i for i, p in enumerate(source.optimal) if p is None} == starts  # a session's first page
    lengths = [keys.count(k) for k in set(keys[:2_000])]
    assert max(lengths) <= 20
    assert sorted(lengths)[len(lengths) // 2] <= 3
    optimum = source.optimal_hit_rate(15_000)
    got = ppm.run(source.records, orders=(2,))[2].second_half_hit_rate()
    assert optimum - 0.03 <= got <= optimum + 0.02


def test_lifecycles_interleave_each_keys_events_in_order() -> None:
    records = streams.lifecycles(5_000, seed=3)
    by_key: dict[str | None, list[str]] = defaultdict(list)
    for key, token in records:
        by_key[key].append(token)
    assert len(by_key) > 100
    runs = [i for i in range(1, len(records)) if records[i][0] != records[i - 1][0]]
    assert len(runs) > len(records) / 8  # interleaved, not one key's events in a block
    for key, tokens in by_key.items():
        if key in streams.TRIGGERS:
            continue
        for i, token in enumerate(tokens):
            if token in ("install", "upgrade", "remove", "purge") and i + 1 < len(tokens):
                assert tokens[i + 1].startswith("status ")


def test_words_have_a_vocabulary_of_thousands() -> None:
    records = streams.words(20_000)
    assert 1_000 < len({t for _, t in records}) < 5_000
    assert all(t and " " not in t for _, t in records)
    assert streams.words(10, offset=5) == streams.words(15)[5:]
    assert math.isclose(len(streams.words(100, offset=10**6)), 100)


def test_the_references_own_examples() -> None:
    import doctest

    assert doctest.testmod(ppm).failed == 0


def test_at_publish_is_the_classic_way_for_one_key_and_never_sees_ahead() -> None:
    single = streams.order_k(3_000, k=2, symbols=4, seed=5).records
    classic, published = ppm.run(single, orders=(2, 4)), ppm.run(single, orders=(2, 4), at_publish=True)
    for k in (2, 4):
        assert (published[k].hits, published[k].scored) == (classic[k].hits, classic[k].scored)
        assert published[k].loss == pytest.approx(classic[k].loss, rel=1e-9)
    # y's "b" follows "a" as x's did in between: the classic guess, made when y's "b" comes,
    # has learned it from x; the published one was made at y's "a", before x's "b".
    records = [("x", "a"), ("y", "a"), ("x", "b"), ("y", "b")]
    assert ppm.run(records, orders=(2,))[2].hits == 1
    assert ppm.run(records, orders=(2,), at_publish=True)[2].hits == 0
