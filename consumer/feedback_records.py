"""Records of the feedback topic: a reader's mark on an anomaly, and its decoding.

Topic `--feedback-topic` (default ``sequence-feedback``), keyed like the input (the stream's
key), so that a mark lands on the partition of the input it names. The value is JSON:

    {"offset": 1234, "label": "normal"}

`offset` is the input record's offset (the anomaly record's ``offset``), `label` is
``normal`` (a false alarm: this transition is normal) or ``anomaly`` (confirmed). With
--key-field the stream's key may be given as ``"key"`` in the value instead of the record key.
A mark that cannot be decoded, or names an input its learner no longer holds, is a dead letter
with its reason (`consumer.core.feedback.FeedbackError`).

>>> decode_mark(b"user-1", b'{"offset": 7, "label": "normal"}')
Mark(key='user-1', offset=7, normal=True)
>>> decode_mark(None, b'{"offset": 7, "label": "confirmed", "key": "k"}')
Mark(key='k', offset=7, normal=False)
>>> decode_mark(b"k", b'{"offset": -1, "label": "normal"}')
Rejected(reason='feedback_invalid', detail='offset must be a whole number >= 0, got -1')
>>> encode_mark(7, "normal")
b'{"offset":7,"label":"normal"}'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from consumer.records import Rejected

__all__ = ["LABELS", "Mark", "decode_mark", "encode_mark"]

LABELS = {"normal": True, "anomaly": False, "confirmed": False}
INVALID = "feedback_invalid"
MAX_BYTES = 64 * 1024


@dataclass(frozen=True)
class Mark:
    """A reader's mark: the input `offset` of stream `key` is normal, or a confirmed anomaly."""

    key: str | None
    offset: int
    normal: bool


def decode_mark(key: bytes | None, value: bytes | None) -> Mark | Rejected:
    """The mark of a feedback record, or why it is not one."""
    if value is None or len(value) > MAX_BYTES:
        return Rejected(INVALID, f"a mark is a JSON object of at most {MAX_BYTES} bytes")
    try:
        document: Any = json.loads(value)
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejected(INVALID, f"not JSON: {exc}")
    if not isinstance(document, dict):
        return Rejected(INVALID, 'a mark is a JSON object: {"offset": N, "label": "normal" or "anomaly"}')
    offset, label = document.get("offset"), document.get("label")
    if type(offset) is not int or offset < 0:
        return Rejected(INVALID, f"offset must be a whole number >= 0, got {offset!r}")
    if label not in LABELS:
        return Rejected(INVALID, f"label must be 'normal' or 'anomaly', got {label!r}")
    stream = document.get("key")
    if stream is not None and not isinstance(stream, str):
        return Rejected(INVALID, f"key must be a string, got {stream!r}")
    if stream is None and key is not None:
        try:
            stream = key.decode()
        except UnicodeDecodeError:
            return Rejected(INVALID, "the record key is not UTF-8")
    return Mark(stream, offset, LABELS[label])


def encode_mark(offset: int, label: str, key: str | None = None) -> bytes:
    """A feedback record's value (`key` only for streams keyed by a value field)."""
    document: dict[str, Any] = {"offset": offset, "label": label}
    if key is not None:
        document["key"] = key
    return json.dumps(document, separators=(",", ":")).encode()
