"""Bad input at volume: 10,000 generated bad records mixed into a valid stream, through the broker.

Every bad record (random bytes, empty, huge, invalid UTF-8, deeply nested JSON, NaN/Infinity,
control characters, very long or undecodable keys, JSON without a usable token field) must land in
the dead-letter topic exactly once, untouched, with a reason its kind allows and its source
topic/partition/offset. The valid records between them must get predictions equal, field for field
apart from the input offset, to those of a clean run that sees only the valid records. The
consumer's peak memory must stay within a fixed margin of the clean run's.

`BAD_PAYLOADS` (default 10,000) and `BAD_SEED` change the size and the draw.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaProducer

from consumer.records import HEADER_PREFIX, REASONS
from tests.consumer_harness import ConsumerProcess, read_all, seed_tokens
from tests.test_consumer_service import Topics

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

BAD = int(os.environ.get("BAD_PAYLOADS", "10000"))
VALID = 3000
MAX_VALUE_BYTES = 65_536  # large enough for deeply nested JSON to reach the parser
MAX_KEY_BYTES = 256
TOPIC_LIMIT_BYTES = 1_048_000  # just under Kafka's default max.message.bytes (1,048,588 per batch)
MEMORY_MARGIN_BYTES = 256 * 1024 * 1024
VALID_KEYS = [b"s1", b"s2", None]

Payload = tuple[bytes | None, bytes | None, frozenset[str]]  # key, value, reasons it may get


def _json(token: str) -> bytes:
    return json.dumps({"token": token}).encode()


def _random_bytes(rng: random.Random) -> Payload:
    return b"s1", rng.randbytes(rng.randint(1, 300)), frozenset(REASONS)


def _empty(rng: random.Random) -> Payload:  # a key: kafka-python sends no null key with a null value
    return b"s1", rng.choice([None, b"", b" ", b"\n\t \r\n"]), frozenset({"empty"})


def _huge(rng: random.Random) -> Payload:
    size = rng.randint(MAX_VALUE_BYTES + 1, TOPIC_LIMIT_BYTES)  # up to what the input topic accepts
    return b"s2", (b'{"token": "' + b"4" * size + b'"}'), frozenset({"oversized_value"})


def _invalid_utf8(rng: random.Random) -> Payload:
    junk = rng.choice([b"\xff", b"\xfe\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
    return None, b'{"token": "' + junk + b'"}', frozenset({"invalid_utf8"})


def _deeply_nested(rng: random.Random) -> Payload:
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    depth = rng.randint(2_000, (MAX_VALUE_BYTES - 32) // len(opener + closer))  # within the size limit
    return (
        b"s1",
        ('{"token": ' + opener * depth + "1" + closer * depth + "}").encode(),
        frozenset({"invalid_json"}),
    )


def _nan_infinity(rng: random.Random) -> Payload:
    constant = rng.choice(["NaN", "Infinity", "-Infinity", "[NaN]", '{"x": Infinity}'])
    return b"s2", f'{{"token": {constant}}}'.encode(), frozenset({"invalid_json"})


def _control_characters(rng: random.Random) -> Payload:
    char = chr(rng.choice([*range(0, 9), *range(11, 32), 127, *range(128, 160)]))
    escaped = json.dumps({"token": f"4{char}8"}).encode()  # JSON-escaped: decodes to a control char
    raw = b'{"token": "4' + char.encode() + b'8"}'  # raw control characters: invalid JSON, or not
    return None, rng.choice([escaped, raw]), frozenset({"control_characters", "invalid_json"})


def _long_key(rng: random.Random) -> Payload:
    return b"k" * rng.randint(MAX_KEY_BYTES + 1, 20_000), _json("4"), frozenset({"oversized_key"})


def _invalid_key(rng: random.Random) -> Payload:
    return b"s\xff" + rng.randbytes(3), _json("4"), frozenset({"invalid_key"})


def _no_token(rng: random.Random) -> Payload:
    value, reason = rng.choice(
        [
            (b'{"other": "4"}', "missing_field"),
            (b"[1, 2, 3]", "missing_field"),
            (b'"4"', "missing_field"),
            (b"4", "missing_field"),
            (b'{"token": [true]}', "invalid_field"),  # true and 1.5 are tokens, as documented
            (b'{"token": null}', "invalid_field"),
            (b'{"token": -1e999}', "invalid_field"),
            (b'{"token": 1e999}', "invalid_field"),
            (b'{"token": ["4"]}', "invalid_field"),
            (b'{"token": {"t": "4"}}', "invalid_field"),
            (b'{"token": "   "}', "empty"),
            (b'{"token": "4"', "invalid_json"),
            (b"\xef\xbb\xbf" + _json("4"), "invalid_json"),  # a byte order mark is not JSON
        ]
    )
    return b"s1", value, frozenset({reason})


KINDS: list[tuple[Callable[[random.Random], Payload], float]] = [
    (_random_bytes, 0.25),
    (_empty, 0.08),
    (_huge, 0.01),
    (_invalid_utf8, 0.08),
    (_deeply_nested, 0.08),
    (_nan_infinity, 0.08),
    (_control_characters, 0.12),
    (_long_key, 0.08),
    (_invalid_key, 0.07),
    (_no_token, 0.15),
]


def generate(rng: random.Random) -> Iterator[Payload]:
    kinds, weights = zip(*KINDS, strict=True)
    for kind in kinds:  # every kind at least once, whatever the draw
        yield kind(rng)
    for _ in range(BAD - len(kinds)):
        yield rng.choices(kinds, weights)[0](rng)


def send_all(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes | None]]) -> list[int]:
    """Publish in order (idempotent producer: no reordering on retries); return their offsets."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20, max_request_size=2**21
    )
    try:
        futures = [producer.send(topic, key=key, value=value, partition=0) for key, value in records]
        producer.flush(timeout=120)
        return [future.get(timeout=60).offset for future in futures]
    finally:
        producer.close(timeout=10)


def peak_rss_bytes(process: ConsumerProcess) -> int:
    status = Path(f"/proc/{process.proc.pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def _without_offset(record: Any) -> dict[str, Any]:
    document = json.loads(record.value)
    document.pop("offset")
    return {**document, "_key": record.key}


def test_ten_thousand_bad_records_all_reach_the_dead_letter_topic_and_change_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("BAD_SEED", "11")))
    valid: list[tuple[bytes | None, bytes | None]] = [
        (VALID_KEYS[i % 3], _json(token)) for i, token in enumerate(seed_tokens(VALID))
    ]
    bad = list(generate(rng))
    mixed: list[tuple[bytes | None, bytes | None, frozenset[str] | None]] = [
        (key, value, None) for key, value in valid
    ]
    for key, value, reasons in bad:  # bad records at random places; the valid ones keep their order
        mixed.insert(rng.randint(0, len(mixed)), (key, value, reasons))

    dirty, clean = Topics(make_topic, unique_name), Topics(make_topic, unique_name)
    dirty.dead = unique_name("dlq")  # created by the consumer: it must take records at the input's limit
    offsets = send_all(kafka_bootstrap, dirty.input, [(k, v) for k, v, _ in mixed])
    send_all(kafka_bootstrap, clean.input, valid)
    options = (
        "--value-format", "json", "--value-field", "token",
        "--max-value-bytes", str(MAX_VALUE_BYTES), "--max-key-bytes", str(MAX_KEY_BYTES),
    )  # fmt: skip
    processes = {
        "dirty": ConsumerProcess(kafka_bootstrap, tmp_path / "dirty.log", *dirty.args(*options)),
        "clean": ConsumerProcess(kafka_bootstrap, tmp_path / "clean.log", *clean.args(*options)),
    }
    peaks = {}
    try:
        dirty_out = read_all(kafka_bootstrap, dirty.output, VALID, timeout_s=600)
        dead = read_all(kafka_bootstrap, dirty.dead, BAD, timeout_s=300, max_partition_fetch_bytes=2**21)
        clean_out = read_all(kafka_bootstrap, clean.output, VALID, timeout_s=300)
        peaks = {name: peak_rss_bytes(process) for name, process in processes.items()}
    finally:
        codes = {name: process.stop() for name, process in processes.items()}
    assert codes == {"dirty": 0, "clean": 0}, processes["dirty"].log()[-3000:]

    expected = {offset: entry for offset, entry in zip(offsets, mixed, strict=True) if entry[2] is not None}
    by_offset: dict[int, list[Any]] = {}
    for record in dead:
        headers = dict(record.headers)
        by_offset.setdefault(int(headers[HEADER_PREFIX + "offset"]), []).append(record)
    assert sorted(by_offset) == sorted(expected), "dead letters missing or not from a bad record"
    assert all(len(records) == 1 for records in by_offset.values()), "a bad record dead-lettered twice"
    wrong = []
    for offset, (key, value, allowed) in expected.items():
        reasons = allowed or frozenset()
        record = by_offset[offset][0]
        headers = dict(record.headers)
        reason = headers[HEADER_PREFIX + "reason"].decode()
        intact = (record.key, record.value) == (key, value)
        where = (headers[HEADER_PREFIX + "topic"].decode(), headers[HEADER_PREFIX + "partition"])
        if not intact or reason not in reasons or where != (dirty.input, b"0"):
            wrong.append((offset, reason, sorted(reasons), intact, where))
    assert not wrong, f"{len(wrong)} dead letters wrong, first: {wrong[:3]}"

    logs = {name: process.log()[-3000:] for name, process in processes.items()}
    assert len(dirty_out) == len(clean_out) == VALID, logs
    valid_offsets = [offset for offset, entry in zip(offsets, mixed, strict=True) if entry[2] is None]
    assert [json.loads(r.value)["offset"] for r in dirty_out] == valid_offsets
    differing = [
        i
        for i, (a, b) in enumerate(zip(dirty_out, clean_out, strict=True))
        if _without_offset(a) != _without_offset(b)
    ]
    assert not differing, f"{len(differing)} predictions differ from the clean run's, first #{differing[0]}"

    growth = peaks["dirty"] - peaks["clean"]
    reasons_seen = sorted({dict(r.headers)[HEADER_PREFIX + "reason"].decode() for r in dead})
    print(
        "bad input summary:",
        json.dumps(
            {
                "bad": len(expected),
                "valid": VALID,
                "dead_letters": len(dead),
                "reasons": reasons_seen,
                "peak_rss_dirty_mb": round(peaks["dirty"] / 2**20),
                "peak_rss_clean_mb": round(peaks["clean"] / 2**20),
            }
        ),
    )
    assert growth < MEMORY_MARGIN_BYTES, f"peak RSS {growth / 2**20:.0f} MiB above the clean run's"


def test_a_record_at_the_topic_size_limit_is_dead_lettered_without_its_value(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    # A dead-letter topic created beforehand with Kafka's default limit, like the input topic: the
    # largest input record plus our headers cannot fit. Sending it anyway failed every transaction.
    topics = Topics(make_topic, unique_name)
    at_limit = b"4" * 1_048_480
    records: list[tuple[bytes | None, bytes | None]] = [(b"s1", at_limit), (b"s1", b"x" * 2000)]
    records += [(b"s1", token.encode()) for token in seed_tokens(50)]
    send_all(kafka_bootstrap, topics.input, records)
    consumer = ConsumerProcess(kafka_bootstrap, tmp_path / "consumer.log", *topics.args())
    try:
        out = read_all(kafka_bootstrap, topics.output, 50, timeout_s=300)
        dead = read_all(kafka_bootstrap, topics.dead, 2, timeout_s=60, max_partition_fetch_bytes=2**21)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert [json.loads(r.value)["offset"] for r in out] == list(range(2, 52))
    assert [(r.key, dict(r.headers)[HEADER_PREFIX + "offset"]) for r in dead] == [
        (b"s1", b"0"),
        (b"s1", b"1"),
    ]
    omitted, kept = dead
    assert omitted.value is None
    assert dict(omitted.headers)[HEADER_PREFIX + "value-omitted-bytes"] == str(len(at_limit)).encode()
    assert dict(omitted.headers)[HEADER_PREFIX + "reason"] == b"oversized_value"
    assert kept.value == b"x" * 2000
    assert HEADER_PREFIX + "value-omitted-bytes" not in dict(kept.headers)
    assert "dead letter too large" in consumer.log()
    assert "transaction failed" not in consumer.log()
