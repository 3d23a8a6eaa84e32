"""Labelled streams whose normal behaviour changes while they run, for anomaly figures over time.

- `new_normal`: the seed pattern with foreign tokens injected (anomalies, as `injected` with
  "five"), and from `start` on a new event after every pass of one position of the pattern: a
  new step of the workflow, normal from then on (labelled normal).
- `drifting_log`: entities' interleaved lifecycles (keyed by entity), whose workflow drifts
  twice: a step is added, then two steps change places; foreign error events are injected into
  the lifecycles (anomalies). Scored chronologically, segment by segment, as a stream runs.

>>> records, labels = new_normal(200, start=100, seed=1)
>>> records.index((None, "DEPLOY")) >= 100, labels[records.index((None, "DEPLOY"))]
(True, False)
>>> records, labels = drifting_log(3000, seed=1)
>>> len(records) == len(labels) == 3000, 0 < sum(labels) < 60
(True, True)
"""

from __future__ import annotations

import random

from bench.streams import FOREIGN, SEED_UNIT, Records

__all__ = ["NEW_EVENT", "WORKFLOWS", "drifting_log", "new_normal"]

NEW_EVENT = "DEPLOY"

# The workflow of one entity, in three eras: as it starts, with a step added, then with two
# steps in the other order.
WORKFLOWS = (
    ("created", "queued", "started", "checkpoint", "checkpoint", "finished", "archived"),
    ("created", "validated", "queued", "started", "checkpoint", "checkpoint", "finished", "archived"),
    ("created", "validated", "started", "queued", "checkpoint", "checkpoint", "finished", "archived"),
)
ERRORS = ("error disk-full", "error timeout", "error oom", "error denied")


def new_normal(
    n: int, rate: float = 0.01, start: int | None = None, after: int = 12, seed: int = 0
) -> tuple[Records, list[bool]]:
    """One key: the seed pattern with "five" foreign tokens injected at `rate` (anomalies); from
    message `start` (default n // 2) on, `NEW_EVENT` after each pass of the pattern's position
    `after` (normal). Returns the records and a label per record (True: an anomaly)."""
    rnd = random.Random(seed)
    start = n // 2 if start is None else start
    records: Records = []
    labels: list[bool] = []
    position = 0
    while len(records) < n:
        if rnd.random() < rate:
            records.append((None, FOREIGN["five"](rnd)))
            labels.append(True)
            continue
        records.append((None, SEED_UNIT[position % len(SEED_UNIT)]))
        labels.append(False)
        if len(records) >= start and position % len(SEED_UNIT) == after:
            records.append((None, NEW_EVENT))
            labels.append(False)
        position += 1
    return records[:n], labels[:n]


def drifting_log(n: int, live: int = 6, rate: float = 0.005, seed: int = 0) -> tuple[Records, list[bool]]:
    """Interleaved lifecycles of entities (about `live` at a time, each its own key), following
    `WORKFLOWS[0]` for the first third of the stream, `[1]` for the second, `[2]` for the last;
    an error event (one of four) is injected into a lifecycle at `rate` (anomalies)."""
    rnd = random.Random(seed)
    records: Records = []
    labels: list[bool] = []
    active: dict[str, list[str]] = {}
    entity = 0
    while len(records) < n:
        era = min(len(records) * len(WORKFLOWS) // n, len(WORKFLOWS) - 1)
        while len(active) < live:
            active[f"job-{entity}"] = list(WORKFLOWS[era])
            entity += 1
        key = rnd.choice(sorted(active))
        if rnd.random() < rate:
            records.append((key, rnd.choice(ERRORS)))
            labels.append(True)
            continue
        records.append((key, active[key].pop(0)))
        labels.append(False)
        if not active[key]:
            del active[key]
    return records[:n], labels[:n]
