"""Streams shaped like what users send, for the learner's tests and `bench/quality.py`.

Each generator returns ``[(key, token), ...]`` from a seed, and has a few knobs so that a test
can draw other instances of the same kind of stream: the figures must hold for the kind, not
for one sample. Kinds: the seed's periodic pattern (alone, over many keys at random phases,
with noise, switching to another pattern), short interleaved sessions, natural text as
characters, log lines as words (with ids that never repeat across blocks), an endless supply
of distinct ids, a periodic stream whose tokens are renamed over time, and the pattern with
foreign tokens injected and labelled (anomalies).

>>> [t for _, t in seed(5)], len(sessions(200, seed=1)), distinct(2)
(['4', '4', '4', '4', '4'], 200, [(None, 'id-0'), (None, 'id-1')])
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "SEED_UNIT",
    "distinct",
    "drifting_vocabulary",
    "injected",
    "log_lines",
    "seed",
    "seed_keys",
    "seed_noise",
    "sessions",
    "switch",
    "text",
]

Records = list[tuple[str | None, str]]
SEED_UNIT = ["4"] * 6 + ["8"] + ["4"] * 5 + ["8"] + ["4"] * 6 + ["8"] + ["4"] * 6 + ["28"]
OTHER_UNIT = ["4", "4", "8", "4", "28", "8", "8", "4", "4", "4", "28"]  # the same tokens, period 11
LICENCE = Path("/usr/share/common-licenses/GPL-3")  # Debian's base-files: on every Debian machine
EVENTS = (
    *("login", "view_home", "search", "view_item", "add_to_cart", "view_cart", "checkout", "pay"),
    *("confirm", "logout", "view_profile", "edit_profile", "save_profile", "open_help", "close_help"),
    *("play", "pause", "resume", "stop", "rate", "share"),
)


def seed(n: int, unit: list[str] = SEED_UNIT, key: str | None = None) -> Records:
    return [(key, unit[i % len(unit)]) for i in range(n)]


def seed_keys(n: int, keys: int = 50, seed: int = 0, unit: list[str] = SEED_UNIT) -> Records:
    """The pattern over `keys` keys, each at a random phase, messages of random keys."""
    rnd = random.Random(seed)
    phase = {f"k{k}": rnd.randrange(len(unit)) for k in range(keys)}
    names = list(phase)
    out: Records = []
    for _ in range(n):
        key = rnd.choice(names)
        out.append((key, unit[phase[key] % len(unit)]))
        phase[key] += 1
    return out


def seed_noise(n: int, noise: float = 0.05, seed: int = 0, unit: list[str] = SEED_UNIT) -> Records:
    """The pattern with each token replaced, with probability `noise`, by a random one of it."""
    rnd = random.Random(seed)
    tokens = sorted(set(unit))
    return [(None, rnd.choice(tokens) if rnd.random() < noise else unit[i % len(unit)]) for i in range(n)]


def switch(n: int, at: int, first: list[str] = SEED_UNIT, then: list[str] = OTHER_UNIT) -> Records:
    """One pattern for `at` messages, then another (over the same tokens unless told)."""
    return seed(at, first) + [(None, then[i % len(then)]) for i in range(n - at)]


def sessions(
    n: int,
    scripts: int = 3,
    live: int = 20,
    lengths: tuple[int, int] = (5, 15),
    branch: float = 0.0,
    seed: int = 0,
) -> Records:
    """Short sessions (each a new key) following one of a few scripts of events, about `live`
    of them interleaved at any time. `branch`: the chance that a step takes another event."""
    rnd = random.Random(seed)
    plans = [[rnd.choice(EVENTS) for _ in range(rnd.randint(*lengths))] for _ in range(scripts)]
    for plan in plans:
        plan[0] = "login"  # sessions start alike: the script shows from the second event on
    active: list[tuple[str, list[str]]] = []
    started = 0
    out: Records = []
    while len(out) < n:
        while len(active) < live:
            plan = [e if rnd.random() >= branch else rnd.choice(EVENTS) for e in rnd.choice(plans)]
            active.append((f"session-{seed}-{started}", plan))
            started += 1
        slot = rnd.randrange(len(active))
        key, plan = active[slot]
        out.append((key, plan.pop(0)))
        if not plan:
            active.pop(slot)
    return out


def text(n: int, path: Path = LICENCE, offset: int = 0) -> Records:
    """`n` characters of a text; a run of whitespace is one "_" (a token can't be blank)."""
    content = re.sub(r"\s+", "_", path.read_text(encoding="utf-8"))
    chars = content[offset : offset + n]
    return [(None, c) for c in chars]


def log_lines(n: int, seed: int = 0, blocks: int = 8) -> Records:
    """HDFS-like log lines as words: each block's events in order, `blocks` blocks interleaved.
    Block ids, sizes and ports are new tokens all the time (the vocabulary never stops growing);
    the words of the templates and a few hosts repeat."""
    rnd = random.Random(seed)
    hosts = [f"/10.250.{rnd.randrange(256)}.{rnd.randrange(256)}" for _ in range(12)]

    def lifecycle() -> list[str]:
        block, size = f"blk_{rnd.randrange(10**12)}", str(rnd.randrange(10**6, 10**8))
        replicas = rnd.sample(hosts, 3)
        lines = [f"Receiving block {block} src: {rnd.choice(hosts)} dest: {h}:50010" for h in replicas]
        lines += [f"Received block {block} of size {size} from {h}" for h in replicas]
        lines += [
            f"BLOCK* NameSystem.addStoredBlock: blockMap updated: {h}:50010 is added to {block}"
            for h in replicas
        ]
        lines += [f"PacketResponder {i} for block {block} terminating" for i in range(3)]
        if rnd.random() < 0.3:
            lines.append(f"Verification succeeded for {block}")
        return lines

    active = [lifecycle() for _ in range(blocks)]
    out: Records = []
    while len(out) < n:
        slot = rnd.randrange(blocks)
        out.extend((None, word) for word in active[slot].pop(0).split())
        if not active[slot]:
            active[slot] = lifecycle()
    return out[:n]


def distinct(n: int) -> Records:
    """Every token new: nothing can be predicted."""
    return [(None, f"id-{i}") for i in range(n)]


def drifting_vocabulary(n: int, period: int = 20, every: int = 25, seed: int = 0) -> Records:
    """A periodic stream of `period` tokens in which, every `every` messages, one position of the
    pattern takes a token never seen before: distinct tokens grow without bound, while the
    tokens in use at any time stay `period`."""
    rnd = random.Random(seed)
    pattern = [f"t{i}" for i in range(period)]
    fresh = period
    out: Records = []
    for i in range(n):
        if i and i % every == 0:
            pattern[rnd.randrange(period)] = f"t{fresh}"
            fresh += 1
        out.append((None, pattern[i % period]))
    return out


FOREIGN: dict[str, Callable[[random.Random], str]] = {
    "distinct": lambda rnd: f"error-{rnd.randrange(10**9)}",  # never the same twice
    "same": lambda rnd: "ERROR",  # one foreign token, again and again
    "five": lambda rnd: rnd.choice(["E1", "E2", "E3", "E4", "E5"]),  # a few kinds of error
}


def injected(
    n: int,
    rate: float = 0.01,
    mode: str = "insert",
    foreign: str = "distinct",
    keys: int = 1,
    seed: int = 0,
    unit: list[str] = SEED_UNIT,
) -> tuple[Records, list[bool]]:
    """The pattern over `keys` keys (at random phases), with foreign tokens injected at `rate`
    (`mode` insert: added between two tokens; replace: taking one's place), and a label per
    record (True: injected). `foreign`: which tokens, see FOREIGN."""
    rnd = random.Random(seed)
    phase = {f"k{k}": rnd.randrange(len(unit)) for k in range(keys)}
    names = list(phase)
    records: Records = []
    labels: list[bool] = []
    while len(records) < n:
        key = rnd.choice(names)
        stream = None if keys == 1 else key
        if rnd.random() < rate:
            records.append((stream, FOREIGN[foreign](rnd)))
            labels.append(True)
            if mode == "replace":
                phase[key] += 1
        else:
            records.append((stream, unit[phase[key] % len(unit)]))
            labels.append(False)
            phase[key] += 1
    return records, labels
