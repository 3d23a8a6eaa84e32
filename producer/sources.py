"""Where tokens come from: generators of ``(key, token)`` records.

A key of ``None`` is the default stream (a Kafka message with a null key). The pattern
generator is pure and deterministic under its seed, so tests compute the exact expected output:

>>> from itertools import islice
>>> list(islice(pattern_records(["a", "a", "b"]), 4))
[(None, 'a'), (None, 'a'), (None, 'b'), (None, 'a')]
>>> list(line_records([" x ", "", "y\\n"], key="k"))
[('k', 'x'), ('k', 'y')]

Files and standard input are decoded as UTF-8; undecodable bytes pass through unchanged (they
are re-encoded as the same bytes when published), so the producer never alters a stream.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import random
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

from kafka.partitioner.default import murmur2

from lstm_stream.settings import ConfigError
from producer.spec import vocabulary

__all__ = [
    "ENCODING_ERRORS",
    "InputError",
    "PartitionedSource",
    "Record",
    "Source",
    "csv_records",
    "default_partition",
    "file_source",
    "line_records",
    "pattern_records",
    "read_lines",
    "stdin_source",
    "stream_names",
]

Record = tuple[str | None, str]
ENCODING_ERRORS = "surrogateescape"


class InputError(RuntimeError):
    """Reading the input failed midway (an I/O error, a malformed CSV file). Exit code 1."""


@dataclass(frozen=True)
class Source:
    """Records to publish, and how many there are when that is known (for a progress bar)."""

    records: Iterator[Record]
    total: int | None = None

    def open(self, partitions: int) -> Iterator[Record]:
        """The records to publish to a topic of `partitions` partitions: these."""
        return self.records


@dataclass(frozen=True)
class PartitionedSource:
    """A source whose records depend on the topic's partition count (the pattern's stream names)."""

    make: Callable[[int], Iterator[Record]]
    total: int | None = None

    def open(self, partitions: int) -> Iterator[Record]:
        return self.make(partitions)


def default_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner (Java's and kafka-python's) gives a key.

    >>> [default_partition(f"stream-{i}", 3) for i in range(12)]
    [2, 1, 2, 1, 1, 1, 1, 2, 2, 2, 2, 0]
    """
    hashed: int = murmur2(key.encode("utf-8", ENCODING_ERRORS))
    return (hashed & 0x7FFFFFFF) % partitions


def stream_names(keys: int, partitions: int = 1) -> list[str]:
    """`keys` stream names from stream-0, stream-1, ..., spread evenly over `partitions`.

    Keys land on partitions by their hash (`default_partition`), so the first six names would
    leave one of three partitions with no stream at all, and a consumer instance idle. A name that
    would put more than its share of streams on a partition is skipped: every partition gets
    ``keys // partitions`` streams or one more.

    >>> stream_names(4)
    ['stream-0', 'stream-1', 'stream-2', 'stream-3']
    >>> names = stream_names(6, 3)
    >>> names
    ['stream-0', 'stream-1', 'stream-2', 'stream-3', 'stream-11', 'stream-14']
    >>> sorted(default_partition(name, 3) for name in names)
    [0, 0, 1, 1, 2, 2]
    """
    base, extra = divmod(keys, partitions)
    counts = [0] * partitions
    names: list[str] = []
    i = 0
    while len(names) < keys:
        name = f"stream-{i}"
        i += 1
        partition = default_partition(name, partitions)
        full_ones = sum(count > base for count in counts)
        if counts[partition] < base or (counts[partition] == base and full_ones < extra):
            counts[partition] += 1
            names.append(name)
    return names


def pattern_records(
    unit: Sequence[str],
    *,
    keys: int = 1,
    key: str | None = None,
    noise: float = 0.0,
    seed: int = 0,
    partitions: int = 1,
) -> Iterator[Record]:
    """The unit repeated forever; with `keys` > 1, that many streams interleaved round-robin.

    One stream is keyed `key` and starts at the unit's beginning. Several are named by
    `stream_names` (``stream-0`` .. ``stream-{keys-1}`` on one partition; spread evenly over
    `partitions`), each starting at a random phase. With probability
    `noise` a token is replaced by one drawn uniformly from the unit's distinct tokens (so the
    replacement may equal the original). The phases are drawn first from ``Random(seed)``,
    then the noise, so the same seed with ``noise=0`` gives the clean counterpart.

    >>> from itertools import islice
    >>> list(islice(pattern_records(["a", "b", "c"], keys=2, seed=3), 4))
    [('stream-0', 'a'), ('stream-1', 'c'), ('stream-0', 'b'), ('stream-1', 'a')]
    """
    if not unit:
        raise ValueError("the unit is empty")
    rng = random.Random(seed)
    period = len(unit)
    if keys == 1:
        names: list[str | None] = [key]
        positions = [0]
    else:
        names = list(stream_names(keys, partitions))
        positions = [rng.randrange(period) for _ in range(keys)]
    choices = vocabulary(unit)
    while True:
        for stream, name in enumerate(names):
            token = unit[positions[stream]]
            positions[stream] = (positions[stream] + 1) % period
            if noise and rng.random() < noise:
                token = rng.choice(choices)
            yield name, token


def line_records(lines: Iterable[str], *, key: str | None = None) -> Iterator[Record]:
    """One token per line, whitespace stripped, blank lines skipped."""
    for line in lines:
        token = line.strip()
        if token:
            yield key, token


def csv_records(
    rows: Iterable[Mapping[str, str | None]], *, column: str, key_column: str = "", key: str | None = None
) -> Iterator[Record]:
    """Tokens from one column; keys from another when given (an empty cell falls back to `key`).

    >>> rows = [{"t": "a", "k": "u1"}, {"t": " ", "k": "u2"}, {"t": "b", "k": ""}]
    >>> list(csv_records(rows, column="t", key_column="k"))
    [('u1', 'a'), (None, 'b')]
    """
    for row in rows:
        token = (row.get(column) or "").strip()
        if not token:
            continue
        row_key = (row.get(key_column) or "").strip() if key_column else ""
        yield (row_key or key), token


def read_lines(stream: TextIO) -> Iterator[str]:
    """Lines as soon as each arrives (`for line in stream` may read ahead on some streams)."""
    return iter(stream.readline, "")


def _guarded(records: Iterator[Record], what: str) -> Iterator[Record]:
    try:
        yield from records
    except (OSError, csv.Error) as exc:
        raise InputError(f"cannot read {what}: {exc}") from exc


def _open(path: str) -> TextIO:
    try:
        # newline="" as the csv module requires; readline still splits on \r, \n and \r\n.
        return open(path, encoding="utf-8", errors=ENCODING_ERRORS, newline="")
    except OSError as exc:
        raise ConfigError(f"PATH: cannot read {path!r}: {exc.strerror or exc}") from None


def _csv_reader(handle: TextIO, path: str, column: str, key_column: str) -> csv.DictReader[str]:
    reader = csv.DictReader(handle)
    header = reader.fieldnames
    if not header:
        raise ConfigError(f"--column: {path!r} has no CSV header row")
    for flag, name in (("--column", column), ("--key-column", key_column)):
        if name and name not in header:
            raise ConfigError(f"{flag}: {name!r} is not a column of {path!r} ({', '.join(header)})")
    return reader


def _count(path: str, column: str) -> int | None:
    """Records in a file: a second pass, so the progress bar knows its total (None if it fails)."""
    with _open(path) as handle:
        try:
            if column:
                return sum(1 for _ in csv_records(csv.DictReader(handle), column=column))
            return sum(1 for _ in line_records(handle))
        except (OSError, csv.Error):
            return None  # the publishing pass meets the same problem and reports it


@contextlib.contextmanager
def file_source(
    path: str, *, key: str | None = None, column: str = "", key_column: str = "", count_total: bool = True
) -> Iterator[Source]:
    """Records of a text file (one token per line), or of a CSV file's `column` when given.

    Opened eagerly, so a missing file or column is a `ConfigError` before anything is
    published. The total is counted only for regular files (not pipes) and when asked.
    """
    handle = _open(path)
    with handle:
        if column:
            rows = _csv_reader(handle, path, column, key_column)
            records = csv_records(rows, column=column, key_column=key_column, key=key)
        else:
            records = line_records(read_lines(handle), key=key)
        total = _count(path, column) if count_total and os.path.isfile(path) else None
        yield Source(_guarded(records, repr(path)), total)


def stdin_source(stream: TextIO | None = None, *, key: str | None = None) -> Source:
    """Records of standard input, line by line as they arrive."""
    if stream is None:
        stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors=ENCODING_ERRORS)
    return Source(_guarded(line_records(read_lines(stream), key=key), "standard input"))
