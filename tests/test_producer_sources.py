"""Sources of (key, token) records: the pattern generator, files, CSV columns, stdin."""

from __future__ import annotations

import io
import math
import selectors
import subprocess
import sys
from collections import Counter
from itertools import islice
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lstm_stream.settings import ConfigError
from producer.publisher import encode_value
from producer.sources import (
    InputError,
    csv_records,
    default_partition,
    file_source,
    line_records,
    pattern_records,
    stdin_source,
    stream_names,
)
from producer.spec import SEED_SPEC, parse_spec

UNIT = parse_spec(SEED_SPEC)


def test_default_stream_repeats_the_unit_from_its_start() -> None:
    records = list(islice(pattern_records(UNIT), 3 * len(UNIT)))
    assert all(key is None for key, _ in records)
    assert [token for _, token in records] == UNIT * 3


def test_one_stream_can_be_named() -> None:
    assert next(pattern_records(UNIT, key="sensor")) == ("sensor", "4")


def test_streams_interleave_round_robin_each_at_its_phase() -> None:
    keys, period = 5, len(UNIT)
    records = list(islice(pattern_records(UNIT, keys=keys, seed=11), keys * 2 * period))
    assert [key for key, _ in records[:keys]] == [f"stream-{i}" for i in range(keys)]
    for i in range(keys):
        tokens = [token for key, token in records if key == f"stream-{i}"]
        assert len(tokens) == 2 * period
        phases = [p for p in range(period) if tokens == [UNIT[(p + j) % period] for j in range(2 * period)]]
        assert phases, f"stream-{i} is not the unit at any phase"


def test_phases_depend_on_the_seed_only() -> None:
    def first(seed: int) -> list[tuple[str | None, str]]:
        return list(islice(pattern_records(["a", "b", "c", "d", "e"], keys=8, seed=seed), 8))

    assert first(1) == first(1)
    assert any(first(1) != first(seed) for seed in range(2, 6))


def test_noise_free_run_is_the_clean_counterpart_of_a_noisy_one() -> None:
    n = 6000
    clean = list(islice(pattern_records(UNIT, keys=3, seed=5), n))
    noisy = list(islice(pattern_records(UNIT, keys=3, seed=5, noise=0.2), n))
    assert [k for k, _ in clean] == [k for k, _ in noisy]
    assert {t for _, t in noisy} <= set(UNIT)
    # a replacement is uniform over the 3 distinct tokens, so 1/3 of them change nothing
    p = 0.2 * (1 - 1 / 3)
    mismatches = sum(a != b for (_, a), (_, b) in zip(clean, noisy, strict=True))
    assert abs(mismatches / n - p) < 5 * math.sqrt(p * (1 - p) / n)


def test_full_noise_over_one_token_changes_nothing() -> None:
    assert list(islice(pattern_records(["x"], noise=1.0), 5)) == [(None, "x")] * 5


def test_empty_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        next(pattern_records([]))


def test_lines_are_stripped_and_blank_ones_skipped() -> None:
    lines = ["  a\n", "\n", "   \n", "b\r\n", "c d\n"]
    assert list(line_records(lines)) == [(None, "a"), (None, "b"), (None, "c d")]


def test_file_source_counts_its_records(tmp_path: Path) -> None:
    path = tmp_path / "tokens.txt"
    path.write_text("4\n4\n\n8\r\n  28  \n", encoding="utf-8")
    with file_source(str(path), key="k") as source:
        assert source.total == 4
        assert list(source.records) == [("k", "4"), ("k", "4"), ("k", "8"), ("k", "28")]
    with file_source(str(path), count_total=False) as source:
        assert source.total is None


def test_file_bytes_pass_through_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "raw.txt"
    path.write_bytes("héllo\n".encode() + b"bad\xff\n")
    with file_source(str(path)) as source:
        values = [encode_value(token, "text") for _, token in source.records]
    assert values == ["héllo".encode(), b"bad\xff"]


def test_csv_column_with_key_column(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text('user,action,n\nu1,login,1\nu2,"view, item",2\n,logout,3\nu1,,4\n', encoding="utf-8")
    with file_source(str(path), column="action", key_column="user", key="anon") as source:
        assert source.total == 3
        assert list(source.records) == [("u1", "login"), ("u2", "view, item"), ("anon", "logout")]


def test_csv_records_without_key_column() -> None:
    rows: list[dict[str, str | None]] = [{"t": "a"}, {"t": None}, {"t": "b"}]
    assert list(csv_records(rows, column="t")) == [(None, "a"), (None, "b")]


@pytest.mark.parametrize(
    ("content", "column", "key_column", "message"),
    [
        ("a,b\n1,2\n", "c", "", "--column: 'c' is not a column"),
        ("a,b\n1,2\n", "a", "z", "--key-column: 'z' is not a column"),
        ("", "a", "", "no CSV header row"),
    ],
)
def test_csv_problems_are_configuration_errors(
    tmp_path: Path, content: str, column: str, key_column: str, message: str
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content, encoding="utf-8")
    with (
        pytest.raises(ConfigError, match=message),
        file_source(str(path), column=column, key_column=key_column),
    ):
        pass


def test_csv_malformed_midway_is_an_input_error(tmp_path: Path) -> None:
    path = tmp_path / "huge.csv"
    path.write_text("t\na\n" + "x" * 200_000 + "\n", encoding="utf-8")  # over csv's field size limit
    with file_source(str(path), column="t") as source:
        records = source.records
        assert next(records) == (None, "a")
        with pytest.raises(InputError, match="cannot read"):
            next(records)


@pytest.mark.parametrize("name", ["missing.txt", "."])
def test_unreadable_paths_are_configuration_errors(tmp_path: Path, name: str) -> None:
    with pytest.raises(ConfigError, match="PATH: cannot read"), file_source(str(tmp_path / name)):
        pass


def test_stdin_source_reads_a_stream() -> None:
    source = stdin_source(io.StringIO("a\n\n b \nc"), key=None)
    assert source.total is None
    assert list(source.records) == [(None, "a"), (None, "b"), (None, "c")]


STDIN_ECHO = (
    "from producer.sources import stdin_source\n"
    "for key, token in stdin_source().records:\n"
    "    print(token, flush=True)\n"
)


def test_stdin_streams_each_line_as_it_arrives() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", STDIN_ECHO], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert proc.stdin is not None
    assert proc.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        try:
            for token in ["first", "second", "ünïcode"]:
                proc.stdin.write(f"  {token}\n\n")
                proc.stdin.flush()  # stdin stays open: the line must come out before any EOF
                assert selector.select(timeout=30), f"{token!r} was not read before EOF"
                assert proc.stdout.readline() == f"{token}\n"
        finally:
            proc.stdin.close()
    assert proc.wait(timeout=30) == 0


@settings(max_examples=60, deadline=None)
@given(keys=st.integers(1, 40), partitions=st.integers(1, 12))
def test_stream_names_spread_evenly_over_the_partitions(keys: int, partitions: int) -> None:
    names = stream_names(keys, partitions)
    assert len(names) == len(set(names)) == keys
    per_partition = Counter(default_partition(name, partitions) for name in names)
    assert len(per_partition) == min(keys, partitions), "a partition left with no stream"
    assert max(per_partition.values()) - min(per_partition.values()) <= 1
    assert stream_names(keys) == [f"stream-{i}" for i in range(keys)]  # one partition: the plain names


def test_pattern_streams_are_named_after_the_partitions() -> None:
    records = list(islice(pattern_records(UNIT, keys=6, seed=1, partitions=3), 60))
    keys = {key for key, _ in records}
    assert keys == set(stream_names(6, 3))
    assert sorted(Counter(default_partition(k, 3) for k in keys if k).values()) == [2, 2, 2]
