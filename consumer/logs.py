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

__all__ = ["JsonFormatter", "TextFormatter", "fields", "setup"]

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


def setup(log_format: str, level: str) -> None:
    """Log to stderr; kafka-python's own chatter only from WARNING up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("kafka").setLevel(max(logging.WARNING, logging.getLevelName(level)))
