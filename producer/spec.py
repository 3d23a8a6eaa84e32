"""The pattern spec grammar: a compact way to write a repeating unit of tokens.

A spec is a comma-separated list of items; an item is a token or a parenthesized group,
optionally followed by ``*N`` (N >= 1 repeats). Whitespace between items is ignored. Tokens are
any strings without whitespace, ``,``, ``*``, ``(`` or ``)``::

    spec  := items
    items := item ("," item)*
    item  := (TOKEN | "(" items ")") ["*" COUNT]

>>> parse_spec("4*3,8")
['4', '4', '4', '8']
>>> " ".join(parse_spec("(1*2,2)*2,1*2,3"))
'1 1 2 1 1 2 1 1 3'
>>> len(parse_spec(SEED_SPEC))
27
>>> format_spec(parse_spec(SEED_SPEC)) == SEED_SPEC
True
>>> parse_spec("4,8*x")
Traceback (most recent call last):
...
producer.spec.SpecError: position 5: expected a repeat count after '*'

Positions count characters from 1; the end of the text is ``len(text) + 1``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

__all__ = [
    "MAX_DEPTH",
    "MAX_UNIT",
    "SEED_SPEC",
    "Repeat",
    "SpecError",
    "expand",
    "format_spec",
    "format_tree",
    "is_token",
    "parse_spec",
    "parse_tree",
    "vocabulary",
]

SEED_SPEC = "4*6,8,4*5,8,4*6,8,4*6,28"
# A unit is held in memory; the cap keeps a typo like (a*1000)*1000000 from eating it all.
MAX_UNIT = 1_000_000
MAX_DEPTH = 50  # well below Python's recursion limit
_RESERVED = ",*()"


class SpecError(ValueError):
    """A malformed spec; `position` is the 1-based character where the problem was found."""

    def __init__(self, position: int, problem: str) -> None:
        super().__init__(f"position {position}: {problem}")
        self.position = position
        self.problem = problem


@dataclass(frozen=True)
class Repeat:
    """One item of a spec: a token or a group of items, repeated `count` times."""

    body: str | tuple[Repeat, ...]
    count: int = 1

    def length(self) -> int:
        """How many tokens this item expands to.

        >>> Repeat((Repeat("a", 2), Repeat("b")), 3).length()
        9
        """
        if isinstance(self.body, str):
            return self.count
        return self.count * sum(item.length() for item in self.body)


def is_token(text: str) -> bool:
    """Whether `text` can be written as a token in a spec.

    >>> is_token("GET/index"), is_token("a b"), is_token("f(x)"), is_token("")
    (True, False, False, False)
    """
    return bool(text) and not any(c in _RESERVED or c.isspace() for c in text)


class _Parser:
    """Recursive descent over the text; `pos` is a 0-based index into it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.depth = 0

    def fail(self, problem: str, at: int | None = None) -> SpecError:
        return SpecError((self.pos if at is None else at) + 1, problem)

    def peek(self) -> str:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def items(self, opened_at: int | None) -> tuple[Repeat, ...]:
        items = [self.item()]
        total = items[0].length()
        while self.peek() == ",":
            self.pos += 1
            self.peek()
            start = self.pos
            items.append(self.item())
            total += items[-1].length()
            if total > MAX_UNIT:
                raise self.fail(f"the unit would exceed {MAX_UNIT:,} tokens", at=start)
        end = self.peek()
        if opened_at is not None and end != ")":
            where = f"position {opened_at + 1}"
            found = f"found {end!r}" if end else "found the end"
            raise self.fail(f"expected ',' or ')' to close the group opened at {where}, {found}")
        if opened_at is None and end == ")":
            raise self.fail("unexpected ')' without a matching '('")
        if opened_at is None and end:
            raise self.fail(f"expected ',' between items, found {end!r}")
        return tuple(items)

    def item(self) -> Repeat:
        char = self.peek()
        start = self.pos
        if char == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise self.fail(f"groups nested deeper than {MAX_DEPTH}")
            self.pos += 1
            body: str | tuple[Repeat, ...] = self.items(opened_at=start)
            self.pos += 1  # the ')' that items() found
            self.depth -= 1
        elif char and char not in _RESERVED:
            end = self.pos
            while end < len(self.text) and not (self.text[end] in _RESERVED or self.text[end].isspace()):
                end += 1
            body, self.pos = self.text[self.pos : end], end
        else:
            found = f"found {char!r}" if char else "found the end"
            raise self.fail(f"expected a token or '(', {found}")
        item = Repeat(body, self.count())
        if item.length() > MAX_UNIT:
            raise self.fail(f"the unit would exceed {MAX_UNIT:,} tokens", at=start)
        return item

    def count(self) -> int:
        if self.peek() != "*":
            return 1
        self.pos += 1
        self.peek()
        start = end = self.pos
        while end < len(self.text) and self.text[end].isdigit() and self.text[end].isascii():
            end += 1
        if end == start:
            raise self.fail("expected a repeat count after '*'")
        self.pos = end
        digits = self.text[start:end].lstrip("0")
        if len(digits) > len(str(MAX_UNIT)):  # before int(), which refuses very long numbers
            raise self.fail(f"a repeat count must be <= {MAX_UNIT:,}", at=start)
        count = int(digits or "0")
        if count < 1:
            raise self.fail(f"a repeat count must be >= 1, got {count}", at=start)
        return count


def parse_tree(text: str) -> tuple[Repeat, ...]:
    """Parse a spec into its items, keeping groups and counts.

    >>> parse_tree("a*2,(b,c)*3")
    (Repeat(body='a', count=2), Repeat(body=(Repeat(body='b', count=1), Repeat(body='c', count=1)), count=3))
    """
    return _Parser(text).items(opened_at=None)


def expand(items: Sequence[Repeat]) -> list[str]:
    """The flat unit the items stand for.

    >>> expand([Repeat("x", 2), Repeat((Repeat("y"), Repeat("z")), 2)])
    ['x', 'x', 'y', 'z', 'y', 'z']
    """
    out: list[str] = []
    for item in items:
        once = [item.body] if isinstance(item.body, str) else expand(item.body)
        out.extend(once * item.count)
    return out


def parse_spec(text: str) -> list[str]:
    """Parse a spec into its unit: the tokens of one period, in order."""
    return expand(parse_tree(text))


def format_tree(items: Sequence[Repeat]) -> str:
    """Write items back as a spec; `parse_tree(format_tree(t)) == t`.

    >>> format_tree(parse_tree(" ( 1*2 , 2 )*2 , 1*2,3 "))
    '(1*2,2)*2,1*2,3'
    """
    parts = []
    for item in items:
        body = item.body if isinstance(item.body, str) else f"({format_tree(item.body)})"
        parts.append(body if item.count == 1 else f"{body}*{item.count}")
    return ",".join(parts)


def format_spec(unit: Sequence[str]) -> str:
    """The shortest run-length spec of a unit: `parse_spec(format_spec(u)) == u`.

    >>> format_spec(["a", "a", "b", "a"])
    'a*2,b,a'
    >>> format_spec(["a b"])
    Traceback (most recent call last):
    ...
    ValueError: not a valid spec token: 'a b'
    """
    runs = []
    for token, group in groupby(unit):
        if not is_token(token):
            raise ValueError(f"not a valid spec token: {token!r}")
        runs.append(Repeat(token, sum(1 for _ in group)))
    return format_tree(runs)


def vocabulary(unit: Sequence[str]) -> list[str]:
    """The distinct tokens of a unit, in order of first appearance.

    >>> vocabulary(parse_spec(SEED_SPEC))
    ['4', '8', '28']
    """
    return list(dict.fromkeys(unit))
