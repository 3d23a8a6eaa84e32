"""Validated settings objects: every option a CLI flag and an environment variable.

A settings class is a frozen dataclass whose fields are declared with :func:`option`. The
entry point builds it once with :func:`load` (flag > environment variable > default) and
passes it down; nothing else reads the environment. A bad value raises :class:`ConfigError`
naming the flag and the variable; entry points turn it into exit code 2. An empty variable counts
as unset (docker-compose passes ``""`` for an unset ``${VAR}``), and :func:`unknown_variables`
names the variables of a prefix that are no option, with the closest option.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class Demo:
...     rate: float = option(0.0, "messages per second (0 = unthrottled)", check=at_least(0))
...     topic: str = option("sequence", "topic to publish to")
>>> load(Demo, "DEMO_", ["--rate", "5"], env={"DEMO_TOPIC": "events"})
Demo(rate=5.0, topic='events')
>>> load(Demo, "DEMO_", ["--rate", "-1"], env={})
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --rate (env DEMO_RATE): must be >= 0, got -1.0
>>> load(Demo, "DEMO_", [], env={"DEMO_RATE": "", "DEMO_TOPIC": " "})
Demo(rate=0.0, topic='sequence')
>>> load(Demo, "DEMO_", [], env={"DEMO_RATE": "fast"})
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --rate (env DEMO_RATE): expected a number, got 'fast'
>>> unknown_variables("DEMO_", [Demo], {"DEMO_RAT": "5", "DEMO_TOPIC": "x", "HOME": "/"})
['DEMO_RAT is not an option (did you mean DEMO_RATE, --rate?)']
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from lstm_stream.secret import Secret

__all__ = [
    "ConfigError",
    "Secret",
    "add_arguments",
    "at_least",
    "check_fields",
    "describe",
    "env_name",
    "flag_name",
    "from_namespace",
    "load",
    "one_of",
    "option",
    "positive_finite",
    "unknown_variables",
]

T = TypeVar("T")
Check = Callable[[Any], str | None]
_UNSET = object()


class ConfigError(ValueError):
    """A bad configuration value; the message names the option. Exit code 2."""


def option(
    default: Any,
    help: str,
    *,
    check: Check | None = None,
    choices: Sequence[str] | None = None,
    parse: Callable[[str], Any] | None = None,
    group: str = "options",
) -> Any:
    """Declare a settings field: its default, help text and validation."""
    meta = {"help": help, "check": check, "choices": choices, "parse": parse, "group": group}
    return dataclasses.field(default=default, metadata=meta)


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be >= {low:g}, got {v!r}"


def positive_finite(v: float) -> str | None:
    return None if 0 < v < float("inf") else f"must be > 0 and finite, got {v!r}"


def _problem(field: dataclasses.Field[Any], value: Any) -> str | None:
    """What is wrong with `value` for the field, by its `option(choices=..., check=...)`."""
    choices = field.metadata.get("choices")
    if choices and value not in choices:
        return f"must be one of {', '.join(choices)}, got {value!r}"
    check = field.metadata.get("check")
    return check(value) if check else None


def check_fields(settings: Any) -> None:
    """Each field's value checked as `from_namespace` checks a flag's: for settings made in
    code (the learner embedded in a program, a snapshot's)."""
    for field in dataclasses.fields(settings):
        problem = _problem(field, getattr(settings, field.name))
        if problem:
            raise ConfigError(f"{flag_name(field.name)}: {problem}")


def one_of(values: Iterable[str]) -> Check:
    allowed = tuple(values)
    return lambda v: None if v in allowed else f"must be one of {', '.join(allowed)}, got {v!r}"


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def env_name(prefix: str, field_name: str) -> str:
    return prefix + field_name.upper()


def _parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def _field_type(cls: type, field: dataclasses.Field[Any]) -> Any:
    hint = typing.get_type_hints(cls)[field.name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return args[0]
    return hint


def _parse_int(text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def _parse_float(text: str) -> float:
    try:
        return float(text.strip())
    except ValueError:
        raise ValueError(f"expected a number, got {text!r}") from None


def _parser_for(cls: type, field: dataclasses.Field[Any]) -> Callable[[str], Any]:
    custom = field.metadata.get("parse")
    if custom is not None:
        return typing.cast(Callable[[str], Any], custom)
    kind = _field_type(cls, field)
    parsers: dict[Any, Callable[[str], Any]] = {
        bool: _parse_bool,
        Secret: Secret,
        int: _parse_int,
        float: _parse_float,
        str: str,
    }
    if kind in parsers:
        return parsers[kind]
    raise TypeError(f"{cls.__name__}.{field.name}: give option(parse=...) for type {kind!r}")


def add_arguments(parser: argparse.ArgumentParser, cls: type, prefix: str) -> None:
    """Add one flag per field of the settings class `cls` (values parsed later, by `from_namespace`)."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    for field in dataclasses.fields(cls):
        meta = field.metadata
        name = meta.get("group", "options")
        group = groups.get(name) or groups.setdefault(name, parser.add_argument_group(name))
        choices = meta.get("choices") or ()
        extra = ""
        if choices:
            named = [c for c in choices if c]
            extra = f" (one of: {', '.join(named)}{'; or empty' if len(named) < len(choices) else ''})"
        shown = _shown(field.default)
        help_text = f"{meta.get('help', '')}{extra} [env {env_name(prefix, field.name)}; default: {shown}]"
        kind = _field_type(cls, field)
        if kind is bool:
            group.add_argument(
                flag_name(field.name),
                dest=field.name,
                default=_UNSET,
                action=argparse.BooleanOptionalAction,
                help=help_text.replace("%", "%%"),
            )
        else:
            named = [c for c in choices if c]
            group.add_argument(
                flag_name(field.name),
                dest=field.name,
                default=_UNSET,
                # Listed for completion (argcomplete, shtab read `choices`) and in the metavar;
                # checked with the environment's values (`from_namespace`), so that a bad one
                # gets the same message either way.
                choices=_Listed(named) if named else None,
                metavar="{" + ",".join(named) + "}" if named else field.name.upper(),
                help=help_text.replace("%", "%%"),
            )


class _Listed(tuple[str, ...]):
    """An option's choices as argparse and completion tools list them, which argparse does not
    check itself: `from_namespace` does, for flags and environment alike."""

    def __contains__(self, value: object) -> bool:
        return True


def _shown(default: Any) -> str:
    """A default as --help shows it: a secret never, an empty one as none."""
    if isinstance(default, Secret):
        return "hidden" if default else "none"
    if default == "" or default is None:
        return "none"
    return str(default)


def from_namespace(
    cls: type[T], prefix: str, ns: argparse.Namespace, env: Mapping[str, str] | None = None
) -> T:
    """Build and validate `cls` from parsed flags, then environment variables, then defaults.

    An empty (or blank) variable counts as unset; an empty flag value is taken as given."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        where = f"{flag_name(field.name)} (env {env_name(prefix, field.name)})"
        raw = getattr(ns, field.name, _UNSET)
        if raw is _UNSET:
            raw = env.get(env_name(prefix, field.name), _UNSET)
            if isinstance(raw, str) and not raw.strip():
                raw = _UNSET
        if raw is _UNSET:
            continue
        try:
            value = raw if isinstance(raw, bool) else _parser_for(cls, field)(str(raw))
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        problem = _problem(field, value)
        if problem:
            raise ConfigError(f"{where}: {problem}")
        values[field.name] = value
    try:
        return cls(**values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc)) from None


def load(cls: type[T], prefix: str, argv: Sequence[str], env: Mapping[str, str] | None = None) -> T:
    """Parse `argv` holding only `cls`'s flags (used by tests and small tools)."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser, cls, prefix)
    return from_namespace(cls, prefix, parser.parse_args(list(argv)), env)


def unknown_variables(
    prefix: str, classes: Iterable[type], env: Mapping[str, str] | None = None
) -> list[str]:
    """One line per variable of `env` starting with `prefix` that is no field of `classes`,
    naming the closest option: a mistyped variable would otherwise be ignored silently."""
    env = os.environ if env is None else env
    known: dict[str, str] = {}
    for cls in classes:
        for field in dataclasses.fields(cls):
            known[env_name(prefix, field.name)] = flag_name(field.name)
    lines = []
    suffixes = {name[len(prefix) :]: name for name in known}  # the shared prefix is no likeness
    for name in sorted(v for v in env if v.startswith(prefix) and v not in known):
        close = difflib.get_close_matches(name[len(prefix) :], suffixes, n=1, cutoff=0.6)
        hint = f" (did you mean {suffixes[close[0]]}, {known[suffixes[close[0]]]}?)" if close else ""
        lines.append(f"{name} is not an option{hint}")
    return lines


def describe(settings: Any) -> dict[str, Any]:
    """The settings as a dict safe to log: secrets masked."""
    out: dict[str, Any] = {}
    for field in dataclasses.fields(settings):
        value = getattr(settings, field.name)
        out[field.name] = repr(value) if isinstance(value, Secret) else value
    return out
