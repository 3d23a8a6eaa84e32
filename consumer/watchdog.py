"""A deadline for blocking calls that have none of their own (kafka-python's transaction calls).

`deadline(seconds, what)` arms SIGALRM in the main thread; when it fires, the blocked call is
interrupted (lock waits are interruptible by signals on POSIX) with `WatchdogTimeoutError` naming the
call, so the service fails loudly and restarts cleanly instead of hanging. If the main thread
does not get control back within a grace period (stuck in C code), a thread ends the process
with exit code 70 after logging why: a supervisor restarts it and Kafka fences the zombie.
In any other thread (kafka-python runs rebalance listeners on its IO thread) there is no way to
interrupt the call, so the deadline itself ends the process that way.

>>> import time
>>> try:
...     with deadline(0.05, "a nap"):
...         time.sleep(5)
... except WatchdogTimeoutError as exc:
...     print(exc)
a nap did not finish within 0.05 s
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

__all__ = ["EXIT_WATCHDOG", "WatchdogTimeoutError", "deadline"]

log = logging.getLogger(__name__)
EXIT_WATCHDOG = 70


class WatchdogTimeoutError(RuntimeError):
    """A guarded call outlived its deadline."""


@contextmanager
def deadline(seconds: float, what: str, grace_s: float = 30.0) -> Iterator[None]:
    message = f"{what} did not finish within {seconds:g} s"
    in_main = threading.current_thread() is threading.main_thread()

    def expire(signum: int, frame: FrameType | None) -> None:
        raise WatchdogTimeoutError(message)

    done = threading.Event()

    def last_resort() -> None:
        if not done.wait(seconds + grace_s if in_main else seconds):
            log.critical("%s and the process does not respond: exiting with code %d", message, EXIT_WATCHDOG)
            os._exit(EXIT_WATCHDOG)

    threading.Thread(target=last_resort, name="watchdog", daemon=True).start()
    if not in_main:
        try:
            yield
        finally:
            done.set()
        return
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        done.set()
