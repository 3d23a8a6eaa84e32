"""What the producer tells its user while it runs: counts, pacing, a progress bar or rate lines.

>>> tally = Tally()
>>> tally.sent += 3; tally.delivered(None); tally.failed(TimeoutError("no ack"))
>>> (tally.pending, tally.first_error)
(1, 'TimeoutError: no ack')
>>> print(summary(Stats(sent=10, delivered=10, failed=0, seconds=2.0)))
lstm-producer: sent 10, delivered 10, failed 0 in 2.00 s (5.0 msgs/s)
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from tqdm import tqdm

__all__ = ["Pacer", "Progress", "Stats", "Tally", "summary"]


class Tally:
    """Counts of sent, delivered and failed messages; the callbacks run on Kafka's sender thread."""

    def __init__(self) -> None:
        self.sent = 0  # only the sending thread writes it
        self.ok = 0
        self.bad = 0
        self.first_error = ""
        self._lock = threading.Lock()

    def delivered(self, _metadata: Any) -> None:
        with self._lock:
            self.ok += 1

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            self.bad += 1
            if not self.first_error:
                text, name = str(exc), type(exc).__name__
                # kafka-python's errors already start with their class name
                self.first_error = text if text.startswith(name) else f"{name}: {text}"

    @property
    def pending(self) -> int:
        """Sent but neither delivered nor failed yet."""
        return self.sent - self.ok - self.bad


@dataclass(frozen=True)
class Stats:
    """The outcome of a run."""

    sent: int
    delivered: int
    failed: int
    seconds: float
    error: str = ""  # why the run stopped early, if it did
    first_failure: str = ""
    stopped_by: str = ""  # the signal's name when one stopped it

    @property
    def unconfirmed(self) -> int:
        return self.sent - self.delivered - self.failed

    @property
    def msgs_per_s(self) -> float:
        return self.delivered / self.seconds if self.seconds > 0 else 0.0

    @property
    def ok(self) -> bool:
        """Every message sent was delivered, and nothing stopped the run but its end or a signal."""
        return not self.error and self.failed == 0 and self.delivered == self.sent


def summary(stats: Stats) -> str:
    line = (
        f"lstm-producer: sent {stats.sent}, delivered {stats.delivered}, failed {stats.failed}"
        f" in {stats.seconds:.2f} s ({stats.msgs_per_s:.1f} msgs/s)"
    )
    if stats.unconfirmed:
        line += f", {stats.unconfirmed} unconfirmed"
    if stats.stopped_by:
        line += f"; stopped by {stats.stopped_by}"
    if stats.first_failure:
        line += f"\nlstm-producer: first delivery failure: {stats.first_failure}"
    return line


class Pacer:
    """Spaces messages `1/rate` apart; after a stall it resumes the pace rather than bursting.

    >>> now = [0.0]
    >>> pacer = Pacer(10, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    >>> for _ in range(3):
    ...     pacer.wait()
    >>> round(now[0], 3)
    0.2
    """

    MAX_LAG_S = 1.0  # later than this behind schedule: start a new schedule, do not catch up

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self.clock, self.sleep = clock, sleep
        self.next_at: float | None = None

    def wait(self) -> None:
        if not self.interval:
            return
        now = self.clock()
        if self.next_at is None or now - self.next_at > self.MAX_LAG_S:
            self.next_at = now
        elif self.next_at > now:
            self.sleep(self.next_at - now)
        self.next_at += self.interval


class Progress:
    """A tqdm bar when the total is known, else a rate line every `interval_s`; nothing when quiet.

    The bar needs a terminal: redrawn into a log file (docker logs) it would flood it, so there
    the rate lines stand in for it.
    """

    def __init__(
        self,
        total: int | None,
        *,
        quiet: bool,
        interval_s: float,
        out: TextIO,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.out, self.clock, self.interval_s, self.total = out, clock, interval_s, total
        use_bar = not quiet and total is not None and out.isatty()
        self.bar = tqdm(total=total, unit="msg", file=out, leave=True) if use_bar else None
        self.lines = not quiet and not use_bar
        self.last_at = self.clock()
        self.last_sent = 0

    def update(self, tally: Tally) -> None:
        """Called after each message sent."""
        if self.bar is not None:
            self.bar.update(1)
        elif self.lines and self.clock() - self.last_at >= self.interval_s:
            self._line(tally)

    def _line(self, tally: Tally) -> None:
        now = self.clock()
        rate = (tally.sent - self.last_sent) / max(now - self.last_at, 1e-9)
        sent = f"{tally.sent}" if self.total is None else f"{tally.sent}/{self.total}"
        line = f"lstm-producer: sent {sent} ({rate:.1f} msgs/s), delivered {tally.ok}, failed {tally.bad}"
        print(line, file=self.out, flush=True)
        self.last_at, self.last_sent = now, tally.sent

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
