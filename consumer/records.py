"""The service's message formats: input records in, prediction and dead-letter records out.

Pure functions over bytes, so they are tested without a broker and the Kafka code stays thin.

Input: key = stream id (UTF-8; null is the default stream); value = the UTF-8 token, whitespace
stripped, or with the JSON format the value at --value-field (a dotted path, `event.type`) of
a JSON object, read as `lstm_stream.json_fields` says (strings, numbers, true/false). With
--key-field the stream id is read from the value the same way, and the record key is not used.
Anything else is not a token: `decode` says why, in one of `REASONS`, and the record goes to the
dead-letter topic unchanged, with headers naming the reason and where it came from.

>>> decoder = Decoder(value_format="text", value_field="", max_value_bytes=16, max_key_bytes=8)
>>> decoder.decode(b"user-1", b" 42\\n")
('user-1', '42')
>>> decoder.decode(None, b"\\xff").reason
'invalid_utf8'
>>> Decoder("json", "token", 64, 8).decode(None, b'{"token": 7}')
(None, '7')
>>> Decoder("json", "token", 64, 8).decode(None, b'{"token": NaN}').reason
'invalid_json'
>>> events = Decoder("json", "event.type", 256, 8, key_field="user.id")
>>> events.decode(b"ignored", b'{"user": {"id": 7}, "event": {"type": "click", "page": "/cart"}}')
('7', 'click')
>>> events.decode(None, b'{"event": {"type": "click"}}')
Rejected(reason='missing_key_field', detail='no user.id in the JSON value')
>>> from consumer.core.learner import Prediction
>>> p = Prediction("k", "8", 0.96875, 12, True, "4", 0.1, "8", 0.9375, True, False,
...                top=(("8", 0.96875), (None, 0.03125)), surprise_bits=0.04575, rank=1)
>>> encode_prediction(p, 0, 41)
b'{"key":"k","partition":0,"offset":41,"predicted":"8","probability":0.96875,"model_step":12,\
"previous_hit":true,"baseline":"4","lstm":"8","lstm_probability":0.9375,"top":[{"token":"8",\
"probability":0.96875},{"token":null,"probability":0.03125}],"surprise_bits":0.046,"rank":1}'
>>> is_anomaly(p, 1), is_anomaly(p, 0)
(False, False)
"""

from __future__ import annotations

import json
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lstm_stream.json_fields import MISSING, describe_path, lookup, parse_path, token_text

if TYPE_CHECKING:
    from consumer.core.prediction import Prediction

__all__ = [
    "INSTANCE_HEADER",
    "REASONS",
    "Decoder",
    "Rejected",
    "dead_letter_headers",
    "encode_anomaly",
    "encode_prediction",
    "fit_dead_letter",
    "is_anomaly",
]

REASONS = (
    "empty",  # null, empty or blank value
    "oversized_value",  # more than --max-value-bytes
    "invalid_utf8",  # value bytes that are not UTF-8
    "invalid_json",  # not JSON (NaN and Infinity included), or nested too deeply to parse
    "missing_field",  # JSON, but nothing at --value-field
    "invalid_field",  # the value at --value-field is null, an object or an array
    "control_characters",  # the token holds control characters (line breaks, NUL, ...)
    "oversized_key",  # more than --max-key-bytes
    "invalid_key",  # key bytes that are not UTF-8
    "missing_key_field",  # --key-field: nothing (or an empty string) at that path
    "invalid_key_field",  # --key-field: null, an object or an array there
    # marks on --feedback-topic (`consumer.feedback_records`, `consumer.core.feedback`)
    "feedback_invalid",  # not {"offset": N, "label": "normal" or "anomaly"}
    "feedback_not_held",  # names an input its learner no longer holds among its flagged ones
    "feedback_key_mismatch",  # names an input flagged for another key
    "feedback_confirmed",  # marks normal a transition confirmed as an anomaly
)
HEADER_PREFIX = "lstm-stream.dead-letter."
INSTANCE_HEADER = "lstm-stream.instance"  # on every prediction: the consumer instance that made it
RECORD_OVERHEAD_BYTES = 512  # a record batch's and a record's framing, with room to spare


@dataclass(frozen=True)
class Rejected:
    """Why a record is not a usable token."""

    reason: str
    detail: str


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _has_control(token: str) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cs") for ch in token)


@dataclass(frozen=True)
class Decoder:
    """Turns an input record's key and value into (stream key, token), or says why not."""

    value_format: str
    value_field: str
    max_value_bytes: int
    max_key_bytes: int
    key_field: str = ""  # a path into the JSON value holding the stream key (json only)
    _value_path: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _key_path: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        json_format = self.value_format == "json"
        object.__setattr__(self, "_value_path", parse_path(self.value_field) if json_format else ())
        object.__setattr__(self, "_key_path", parse_path(self.key_field) if self.key_field else ())

    def decode(self, key: bytes | None, value: bytes | None) -> tuple[str | None, str] | Rejected:
        stream = None if self._key_path else self._key(key)
        if isinstance(stream, Rejected):
            return stream
        if value is None or not value.strip():
            return Rejected("empty", "no value" if value is None else "blank value")
        if len(value) > self.max_value_bytes:
            return Rejected("oversized_value", f"{len(value)} bytes > {self.max_value_bytes}")
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected("invalid_utf8", str(exc))
        if self.value_format == "json":
            read = self._json(text)
            if isinstance(read, Rejected):
                return read
            stream = read[0] if self._key_path else stream
            token = read[1]
        else:
            token = text.strip()
        if not token:
            return Rejected("empty", "blank token")
        if _has_control(token):
            return Rejected("control_characters", "the token holds control characters")
        return stream, token

    def _key(self, key: bytes | None) -> str | Rejected | None:
        if key is None:
            return None
        if len(key) > self.max_key_bytes:
            return Rejected("oversized_key", f"{len(key)} bytes > {self.max_key_bytes}")
        try:
            text = key.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected("invalid_key", str(exc))
        return text or None  # an empty key is the default stream, as in the producer

    def _json(self, text: str) -> tuple[str | None, str] | Rejected:
        """(the stream key from --key-field or None, the token) of a JSON value."""
        try:
            document = json.loads(text, parse_constant=_no_constants)
        except (ValueError, RecursionError) as exc:
            return Rejected("invalid_json", str(exc)[:200] or type(exc).__name__)
        stream = None
        if self._key_path:
            found = self._field(document, self._key_path, "key_field")
            if isinstance(found, Rejected):
                return found
            if _has_control(found):  # first: a lone surrogate cannot even be encoded
                return Rejected("invalid_key_field", "the key holds control characters")
            if len(found.encode()) > self.max_key_bytes:
                return Rejected("oversized_key", f"{len(found.encode())} bytes > {self.max_key_bytes}")
            stream = found
        token = self._field(document, self._value_path, "field")
        return token if isinstance(token, Rejected) else (stream, token)

    def _field(self, document: Any, path: tuple[str, ...], kind: str) -> str | Rejected:
        value = lookup(document, path)
        where = describe_path(path)
        if value is MISSING:
            return Rejected(f"missing_{kind}", f"no {where} in the JSON value")
        text = token_text(value)
        if text is None:
            what = {type(None): "null", dict: "an object", list: "an array", float: "an infinite number"}
            return Rejected(f"invalid_{kind}", f"{where} is {what.get(type(value), 'no token')}, not a token")
        if kind == "key_field" and not text:
            return Rejected("missing_key_field", f"{where} is an empty string")
        return text


def dead_letter_headers(
    rejected: Rejected,
    topic: str,
    partition: int,
    offset: int,
    original: Sequence[tuple[str, bytes | None]] = (),
) -> list[tuple[str, bytes]]:
    """The original record's headers, then ours: reason, detail, source topic/partition/offset."""
    ours = {
        "reason": rejected.reason,
        "detail": rejected.detail,
        "topic": topic,
        "partition": str(partition),
        "offset": str(offset),
    }
    kept = [(name, value or b"") for name, value in original if not name.startswith(HEADER_PREFIX)]
    return kept + [(HEADER_PREFIX + name, text.encode()) for name, text in ours.items()]


def fit_dead_letter(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]], limit: int | None
) -> tuple[bytes | None, list[tuple[str, bytes]]]:
    """The dead letter's value and headers: the original value, unless the record would not fit
    the dead-letter topic's `max.message.bytes` (`limit`). Then the value is left out and a header
    gives its size: the original stays in the input topic at the offset the headers name. Without
    this, a record at the input topic's limit plus our headers could never be dead-lettered, and
    its transaction would fail on every retry.

    >>> fit_dead_letter(b"k", b"x" * 600, [], limit=2000)[0] == b"x" * 600
    True
    >>> fit_dead_letter(b"k", b"x" * 600, [("h", b"v")], limit=1000)
    (None, [('h', b'v'), ('lstm-stream.dead-letter.value-omitted-bytes', b'600')])
    """
    size = len(key or b"") + len(value or b"") + sum(len(n) + len(v) for n, v in headers)
    if limit is None or value is None or size + RECORD_OVERHEAD_BYTES <= limit:
        return value, headers
    return None, [*headers, (HEADER_PREFIX + "value-omitted-bytes", str(len(value)).encode())]


def encode_prediction(prediction: Prediction, partition: int, offset: int) -> bytes:
    """The prediction record's value: compact JSON, fields in a fixed order (byte-stable).

    `predicted`/`probability` are the published guess (the mixture), `previous_hit` the outcome
    of the key's previous published guess; `baseline` and `lstm` are the two inputs' own guesses
    for the same next token, so every lift is visible. `top` lists the published distribution's
    most likely classes (null: a token not yet seen); `surprise_bits` and `rank` say how this
    record's input token stood in the key's previous prediction."""
    p = prediction
    document = {
        "key": p.key,
        "partition": partition,
        "offset": offset,
        "predicted": p.predicted,
        "probability": p.probability,
        "model_step": p.model_step,
        "previous_hit": p.previous_hit,
        "baseline": p.baseline,
        "lstm": p.lstm,
        "lstm_probability": p.lstm_probability,
        "top": [{"token": token, "probability": probability} for token, probability in p.top],
        "surprise_bits": None if p.surprise_bits is None else round(p.surprise_bits, 3),
        "rank": p.rank,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def encode_anomaly(
    prediction: Prediction, token: str, topic: str, partition: int, offset: int, g: int
) -> bytes:
    """The anomaly record's value: the input that was not among its key's previous G most
    likely tokens, where it came from, and how far out it was."""
    document = {
        "key": prediction.key,
        "token": token,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "rank": prediction.rank,
        "surprise_bits": None if prediction.surprise_bits is None else round(prediction.surprise_bits, 3),
        "top_g": g,
        "model_step": prediction.model_step,
    }
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode()


def is_anomaly(prediction: Prediction, g: int) -> bool:
    """Not among the key's previous G most likely classes (never for a key's first message)."""
    return g > 0 and prediction.rank is not None and prediction.rank > g
