"""A plain PPM-C predictor, the reference `bench/quality.py` measures the learner against.

Independent of the learner's own count model (`consumer.core.count_model`): its own tables, its own
code, nothing shared but the stream. It is the classic algorithm (Moffat 1990), with nothing
tuned to any stream:

- one model per stream of records, its tables shared by every key, each key's history its own
  (a begin-of-key mark first, so a key's first events have a context of their own);
- for a history, the contexts of orders K, K-1, ..., 0 are visited from the longest; a context
  seen n times with d distinct followers (those not already seen in a longer context: exclusion)
  gives a follower c / (n + d) of the mass left and passes the escape d / (n + d) down;
- past order 0, the mass left is the probability of a token never seen before (the learner's
  NEW class): every message is scored, novel tokens included, and the log-loss stays finite;
- counts are never halved nor forgotten, and the tables grow without bound;
- a key's first message is not scored (nothing of the key is known yet), as in the project.

One pass computes every maximum order K in `orders` at once (the tables do not depend on K), so
`best` can pick the order in hindsight, per figure, as the issue's reference did. Two ways of
scoring (`run(at_publish=...)`): the classic one guesses a key's next token when it comes, from
everything learned until then; under the product's contract the guess is the one made when the
key's previous message was learned, as the product publishes it. On interleaved streams the
classic way sees the other keys' messages in between, which no published guess can. Pure Python:
about 20,000-60,000 messages per second per order, depending on the vocabulary.

>>> r = run([(None, t) for t in "abcabcabcabcabcabc"], orders=(1, 2))
>>> r[2].hits, r[2].scored, round(r[2].log_loss, 3), round(r[1].log_loss, 3)
(14, 17, 0.522, 0.492)
>>> best(r)["ppm_log_loss_order"]
1
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

__all__ = ["Figures", "best", "run"]

BOS = "\x00<begin-of-key>"  # a mark no token can be: tokens are never empty nor start with NUL


@dataclass
class Figures:
    """One maximum order's figures over a stream (`halves`: the same over each half)."""

    order: int
    hits: int = 0
    scored: int = 0
    loss: float = 0.0  # nats
    half_hits: list[int] = field(default_factory=lambda: [0, 0])
    half_scored: list[int] = field(default_factory=lambda: [0, 0])

    @property
    def hit_rate(self) -> float:
        return self.hits / self.scored if self.scored else 0.0

    @property
    def log_loss(self) -> float:
        return self.loss / self.scored if self.scored else 0.0

    def second_half_hit_rate(self) -> float:
        return self.half_hits[1] / self.half_scored[1] if self.half_scored[1] else 0.0


class _Context:
    """A context's followers: counts, and the same grouped by count (each group in the order
    its tokens reached that count) so that the most frequent one not excluded is found without
    reading them all: order 0 holds every token of the stream."""

    __slots__ = ("by_count", "counts", "total")

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.by_count: dict[int, dict[str, None]] = {}
        self.total = 0

    def add(self, token: str) -> None:
        count = self.counts.get(token, 0)
        if count:
            group = self.by_count[count]
            del group[token]
            if not group:
                del self.by_count[count]
        self.counts[token] = count + 1
        self.by_count.setdefault(count + 1, {})[token] = None
        self.total += 1

    def most(self, excluded: set[str]) -> tuple[str, int] | None:
        """The most frequent follower not in `excluded` (ties: the first to reach the count)."""
        for token, count in self.ranked():
            if token not in excluded:
                return token, count
        return None

    def ranked(self) -> Iterator[tuple[str, int]]:
        """The followers, most frequent first (ties: the first to reach the count)."""
        for count in sorted(self.by_count, reverse=True):
            for token in self.by_count[count]:
                yield token, count


def _predict(
    tables: list[dict[tuple[str, ...], _Context]], history: Sequence[str], top: int, target: str
) -> tuple[str | None, float]:
    """(the most probable token, the probability of `target`) under PPM-C with exclusions from
    order `top` down. None as the guess: a never-seen token is the most probable."""
    mass = 1.0
    excluded: set[str] = set()
    best_token: str | None = None
    best_p = -1.0
    target_p = 0.0
    target_seen = False
    for order in range(min(top, len(history)), -1, -1):
        context = tables[order].get(tuple(history[len(history) - order :]) if order else ())
        if context is None:
            continue
        counts = context.counts
        shared = (
            [t for t in excluded if t in counts]
            if len(excluded) < len(counts)
            else [t for t in counts if t in excluded]
        )
        d = len(counts) - len(shared)
        if not d:
            continue
        n = context.total - sum(counts[t] for t in shared)
        scale = mass / (n + d)
        token, count = context.most(excluded) or ("", 0)
        if count * scale > best_p:
            best_token, best_p = token, count * scale
        if not target_seen and target in counts:
            target_p, target_seen = counts[target] * scale, True
        if order:  # nothing below order 0 reads the exclusions
            excluded.update(counts)
        mass *= d / (n + d)
    if not target_seen:
        target_p = mass  # a token never seen: the escape past order 0
    if mass > best_p:
        best_token = None
    return best_token, target_p


def _distribution(
    tables: list[dict[tuple[str, ...], _Context]], history: Sequence[str], top: int
) -> tuple[dict[str, float], float]:
    """The whole PPM-C distribution with exclusions from order `top` down: each token seen
    after one of the contexts, and the mass left for a token never seen."""
    mass = 1.0
    out: dict[str, float] = {}
    for order in range(min(top, len(history)), -1, -1):
        context = tables[order].get(tuple(history[len(history) - order :]) if order else ())
        if context is None:
            continue
        items = [(t, c) for t, c in context.ranked() if t not in out]  # ties as `_predict` breaks them
        if not items:
            continue
        n = sum(c for _, c in items)
        d = len(items)
        for token, count in items:
            out[token] = mass * count / (n + d)
        mass *= d / (n + d)
    return out, mass


def _score(fig: Figures, guess: str | None, p: float, token: str, second_half: bool) -> None:
    hit = guess == token
    fig.hits += hit
    fig.scored += 1
    fig.loss -= math.log(max(p, 1e-300))
    fig.half_hits[second_half] += hit
    fig.half_scored[second_half] += 1


def run(
    records: Iterable[tuple[str | None, str]],
    orders: Sequence[int] = tuple(range(2, 13)),
    at_publish: bool = False,
) -> dict[int, Figures]:
    """Each maximum order's figures over `records` ([(key, token)], in stream order).

    `at_publish`: under the product's contract, each key's guess is made when its previous
    message is learned (what the product publishes then) and scored when its next one comes; a
    token first seen in between counts with the probability the guess gave a never-seen token.
    Otherwise (the classic way) the guess is made when the key's next message comes, from
    everything learned until then, other keys' messages in between included."""
    records = list(records)
    top = max(orders)
    tables: list[dict[tuple[str, ...], _Context]] = [defaultdict(_Context) for _ in range(top + 1)]
    histories: dict[str | None, list[str]] = {}
    published: dict[str | None, dict[int, tuple[str | None, dict[str, float], float]]] = {}
    figures = {k: Figures(k) for k in orders}
    half = len(records) // 2
    for i, (key, token) in enumerate(records):
        history = histories.get(key)
        if history is None:
            history = histories[key] = [BOS]
        elif at_publish:
            for k, (guess, probs, novel) in published[key].items():
                _score(figures[k], guess, probs.get(token, novel), token, i >= half)
        else:
            for k, fig in figures.items():
                guess, p = _predict(tables, history, k, token)
                _score(fig, guess, p, token, i >= half)
        for order in range(min(top, len(history)) + 1):
            tables[order][tuple(history[len(history) - order :]) if order else ()].add(token)
        history.append(token)
        if len(history) > top:
            del history[0]
        if at_publish:
            guesses = {}
            for k in orders:
                probs, novel = _distribution(tables, history, k)
                best_token = max(probs, key=probs.__getitem__) if probs else None
                guess = None if best_token is None or novel > probs[best_token] else best_token
                guesses[k] = (guess, probs, novel)
            published[key] = guesses
    return figures


def best(figures: dict[int, Figures], prefix: str = "ppm") -> dict[str, float | int]:
    """The best order in hindsight for each figure: the highest hit rate, the lowest log-loss."""
    by_hits = max(figures.values(), key=lambda f: (f.hit_rate, -f.order))
    by_loss = min(figures.values(), key=lambda f: (f.log_loss, f.order))
    return {
        f"{prefix}_hit_rate": round(by_hits.hit_rate, 4),
        f"{prefix}_hit_order": by_hits.order,
        f"{prefix}_log_loss": round(by_loss.log_loss, 4),
        f"{prefix}_log_loss_order": by_loss.order,
        f"{prefix}_second_half_hit_rate": round(by_hits.second_half_hit_rate(), 4),
    }
