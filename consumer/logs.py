"""Structured logs: one line per event, as text or JSON, with fields such as partition and offset.

Fields come from ``extra=``: ``log.info("restored", extra=fields(partition=0, offset=42))``.

>>> record = logging.LogRecord("consumer", logging.INFO, "", 0, "restored", None, None)
>>> record.__dict__.update(fields(partition=0, offset=42))
>>> TextFormatter().format(record).split(" ", 1)[1]
'INFO consumer: restored partition=0 offset=42'
>>> json.loads(JsonFormatter().format(record))["offset"]
42
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

__all__ = ["JsonFormatter", "RepeatFilter", "TextFormatter", "fields", "setup"]

FIELDS = "lstm_fields"


def fields(**values: Any) -> dict[str, Any]:
    """The ``extra=`` of a log call carrying structured fields."""
    return {FIELDS: values}


def _timestamp(record: logging.LogRecord) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        extra = getattr(record, FIELDS, {})
        tail = "".join(f" {name}={value}" for name, value in extra.items())
        line = f"{_timestamp(record)} {record.levelname} {record.name}: {record.getMessage()}{tail}"
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        document: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, FIELDS, {}),
        }
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


class RepeatFilter(logging.Filter):
    """Lets a message through once per `interval_s`; the next one that passes says how many
    were held back. kafka-python logs some conditions once per attempt: when a broker of a
    cluster dies it printed "Marking the coordinator dead ..." about 2,000 times in 10 s.

    >>> f, now = RepeatFilter(10.0, clock=lambda: now[0]), [0.0]
    >>> def passes(message: str) -> bool:
    ...     return f.filter(logging.LogRecord("kafka", logging.WARNING, "", 0, message, None, None))
    >>> [passes("coordinator dead") for _ in range(3)], passes("other")
    ([True, False, False], True)
    >>> now[0] = 11.0
    >>> record = logging.LogRecord("kafka", logging.WARNING, "", 0, "coordinator dead", None, None)
    >>> f.filter(record), record.getMessage()
    (True, 'coordinator dead (and 2 more like it in the last 11 s)')
    """

    def __init__(self, interval_s: float = 10.0, clock: Any = time.monotonic, prefix: str = "kafka") -> None:
        super().__init__()
        self.interval_s, self.clock, self.prefix = interval_s, clock, prefix
        self._seen: dict[tuple[str, int, str], list[float]] = {}  # key -> [last passed, held back]

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(self.prefix):
            return True  # our own lines: all of them
        key = (record.name, record.levelno, str(record.msg))  # the template: its arguments vary
        now = self.clock()
        seen = self._seen.get(key)
        if seen is not None and now - seen[0] < self.interval_s:
            seen[1] += 1
            return False
        if seen is not None and seen[1]:
            record.msg = (
                f"{record.getMessage()} (and {int(seen[1])} more like it in the last {now - seen[0]:.0f} s)"
            )
            record.args = None
        if len(self._seen) > 1000:  # messages with ever-changing text: forget, never grow
            self._seen.clear()
        self._seen[key] = [now, 0]
        return True


def setup(log_format: str, level: str) -> None:
    """Log to stderr; kafka-python's own chatter only from WARNING up, each message at most once
    per 10 s (`RepeatFilter`, on the handler: a logger's filter misses its children's records)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
