"""Paths into JSON events, and JSON values as tokens: the one way both commands read and write them.

A path is a dotted list of object keys, ``event.type``; a backslash makes the next character
literal, so ``labels.app\\.kubernetes\\.io/name`` is the key ``app.kubernetes.io/name`` inside
``labels``. A segment of digits also indexes an array (``items.0.sku``).

A value becomes a token in one way: a string as it is (whitespace stripped); ``true`` and
``false`` as those words; a number in its shortest decimal form, so ``7``, ``7.0`` and ``7e0``
are all the token ``7`` and ``0.5`` is ``0.5``. Null, an object or an array is not a token.

>>> path = parse_path("event.type")
>>> lookup({"event": {"type": "click"}}, path)
'click'
>>> lookup({"a.b": {"c": 1}}, parse_path(r"a\\.b.c"))
1
>>> lookup({"items": [{"sku": 9}]}, parse_path("items.0.sku"))
9
>>> lookup({"event": {}}, path) is MISSING
True
>>> [token_text(v) for v in (" click ", True, 7, 7.0, 0.5, 1e21, -0.0, None, [1])]
['click', 'true', '7', '7', '0.5', '1e+21', '0', None, None]
>>> nest(path, "click")
{'event': {'type': 'click'}}
>>> parse_path("a..b")
Traceback (most recent call last):
...
ValueError: an empty key in 'a..b' (a literal dot is written \\.)
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["MISSING", "describe_path", "lookup", "nest", "parse_path", "token_text"]

MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
_LARGEST_EXACT = 2**53  # integral doubles below this print as plain digits


def parse_path(text: str) -> tuple[str, ...]:
    """The keys of a dotted path (``\\.`` a literal dot, ``\\\\`` a literal backslash)."""
    keys: list[str] = []
    current: list[str] = []
    chars = iter(text)
    for char in chars:
        if char == "\\":
            escaped = next(chars, None)
            if escaped is None:
                raise ValueError(f"{text!r} ends with a lone backslash")
            current.append(escaped)
        elif char == ".":
            keys.append("".join(current))
            current = []
        else:
            current.append(char)
    keys.append("".join(current))
    if any(not key for key in keys):
        raise ValueError(f"an empty key in {text!r} (a literal dot is written \\.)")
    return tuple(keys)


def describe_path(path: tuple[str, ...]) -> str:
    """The path as it is written."""
    return ".".join(key.replace("\\", "\\\\").replace(".", "\\.") for key in path)


def lookup(document: Any, path: tuple[str, ...]) -> Any:
    """The value at `path`, or `MISSING`."""
    value = document
    for key in path:
        if isinstance(value, dict):
            if key not in value:
                return MISSING
            value = value[key]
        elif isinstance(value, list) and key.isdigit() and int(key) < len(value):
            value = value[int(key)]
        else:
            return MISSING
    return value


def nest(path: tuple[str, ...], value: Any) -> dict[str, Any]:
    """A JSON object holding `value` at `path` (what `lookup` reads back)."""
    document: dict[str, Any] = {path[-1]: value}
    for key in reversed(path[:-1]):
        document = {key: document}
    return document


def token_text(value: Any) -> str | None:
    """The token a JSON value stands for, or None for null, objects and arrays."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        if value.is_integer() and abs(value) < _LARGEST_EXACT:
            return str(int(value))
        return repr(value)
    return None
