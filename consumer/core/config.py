"""The learner's settings: model shape, optimizer, replay, mode. Flags and env vars come from here.

>>> LearnerConfig().window, LearnerConfig().units, LearnerConfig().capacity
(16, 16, 4096)
>>> LearnerConfig(window=0)
Traceback (most recent call last):
...
lstm_stream.settings.ConfigError: --window: must be >= 1, got 0
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from consumer.core.compile_cache import DEFAULT_DIR as DEFAULT_CACHE_DIR
from consumer.core.vocab import RESERVED
from lstm_stream.settings import at_least, check_fields, option, positive_finite

__all__ = ["MODES", "LearnerConfig"]

MODES = ("strict", "relaxed")
MIXED_ORDERS = (0, 1, 2, 3, 4, 8, 12, 16, 24, 32)  # the count orders the mixer reads, where counted
# Those of older snapshots: versions 2 and 3, and version 4 (the mixer had no order 1 then)
MIXED_ORDERS_BEFORE = {3: (0, 2, 4, 8, 12, 16, 24, 32), 4: (0, 2, 3, 4, 8, 12, 16, 24, 32)}
MODEL = "model"


def _cache_dir(text: str) -> str:
    """A directory; `none` (or an empty flag) for no cache: an empty variable counts as unset."""
    return "" if text.strip().lower() == "none" else text


@dataclass(frozen=True)
class LearnerConfig:
    """Everything that shapes a partition's learner. Shared by `run` and `evaluate`."""

    # 16 (64 until snapshot format 6): on every kind of `make bench-quality` the published hit
    # rate and log-loss stayed within a tenth of a point, the count model reading the longer
    # contexts, while a strict message's sequential LSTM steps fell fourfold.
    window: int = option(
        16, "window length L: tokens the LSTM reads per prediction", check=at_least(1), group=MODEL
    )
    units: int = option(16, "LSTM cells", check=at_least(1), group=MODEL)
    embedding_dim: int = option(8, "embedding size of a token id", check=at_least(1), group=MODEL)
    capacity: int = option(
        4096,
        "most tokens the vocabulary holds per partition: it grows from 256, doubling, while its "
        "tokens recur; past it a new token takes the least recently seen one's id",
        check=at_least(1),
        group=MODEL,
    )
    learning_rate: float = option(0.03, "Adam learning rate", check=positive_finite, group=MODEL)
    learning_rate_decay_steps: int = option(
        1000, "learning rate decays as 1/sqrt(1 + step/N); 0 = constant", group=MODEL
    )
    loss_steps: int = option(
        64,
        "trailing window positions trained per step (1 = only the newest token)",
        check=at_least(1),
        group=MODEL,
    )
    replay: int = option(
        2, "extra windows from recent history trained with each step", check=at_least(0), group=MODEL
    )
    replay_buffer: int = option(
        1024, "recent training windows kept for replay", check=at_least(1), group=MODEL
    )
    mode: str = option(
        "strict", "strict: exact per-message semantics; relaxed: batched", choices=MODES, group=MODEL
    )
    seed: int = option(0, "seed of the weights' initialization and of replay sampling", group=MODEL)
    max_keys: int = option(
        10_000,
        "keys kept per partition; least recently used beyond are evicted",
        check=at_least(1),
        group=MODEL,
    )
    baseline_order: int = option(
        4,
        "longest context of the baseline (PPM-C back-off counts, scored beside the LSTM)",
        check=at_least(1),
        group=MODEL,
    )
    context_order: int = option(
        16,
        "longest context the count model keeps for the mixer (every second order above --baseline-order)",
        check=at_least(0),
        group=MODEL,
    )
    baseline_max_contexts: int = option(
        50_000,
        "contexts the count model keeps per partition, short and long each; least recently updated beyond",
        check=at_least(1),
        group=MODEL,
    )
    mixer_learning_rate: float = option(
        0.003,
        "learning rate of the mixer of the LSTM's and the count model's predictions",
        check=positive_finite,
        group=MODEL,
    )
    intra_op_threads: int = option(1, "TensorFlow intra-op threads", check=at_least(0), group=MODEL)
    inter_op_threads: int = option(1, "TensorFlow inter-op threads", check=at_least(0), group=MODEL)
    compile_cache_dir: str = option(
        DEFAULT_CACHE_DIR,
        "compiled programs kept here for the next start (shared safely by processes; none: no cache)",
        parse=_cache_dir,
        group=MODEL,
    )

    def __post_init__(self) -> None:
        check_fields(self)  # made in code too (an embedding program, a snapshot's settings)

    @property
    def trained_positions(self) -> int:
        """loss_steps, at most the window."""
        return min(self.loss_steps, self.window)

    @property
    def count_orders(self) -> tuple[int, ...]:
        """The context lengths the count model counts: 1 to --baseline-order, then every second
        one up to --context-order. Each order is blended with the one below."""
        b = self.baseline_order
        return (*range(1, b + 1), *range(b + 2, self.context_order + 1, 2))

    @property
    def mixed_rows(self) -> tuple[int, ...]:
        """The count rows (0: order 0, r: count_orders[r - 1]) the mixer reads, the last the
        longest: fewer inputs learn faster, and each row already blends the orders below it.
        Orders 1 and 3 are two: a first-order source (a clickstream's Markov chain) and one of
        order 3 are learned as well as counting exactly that order does."""
        return self.mixed_rows_of(MIXED_ORDERS)

    def mixed_rows_of(self, mixed_orders: tuple[int, ...]) -> tuple[int, ...]:
        orders = (0, *self.count_orders)
        wanted = {*mixed_orders, self.baseline_order, orders[-1]}
        return tuple(row for row, order in enumerate(orders) if order in wanted)

    @property
    def baseline_row(self) -> int:
        """The baseline's row among the count model's (row 0 is order 0)."""
        return self.count_orders.index(self.baseline_order) + 1

    @property
    def history(self) -> int:
        """Ids a key keeps: its window, or its longest count context and the entry before it
        (the count model's uids of a key cover as many: `consumer.core.keys.KeyState.uids`)."""
        return max(self.window, self.count_orders[-1] + 1)

    @property
    def vocab_size(self) -> int:
        """Rows of the embedding and classes of the output: PAD, BOS, NEW, then `capacity` tokens."""
        return self.capacity + RESERVED

    def model_fields(self) -> dict[str, Any]:
        """What a snapshot must agree on to be restored (threads and key limits may change)."""
        data = dataclasses.asdict(self)
        for free in ("intra_op_threads", "inter_op_threads", "max_keys", "mode", "compile_cache_dir"):
            data.pop(free)
        return data

    def fingerprint(self) -> str:
        blob = json.dumps(self.model_fields(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]
