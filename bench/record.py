"""A benchmark's result file: what it measured, with when, where and on what code.

Every benchmark takes `--record FILE`. With it, the JSON object the benchmark prints is also
written to FILE, wrapped with the date, the commit (and whether the tree had changes), the
machine (CPU, cores, memory, system, Python) and its load average at the start and at the end.
The make targets write `docs/benchmarks/<name>.json`; `scripts/figures` renders those files into
docs/benchmarks.md and README's figures block, and tests/test_figures.py fails when a figure in
the docs has no such source.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# What a result file may hold of its own: the benchmark's printed object goes under "result".
FORMAT = 1


def add_argument(parser: argparse.ArgumentParser) -> None:
    """Give a benchmark's parser the `--record FILE` option."""
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="also write the result, with date, commit, machine and load, to FILE "
        "(the make targets write docs/benchmarks/<name>.json)",
    )


def _git(*args: str) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=30, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip()


# What a benchmark runs: a change anywhere else (tests, docs, scripts) does not change a figure.
MEASURED = ("consumer/", "producer/", "lstm_stream/", "bench/", "requirements/", "pyproject.toml")


def commit() -> dict[str, Any]:
    """HEAD's hash and whether the code the benchmarks run differs from it."""
    changes = [
        line
        for line in _git("status", "--porcelain", "--untracked-files=all", "--", *MEASURED).splitlines()
        if not line[3:].endswith(".md")
    ]
    return {"hash": _git("rev-parse", "HEAD") or None, "changed": bool(changes)}


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_gb() -> float | None:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return None


def machine() -> dict[str, Any]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_gb": _memory_gb(),
        "system": f"{platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
    }


class Recorder:
    """Started when the benchmark starts; `write` once it has its result."""

    def __init__(self, name: str, path: Path | None, argv: list[str] | None = None) -> None:
        self.name = name
        self.path = path
        self.argv = list(sys.argv if argv is None else [sys.argv[0], *argv])
        self.started = time.time()
        self.load_before = [round(x, 2) for x in os.getloadavg()]
        self.commit = commit()  # the code as it was when the benchmark started

    def write(self, result: dict[str, Any]) -> None:
        if self.path is None:
            return
        script = Path(self.argv[0])
        if script.is_absolute() and script.is_relative_to(REPO):
            script = script.relative_to(REPO)
        record = {
            "format": FORMAT,
            "benchmark": self.name,
            "command": " ".join(["python", str(script), *self.argv[1:]]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.started)),
            "seconds": round(time.time() - self.started, 1),
            "commit": self.commit,
            "machine": machine(),
            "load_average": {"start": self.load_before, "end": [round(x, 2) for x in os.getloadavg()]},
            "result": result,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=1, sort_keys=False) + "\n")
        print(f"recorded: {self.path}", file=sys.stderr)
