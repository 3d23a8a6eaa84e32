"""The token files `lstm-consumer evaluate` reads, and the process's memory it reports.

Each line is one token of the default stream (whitespace stripped, blank lines skipped),
``KEY<TAB>TOKEN``, or ``KEY<TAB>TOKEN<TAB>LABEL`` with LABEL 1/0 (also true/false,
anomaly/normal): whether that input is a real anomaly.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Iterable
from pathlib import Path

from consumer.anomalies import parse_label
from lstm_stream.settings import ConfigError

__all__ = ["Record", "parse_line", "peak_resident_mb", "read_labelled", "read_records", "resident_mb"]

Record = tuple[str | None, str]


def parse_line(line: str) -> tuple[str | None, str, bool | None] | None:
    """``TOKEN``, ``KEY<TAB>TOKEN`` or ``KEY<TAB>TOKEN<TAB>LABEL`` (an empty key is the default
    stream) as (key, token, label or None); None for a blank line. A `ValueError` for a label
    that is not one."""
    fields = line.rstrip("\r\n").split("\t", 2)
    if len(fields) == 1:
        fields = ["", fields[0]]
    key, token = fields[0].strip() or None, fields[1].strip()
    label = None
    if len(fields) == 3:
        label = parse_label(fields[2])
        if label is None:
            raise ValueError(f"the label {fields[2].strip()!r} is not 1/0, true/false or anomaly/normal")
    return (key, token, label) if token else None


def read_records(path: str) -> list[Record]:
    """Every record of the file (``-``: standard input); a `ConfigError` if it cannot be read."""
    return read_labelled(path)[0]


def read_labelled(path: str) -> tuple[list[Record], list[bool] | None]:
    """The file's records, and their labels if any line has one (the others are normal)."""
    try:
        if path == "-":
            lines: Iterable[str] = sys.stdin.readlines()
        else:
            # surrogateescape: undecodable bytes stay distinct tokens instead of failing the run
            lines = Path(path).read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    records: list[Record] = []
    labels: list[bool] = []
    labelled = False
    for number, line in enumerate(lines, start=1):
        try:
            parsed = parse_line(line)
        except ValueError as exc:
            raise ConfigError(f"{path}, line {number}: {exc}") from None
        if parsed is not None:
            records.append((parsed[0], parsed[1]))
            labels.append(bool(parsed[2]))
            labelled |= parsed[2] is not None
    return records, labels if labelled else None


def peak_resident_mb() -> float:
    """The process's peak resident memory, in MB: VmHWM on Linux (ru_maxrss there keeps the
    peak of the process that exec'ed this one, e.g. a benchmark's)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # bytes on macOS, KiB elsewhere
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def resident_mb() -> float | None:
    """The process's resident memory now (Linux), in MB; max_rss_mb is its peak."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
