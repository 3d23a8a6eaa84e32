"""Streams shaped like what users send, for the learner's tests and `bench/quality.py`.

Each generator returns ``[(key, token), ...]`` from a seed, and has a few knobs so that a test
can draw other instances of the same kind of stream: the figures must hold for the kind, not
for one sample. Kinds: the seed's periodic pattern (alone, over many keys at random phases,
with noise, switching to another pattern), short interleaved sessions, natural text as
characters, log lines as words (with ids that never repeat across blocks), an endless supply
of distinct ids, a periodic stream whose tokens are renamed over time, and the pattern with
foreign tokens injected and labelled (anomalies); prose as words, entities' interleaved
lifecycles (a package installer's log), and two sources whose best possible hit rate is known
(`Known`): a random order-k source and a Markov clickstream of short sessions.

>>> [t for _, t in seed(5)], len(sessions(200, seed=1)), distinct(2)
(['4', '4', '4', '4', '4'], 200, [(None, 'id-0'), (None, 'id-1')])
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "SEED_UNIT",
    "Known",
    "clickstream",
    "distinct",
    "dpkg_log",
    "drifting_vocabulary",
    "injected",
    "lifecycles",
    "log_lines",
    "order_k",
    "seed",
    "seed_keys",
    "seed_noise",
    "sessions",
    "switch",
    "text",
    "words",
]

Records = list[tuple[str | None, str]]
SEED_UNIT = ["4"] * 6 + ["8"] + ["4"] * 5 + ["8"] + ["4"] * 6 + ["8"] + ["4"] * 6 + ["28"]
OTHER_UNIT = ["4", "4", "8", "4", "28", "8", "8", "4", "4", "4", "28"]  # the same tokens, period 11
LICENCE = Path("/usr/share/common-licenses/GPL-3")  # Debian's base-files: on every Debian machine
# Prose of base-files too, in the order `words` reads it (about 21,000 words and punctuation).
PROSE = tuple(
    Path("/usr/share/common-licenses") / name for name in ("GPL-3", "GFDL-1.3", "Apache-2.0", "MPL-2.0")
)
DPKG_LOG = Path("/var/log/dpkg.log")
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


# -- prose as words, lifecycles, and sources whose optimum is known -------------------------------


def words(n: int, paths: tuple[Path, ...] = PROSE, offset: int = 0) -> Records:
    """`n` words and punctuation marks of prose, lower-cased, from `offset` on (wrapping round):
    a vocabulary of thousands, most tokens rare (Zipf), as in URL paths or product ids."""
    content = " ".join(path.read_text(encoding="utf-8") for path in paths)
    tokens = re.findall(r"[a-z]+(?:'[a-z]+)?|[0-9]+|[^\sa-z0-9]", content.lower())
    return [(None, tokens[(offset + i) % len(tokens)]) for i in range(n)]


# A package's lifecycles in an installer's log, phase by phase (dpkg's words, as its log writes
# them): a run unpacks all its packages, then configures them all, then runs the triggers.
LIFECYCLES = {
    "install": (
        ("install", "status half-installed", "status unpacked"),
        ("configure", "status unpacked", "status half-configured", "status installed"),
    ),
    "upgrade": (
        ("upgrade", "status half-configured", "status unpacked", "status half-installed", "status unpacked"),
        ("configure", "status unpacked", "status half-configured", "status installed"),
    ),
    "remove": (("remove", "status half-configured", "status half-installed", "status config-files"), ()),
    "purge": (("purge", "status config-files", "status not-installed"), ()),
}
TRIGGERS = ("libc-bin", "man-db", "ca-certificates", "mime-support", "shared-mime-info")


def lifecycles(n: int, packages: int = 800, run: tuple[int, int] = (1, 80), seed: int = 0) -> Records:
    """An installer's event log keyed by package: runs of 1-80 packages, each installed,
    upgraded, removed or purged as its state allows; a run unpacks all of them, then configures
    them (some in another order), so each key's lifecycle is spread over the run, interleaved
    with the others'. Packages with triggers get them set pending while others unpack, and
    processed at the end of the run. Tokens are the action or the status, key the package."""
    rnd = random.Random(seed)
    names = [f"pkg{i}-{rnd.choice(['lib', 'python3', 'x11', 'fonts', 'tools'])}" for i in range(packages)]
    state = dict.fromkeys(names, "absent")
    out: Records = []
    while len(out) < n:
        chosen = rnd.sample(names, rnd.randint(*run))
        plans = []
        for name in chosen:
            if state[name] == "absent":
                kind = "install"
            elif state[name] == "config-files":
                kind = rnd.choice(["install", "purge"])
            else:
                kind = rnd.choices(["upgrade", "remove"], weights=[9, 1])[0]
            state[name] = {"install": "installed", "upgrade": "installed", "remove": "config-files"}.get(
                kind, "absent"
            )
            plans.append((name, LIFECYCLES[kind]))
        pending: set[str] = set()
        for name, (unpack, _) in plans:
            for event in unpack:
                out.append((name, event))
                if rnd.random() < 0.05:
                    trigger = rnd.choice(TRIGGERS)
                    if trigger not in pending:
                        pending.add(trigger)
                        out.append((trigger, "status triggers-pending"))
        configure = [plan for plan in plans if plan[1][1]]
        if rnd.random() < 0.3:
            rnd.shuffle(configure)
        for name, (_, then) in configure:
            out.extend((name, event) for event in then)
        for trigger in sorted(pending):
            out += [(trigger, "trigproc"), (trigger, "status half-configured"), (trigger, "status installed")]
    return out[:n]


def dpkg_log(path: Path = DPKG_LOG) -> Records:
    """This machine's own installer log (a stream no one here wrote), as `lifecycles` tokens it:
    key the package (without its architecture), token the action or the status."""
    out: Records = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        fields = line.split()
        if len(fields) < 4 or fields[2] == "startup":
            continue
        if fields[2] == "status" and len(fields) >= 5:
            out.append((fields[4].split(":")[0], f"status {fields[3]}"))
        else:
            out.append((fields[3].split(":")[0], fields[2]))
    return out


@dataclass(frozen=True)
class Known:
    """A stream and, per message, the chance that the best possible predictor (the one that
    knows the source) guesses it right; None for a key's first message, which is not scored."""

    records: Records
    optimal: list[float | None]

    def optimal_hit_rate(self, start: int = 0) -> float:
        """The Bayes-optimal hit rate over the scored messages from `start` on."""
        chances = [p for p in self.optimal[start:] if p is not None]
        return sum(chances) / len(chances)


def _dirichlet(rnd: random.Random, size: int, alpha: float) -> list[float]:
    draws = [rnd.gammavariate(alpha, 1.0) for _ in range(size)]
    total = sum(draws)
    return [d / total for d in draws]


def order_k(n: int, k: int = 3, symbols: int = 8, alpha: float = 1.0, seed: int = 0) -> Known:
    """A random order-k source: after each k symbols, the next is drawn from that context's own
    distribution (Dirichlet(alpha) over `symbols`); the first k are uniform. The best possible
    guess is the context's most likely symbol."""
    rnd = random.Random(seed)
    alphabet = [chr(ord("a") + i) if symbols <= 26 else f"s{i}" for i in range(symbols)]
    table: dict[tuple[str, ...], list[float]] = {}
    out: Records = []
    optimal: list[float | None] = []
    for i in range(n):
        context = tuple(t for _, t in out[-k:]) if i >= k else None
        if context is None:
            weights = [1.0 / symbols] * symbols
        else:
            weights = table.get(context) or table.setdefault(context, _dirichlet(rnd, symbols, alpha))
        optimal.append(None if i == 0 else max(weights))
        out.append((None, rnd.choices(alphabet, weights)[0]))
    return Known(out, optimal)


def clickstream(
    n: int, pages: int = 30, live: int = 40, alpha: float = 0.05, stop: float = 0.4, seed: int = 0
) -> Known:
    """Web sessions, key = session: each a first-order Markov chain over `pages` (each page's
    next-page distribution Dirichlet(alpha), sparse for small alpha), entered by a popular page,
    ending after each click with probability `stop` (1-20 clicks, median 2), `live` sessions
    interleaved. The best possible guess is the current page's most likely next page."""
    rnd = random.Random(seed)
    names = [f"/p/{i}" for i in range(pages)]
    entry = _dirichlet(rnd, pages, 1.0)
    moves = [_dirichlet(rnd, pages, alpha) for _ in range(pages)]
    active: list[tuple[str, int, int]] = []  # (key, current page, clicks left)
    started = 0
    out: Records = []
    optimal: list[float | None] = []
    while len(out) < n:
        while len(active) < live:
            length = 1
            while length < 20 and rnd.random() >= stop:
                length += 1
            active.append((f"session-{seed}-{started}", -1, length))
            started += 1
        slot = rnd.randrange(len(active))
        key, page, left = active[slot]
        if page < 0:
            page, chance = rnd.choices(range(pages), entry)[0], None
        else:
            chance = max(moves[page])
            page = rnd.choices(range(pages), moves[page])[0]
        out.append((key, names[page]))
        optimal.append(chance)
        if left == 1:
            active.pop(slot)
        else:
            active[slot] = (key, page, left - 1)
    return Known(out, optimal)
