"""The pattern spec grammar: round trips, lengths and error positions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from producer.spec import (
    MAX_UNIT,
    SEED_SPEC,
    Repeat,
    SpecError,
    expand,
    format_spec,
    format_tree,
    is_token,
    parse_spec,
    parse_tree,
    vocabulary,
)

tokens = st.text(
    alphabet=st.characters(codec="utf-8", blacklist_characters=",*()"), min_size=1, max_size=4
).filter(is_token)
counts = st.integers(min_value=1, max_value=4)
leaves = st.builds(Repeat, tokens, counts)
items = st.recursive(
    leaves,
    lambda inner: st.builds(Repeat, st.lists(inner, min_size=1, max_size=3).map(tuple), counts),
    max_leaves=8,
)
trees = st.lists(items, min_size=1, max_size=4).map(tuple)


def test_seed_spec_is_the_seed_unit() -> None:
    unit = parse_spec(SEED_SPEC)
    assert unit == ["4"] * 6 + ["8"] + ["4"] * 5 + ["8"] + ["4"] * 6 + ["8"] + ["4"] * 6 + ["28"]
    assert len(unit) == 27
    assert vocabulary(unit) == ["4", "8", "28"]


def test_groups_nest() -> None:
    assert parse_spec("(1*2,2)*2,1*2,3") == ["1", "1", "2", "1", "1", "2", "1", "1", "3"]
    assert parse_spec("((a,b*2)*2,c)*2") == list("abbabbc" * 2)


def test_whitespace_between_items_is_ignored() -> None:
    assert parse_spec(" ( 1 * 2 , 2 ) * 2 ,\t1*2 , 3 ") == parse_spec("(1*2,2)*2,1*2,3")


@given(trees)
def test_tree_round_trip(tree: tuple[Repeat, ...]) -> None:
    assert parse_tree(format_tree(tree)) == tree


@given(trees)
def test_length_is_the_sum_of_repeats(tree: tuple[Repeat, ...]) -> None:
    def length(item: Repeat) -> int:
        inner = 1 if isinstance(item.body, str) else sum(length(i) for i in item.body)
        return item.count * inner

    assert len(parse_spec(format_tree(tree))) == sum(length(i) for i in tree)


@given(st.lists(st.tuples(tokens, counts), min_size=1, max_size=8))
def test_flat_spec_period_is_the_sum_of_counts(runs: list[tuple[str, int]]) -> None:
    text = ",".join(f"{token}*{count}" for token, count in runs)
    unit = parse_spec(text)
    assert len(unit) == sum(count for _, count in runs)
    assert unit == [token for token, count in runs for _ in range(count)]


@given(st.lists(tokens, min_size=1, max_size=30))
def test_unit_round_trip(unit: list[str]) -> None:
    text = format_spec(unit)
    assert parse_spec(text) == unit
    assert format_spec(parse_spec(text)) == text  # canonical


@given(trees)
def test_expand_matches_the_flat_format(tree: tuple[Repeat, ...]) -> None:
    unit = expand(tree)
    assert parse_spec(format_spec(unit)) == unit


@pytest.mark.parametrize(
    ("text", "position", "problem"),
    [
        ("", 1, "expected a token or '('"),
        ("4,8*x", 5, "expected a repeat count after '*'"),
        ("4*6,8*", 7, "expected a repeat count after '*'"),
        ("4**2", 3, "expected a repeat count after '*'"),
        ("a,,b", 3, "expected a token or '(', found ','"),
        ("a,", 3, "expected a token or '(', found the end"),
        ("()", 2, "expected a token or '(', found ')'"),
        ("(a,b", 5, "to close the group opened at position 1"),
        ("x,(a b)", 6, "to close the group opened at position 3"),
        ("a)", 2, "unexpected ')'"),
        ("a b", 3, "expected ',' between items, found 'b'"),
        ("4*6x", 4, "expected ',' between items, found 'x'"),
        ("a*0", 3, "a repeat count must be >= 1, got 0"),
        ("a,b*" + "9" * 40, 5, f"a repeat count must be <= {MAX_UNIT:,}"),
        ("(a*1000)*1001", 1, "the unit would exceed"),
        ("a,b*999999,c*2", 12, "the unit would exceed"),
        ("(" * 60 + "a" + ")" * 60, 51, "groups nested deeper than"),
    ],
)
def test_bad_specs_name_the_position(text: str, position: int, problem: str) -> None:
    with pytest.raises(SpecError) as info:
        parse_spec(text)
    assert info.value.position == position
    assert problem in str(info.value)
    assert str(info.value).startswith(f"position {position}: ")


@given(trees)
def test_dangling_star_points_past_the_end(tree: tuple[Repeat, ...]) -> None:
    text = format_tree(tree) + ",x*"
    with pytest.raises(SpecError, match="expected a repeat count after") as info:
        parse_spec(text)
    assert info.value.position == len(text) + 1


def test_format_spec_refuses_tokens_the_grammar_cannot_hold() -> None:
    for bad in ["a b", "x,y", "f(x)", "2*3", ""]:
        with pytest.raises(ValueError, match="not a valid spec token"):
            format_spec([bad])
