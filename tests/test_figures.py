"""Figures that cannot go stale: every measured figure in README.md and docs/ comes from a file a
benchmark wrote.

The benchmarks write docs/benchmarks/<name>.json (bench/record.py: the result, the date, the
commit, the machine, the load); scripts/figures renders them into docs/benchmarks.md and
README's figures block. Here: the rendering is current (`scripts/figures --check`), each result
file says where it comes from, and no measured figure is typed by hand anywhere else. A number
with a unit of measurement (`msgs/s`, `ms`, `%`, `nats`, `pt`, or a ratio such as `315x`) in the
prose of README.md or docs/*.md is a figure, unless it is code (a setting's value, sample output),
or a target or limit (after `>=`, `at most`, `within`, ...): those are written, not measured.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "docs" / "benchmarks"
# Every document but the generated one: README.md and docs/*.md.
DOCUMENTS = [
    REPO / "README.md",
    *sorted(p for p in (REPO / "docs").glob("*.md") if p.name != "benchmarks.md"),
]
GENERATED = [
    ("<!-- figures:start -->", "<!-- figures:end -->"),
    ("<!-- config-reference:start -->", "<!-- config-reference:end -->"),
]
NUMBER = r"(?<![\w.,])\d[\d,]*(?:\.\d+)?"
FIGURE = re.compile(rf"{NUMBER}(?:\s?(?:msgs/s|msg/s|messages/s|ms|%|nats|pt)(?![\w/])|[x×](?!\w))")
TARGET = re.compile(r"(>=|<=|≥|≤|\bat least|\bat most|\bwithin|\bunder|\bup to)\W*(\w+\W+){0,3}$")


def prose(text: str) -> str:
    """The text a reader takes for statements: without generated blocks, code or comments."""
    for start, end in GENERATED:
        text = re.sub(re.escape(start) + r".*?" + re.escape(end), " ", text, flags=re.S)
    text = re.sub(r"^(```|~~~).*?^\1", " ", text, flags=re.S | re.M)
    text = re.sub(r"<!--.*?-->", " ", text, flags=re.S)
    return re.sub(r"(`+)[^`]*?\1", "`code`", text)


def hand_typed(text: str) -> list[str]:
    """The measured-looking figures of a document's prose, each with the line it is on."""
    found = []
    for line in prose(text).splitlines():
        for match in FIGURE.finditer(line):
            if not TARGET.search(line[: match.start()]):
                found.append(f"{match[0]!r} in: {line.strip()[:160]}")
    return found


def test_the_scanner_tells_figures_from_settings_and_targets() -> None:
    text = """# Speed
The learner runs 2,823 msgs/s, 315x the seed's loop, with a hit rate of 99.9% and 1.479 nats.
Within 3 alarms; p99 at most 150 ms; precision >= 95% is the target.
Set `--commit-interval-ms 100` (`100 ms`); `--rate 0.01` injects 1 in a hundred.
<!-- figures:start -->
- 2,628 msgs/s (380×)
<!-- figures:end -->
```
status: 312.5 msgs/s, hit 98.1%
```
"""
    found = [f.split(" in: ")[0] for f in hand_typed(text)]
    assert found == ["'2,823 msgs/s'", "'315x'", "'99.9%'", "'1.479 nats'"]


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_no_measured_figure_is_typed_by_hand(document: Path) -> None:
    found = hand_typed(document.read_text())
    assert not found, (
        f"{document.relative_to(REPO)} quotes figures no benchmark wrote; let scripts/figures render "
        "them from docs/benchmarks/*.json, or link docs/benchmarks.md:\n" + "\n".join(found)
    )


def test_the_rendered_figures_are_those_of_the_result_files() -> None:
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "figures"), "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_each_result_file_says_what_measured_it_when_where_and_on_what_code() -> None:
    files = sorted(RESULTS.glob("*.json"))
    names = {p.stem for p in files}
    assert {"learner", "consumer-1p", "consumer-2p", "quality", "anomalies", "query", "producer"} <= names
    for path in files:
        record = json.loads(path.read_text())
        assert record["format"] == 1
        assert record["command"].startswith(f"python bench/{record['benchmark'].split('-')[0]}.py"), path
        assert f"--record docs/benchmarks/{path.name}" in record["command"], "written by its make target"
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", record["date"])
        assert {"cpu", "cores", "memory_gb", "system", "python"} <= record["machine"].keys()
        assert len(record["load_average"]["start"]) == len(record["load_average"]["end"]) == 3
        # The code it measured is in this repository's history.
        known = subprocess.run(
            ["git", "cat-file", "-e", f"{record['commit']['hash']}^{{commit}}"], cwd=REPO, timeout=30
        )
        assert known.returncode == 0, f"{path.name}: commit {record['commit']['hash']} is not in the history"
        assert record["result"], path
