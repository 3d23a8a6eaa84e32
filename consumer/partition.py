"""One assigned input partition: its learner, where it stands, and what it has not yet committed.

Contract. `restore` makes a `Partition` (`restored` from a snapshot, `fresh` otherwise); the
processing loop `advance`s it after each learner call; the checkpoint reads `dirty` to choose the
partitions it snapshots and marks them `snapshotted`; at the commit the session hands the staged
predictions to the query endpoint (`take_staged`); `metrics` reads `totals` and the fields. Only
the session's thread changes a Partition, so none of this needs a lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from consumer.core.scoring import PREDICTORS
from consumer.query import Staged

if TYPE_CHECKING:
    from consumer.core.learner import Learner
    from consumer.core.prediction import Prediction

__all__ = ["LOSS_SMOOTHING", "Partition", "learner_totals"]

LOSS_SMOOTHING = 0.01  # weight of the newest training loss in the moving average


def learner_totals(learner: Learner) -> dict[str, int]:
    """The learner's own running totals (restored with it), by the counter they feed."""
    totals = {
        "predictions": learner.messages,
        "scored": learner.score.scored,
        "new_tokens": learner.vocab.new_tokens,
        "recycled": learner.vocab.recycled,
        "evicted": learner.evicted_keys,
    }
    totals.update({f"hits/{name}": learner.scores[name].hits for name in PREDICTORS})
    return totals


@dataclass
class Partition:
    learner: Learner
    next_offset: int  # the next input offset to process
    dirty: bool = False  # changed (processed or reset) since its last snapshot
    lag: int | None = None  # records between next_offset and the partition's end, at the last poll
    consumed: int = 0  # input records processed by this instance (dead letters included)
    loss: float | None = None  # moving average of the training loss
    snapshot_size: int = 0  # bytes of its last snapshot
    counted_from: dict[str, int] = field(default_factory=dict)  # its learner's totals when it came
    # Each key's latest prediction since the last commit: published at the commit (`consumer.query`)
    staged: dict[str | None, Staged] = field(default_factory=dict)
    feedback_offset: int | None = None  # the next feedback record to apply (with --anomaly-top-g)

    @classmethod
    def restored(cls, learner: Learner, offset: int) -> Partition:
        """From a snapshot: its totals so far were counted by the instance that wrote it."""
        return cls(learner, offset, counted_from=learner_totals(learner))

    @classmethod
    def fresh(cls, learner: Learner, offset: int, reset: bool = False) -> Partition:
        """A new learner; `reset` (a refused snapshot replaced) commits its state at once."""
        return cls(learner, offset, dirty=reset)

    def advance(
        self,
        records: Sequence[Any],
        predictions: Sequence[Prediction],
        latest: dict[str | None, Staged],
        lag: int | None,
    ) -> None:
        """After a learner call on `records` (dead letters included), in offset order."""
        if not records:  # a call of feedback records only
            return
        self.next_offset = records[-1].offset + 1
        self.consumed += len(records)
        self.lag = lag
        self.staged.update(latest)
        avg = self.loss
        for p in predictions:
            if p.loss > 0:
                avg = p.loss if avg is None else avg + LOSS_SMOOTHING * (p.loss - avg)
        self.loss = avg

    def snapshotted(self, size: int) -> None:
        """Its snapshot of `size` bytes is in the checkpoint's transaction."""
        self.dirty, self.snapshot_size = False, size

    def take_staged(self) -> dict[str | None, Staged]:
        """The predictions staged since the last commit, handed over once."""
        staged, self.staged = self.staged, {}
        return staged

    def totals(self) -> dict[str, int]:
        """Its learner's totals since this instance took it (the counters' increments)."""
        counted = self.counted_from
        return {
            name: max(value - counted.get(name, 0), 0) for name, value in learner_totals(self.learner).items()
        }
