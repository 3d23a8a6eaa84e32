"""The service's record formats: any bytes decode to a token or a named reason, never an exception."""

from __future__ import annotations

import json
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from consumer.core.prediction import Prediction
from consumer.records import (
    REASONS,
    Decoder,
    Rejected,
    dead_letter_headers,
    encode_anomaly,
    encode_prediction,
    is_anomaly,
)

TEXT = Decoder("text", "", max_value_bytes=64, max_key_bytes=16)
JSON = Decoder("json", "token", max_value_bytes=256, max_key_bytes=16)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


def _check(result: tuple[str | None, str] | Rejected, max_value_bytes: int) -> None:
    if isinstance(result, Rejected):
        assert result.reason in REASONS
        assert result.detail
        return
    key, token = result
    assert token
    assert token == token.strip()
    assert len(token.encode()) <= max_value_bytes
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in token)
    assert key is None or (key and len(key.encode()) <= 16)


@settings(max_examples=300)
@given(key=st.none() | st.binary(max_size=24), value=st.none() | st.binary(max_size=96))
def test_any_bytes_decode_to_a_token_or_a_reason(key: bytes | None, value: bytes | None) -> None:
    _check(TEXT.decode(key, value), 64)
    _check(JSON.decode(key, value), 256)


@settings(max_examples=300)
@given(document=json_values)
def test_any_json_document_decodes_to_a_token_or_a_reason(document: object) -> None:
    value = json.dumps(document).encode()
    _check(JSON.decode(None, value), 256)
    _check(JSON.decode(None, json.dumps({"token": document}).encode()), 256)


@given(token=st.text(min_size=1, max_size=20).filter(lambda t: t.strip() == t and t.isprintable()))
def test_printable_tokens_survive_both_formats(token: str) -> None:
    assert TEXT.decode(b"k", token.encode()) == ("k", token)
    assert JSON.decode(None, json.dumps({"token": token}).encode()) == (None, token)


def test_nesting_and_non_finite_numbers_are_refused() -> None:
    deep = Decoder("json", "token", max_value_bytes=100_000, max_key_bytes=16)
    assert isinstance(deep.decode(None, b"[" * 50_000 + b"]" * 50_000), Rejected)
    for constant in (b"NaN", b"Infinity", b"-Infinity"):
        rejected = JSON.decode(None, b'{"token": ' + constant + b"}")
        assert isinstance(rejected, Rejected)
        assert rejected.reason == "invalid_json"


def test_dead_letter_headers_keep_the_originals_and_name_the_source() -> None:
    headers = dead_letter_headers(
        Rejected("empty", "blank value"), "in", 2, 41, [("trace", b"abc"), ("x", None)]
    )
    assert headers[:2] == [("trace", b"abc"), ("x", b"")]
    assert dict(headers)["lstm-stream.dead-letter.offset"] == b"41"


def test_prediction_json_is_byte_stable() -> None:
    p = Prediction("k", "4", 0.5, 3, None, "4", 0.1, "8", 0.25, None, None, top=(("4", 0.5), (None, 0.25)))
    one = encode_prediction(p, 0, 1)
    assert one == encode_prediction(p, 0, 1)
    assert json.loads(one) == {
        "key": "k",
        "partition": 0,
        "offset": 1,
        "predicted": "4",
        "probability": 0.5,
        "model_step": 3,
        "previous_hit": None,
        "baseline": "4",
        "lstm": "8",
        "lstm_probability": 0.25,
        "top": [{"token": "4", "probability": 0.5}, {"token": None, "probability": 0.25}],
        "surprise_bits": None,
        "rank": None,
    }


def test_an_anomaly_is_a_rank_past_g_and_its_record_names_its_source() -> None:
    p = Prediction("k", "4", 0.9, 7, False, "4", 0.1, "4", 0.9, False, False, surprise_bits=9.5, rank=3)
    assert [is_anomaly(p, g) for g in (0, 1, 2, 3)] == [False, True, True, False]
    first = Prediction("k", "4", 0.9, 1, None, "4", 0.1, "4", 0.9, None, None)
    assert not is_anomaly(first, 1)  # a key's first message has nothing to be compared with
    assert json.loads(encode_anomaly(p, "x", "in", 2, 41, 1)) == {
        "key": "k",
        "token": "x",
        "topic": "in",
        "partition": 2,
        "offset": 41,
        "rank": 3,
        "surprise_bits": 9.5,
        "top_g": 1,
        "model_step": 7,
    }


KEYED = Decoder("json", "event.type", max_value_bytes=256, max_key_bytes=16, key_field="user.id")


any_text = st.text(st.characters(exclude_categories=()), max_size=8)  # lone surrogates too


@settings(max_examples=300)
@given(document=json_values, user=json_values | any_text, event=json_values | any_text)
def test_any_event_decodes_to_a_keyed_token_or_a_reason(
    document: object, user: object, event: object
) -> None:
    _check(KEYED.decode(b"\xff", json.dumps(document).encode()), 256)
    value = json.dumps({"user": {"id": user}, "event": {"type": event}}).encode()
    _check(KEYED.decode(None, value), 256)


def test_nested_paths_and_the_key_field() -> None:
    event = {"user": {"id": 7}, "event": {"type": "click", "page": "/cart"}}
    # The record key is not read with --key-field: not even an undecodable one is a problem.
    assert KEYED.decode(b"\xff\xfe", json.dumps(event).encode()) == ("7", "click")
    page = Decoder("json", "event.page", 256, 16, key_field="user.id")
    assert page.decode(None, json.dumps(event).encode()) == ("7", "/cart")
    dotted = Decoder("json", r"labels.app\.kubernetes\.io/name", 256, 16)
    value = {"labels": {"app.kubernetes.io/name": "checkout"}}
    assert dotted.decode(b"k", json.dumps(value).encode()) == ("k", "checkout")
    listed = Decoder("json", "items.1.sku", 256, 16)
    assert listed.decode(None, b'{"items": [{"sku": "a"}, {"sku": "b"}]}') == (None, "b")


def test_numbers_and_booleans_are_tokens_in_one_way() -> None:
    for raw, token in ((b"7", "7"), (b"7.0", "7"), (b"7e0", "7"), (b"0.5", "0.5"), (b"true", "true")):
        assert JSON.decode(None, b'{"token": %s}' % raw) == (None, token)
        event = b'{"user": {"id": %s}, "event": {"type": "x"}}' % raw
        assert KEYED.decode(None, event) == (token, "x")


def test_records_without_the_fields_are_rejected_with_their_reason() -> None:
    event = b'{"user": {"id": 1}, "event": {"type": %s}}'
    user = b'{"user": {"id": %s}, "event": {"type": "x"}}'
    cases = {
        b'{"event": {"type": "click"}}': ("missing_key_field", "no user.id in the JSON value"),
        user % b"null": ("invalid_key_field", "user.id is null, not a token"),
        user % b'""': ("missing_key_field", "user.id is an empty string"),
        user % b'"a-key-of-17-bytes"': ("oversized_key", "17 bytes > 16"),
        b'{"user": {"id": 1}, "event": {}}': ("missing_field", "no event.type in the JSON value"),
        event % b'{"a": 1}': ("invalid_field", "event.type is an object, not a token"),
        event % b"[1]": ("invalid_field", "event.type is an array, not a token"),
        b'{"user": {"id": 1}, "event": "click"}': ("missing_field", "no event.type in the JSON value"),
        b"[1, 2]": ("missing_key_field", "no user.id in the JSON value"),
        user % b'"\\ud800"': ("invalid_key_field", "the key holds control characters"),
        event % b'"\\udfff"': ("control_characters", "the token holds control characters"),
        event % b"-1e999": ("invalid_field", "event.type is an infinite number, not a token"),
    }
    for value, (reason, detail) in cases.items():
        assert KEYED.decode(None, value) == Rejected(reason, detail), value


def test_the_producers_json_is_read_with_the_consumers_defaults() -> None:
    from consumer.settings import RunSettings
    from producer.publisher import encode_value
    from producer.settings import ProducerSettings

    consumer, producer = RunSettings(value_format="json"), ProducerSettings(value_format="json")
    decoder = Decoder("json", consumer.value_field, consumer.max_value_bytes, consumer.max_key_bytes)
    for token in ("4", "dé", "/cart?id=7"):
        assert decoder.decode(b"k", encode_value(token, "json", producer.value_field)) == ("k", token)
