"""Load and long runs: many messages over 1,000 keys through the broker, memory over time, key eviction.

A backlog of `LOAD_MESSAGES` records (CI: 20,000; `make soak-load`: 1,000,000) over `LOAD_KEYS`
stream keys (1,000) in 2 partitions, with Zipf-like key popularity, each key carrying the seed
sequence from its own phase. One consumer works through it with `--max-keys` below the number of
keys per partition, so rarely seen keys are evicted least recently used. The test samples the
consumer's `/metrics` every `LOAD_SAMPLE_S` seconds (messages consumed, resident memory) and checks:

- exactly one prediction per input offset;
- evictions per partition equal an LRU model of the same key sequence (and the keys held equal
  `--max-keys`), as counted by `lstm_stream_evicted_keys_total` / `lstm_stream_stream_keys`;
- resident memory flat once warm: after the first 20% of messages it grows less than
  `RSS_GROWTH_LIMIT_BYTES`.

It prints one `load summary:` JSON line with throughput and the memory series.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from tests.consumer_harness import SEED_UNIT, ConsumerProcess, metric_samples
from tests.test_consumer_service import Topics

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MESSAGES = int(os.environ.get("LOAD_MESSAGES", "20000"))
KEYS = int(os.environ.get("LOAD_KEYS", "1000"))
MAX_KEYS = int(os.environ.get("LOAD_MAX_KEYS", "300"))  # per partition; ~500 keys live in each
SAMPLE_S = float(os.environ.get("LOAD_SAMPLE_S", "2"))
PARTITIONS = 2
RSS_GROWTH_LIMIT_BYTES = 100 * 1024 * 1024
TIMEOUT_S = 600 + MESSAGES / 100  # compile + at least 100 msgs/s


def key_sequence(rng: random.Random) -> list[int]:
    weights = [1 / (rank + 1) for rank in range(KEYS)]  # Zipf, s = 1: a few hot keys, a long tail
    return rng.choices(range(KEYS), weights, k=MESSAGES)


def produce_backlog(bootstrap: str, topic: str, keys: list[int]) -> float:
    """Publish key i's next seed token to partition i % PARTITIONS, in order; return msgs/s."""
    producer = KafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=50, batch_size=256 * 1024
    )
    sent = [0] * KEYS
    started = time.monotonic()
    try:
        for key in keys:
            token = SEED_UNIT[(key + sent[key]) % len(SEED_UNIT)]
            sent[key] += 1
            producer.send(topic, key=b"k%04d" % key, value=token.encode(), partition=key % PARTITIONS)
        producer.flush(timeout=600)
    finally:
        producer.close(timeout=30)
    return len(keys) / (time.monotonic() - started)


def lru_evictions(keys: list[int], partition: int, limit: int) -> tuple[int, int]:
    """(evictions, keys held at the end) of an LRU cache of `limit` keys fed one partition's keys."""
    held: OrderedDict[int, None] = OrderedDict()
    evicted = 0
    for key in keys:
        if key % PARTITIONS != partition:
            continue
        if key in held:
            held.move_to_end(key)
            continue
        held[key] = None
        if len(held) > limit:
            held.popitem(last=False)
            evicted += 1
    return evicted, len(held)


def count_predictions(bootstrap: str, topic: str, timeout_s: float) -> dict[tuple[int, int], int]:
    """(input partition, input offset) -> how many committed predictions name it."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    counts: dict[tuple[int, int], int] = {}
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        end = consumer.end_offsets(partitions)  # transaction markers included: compare positions
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end[tp] for tp in partitions) and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for record in batch:
                    document = json.loads(record.value)
                    where = (document["partition"], document["offset"])
                    counts[where] = counts.get(where, 0) + 1
        return counts
    finally:
        consumer.close()


def test_a_long_backlog_over_many_keys_keeps_memory_flat_and_evicts_lru(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    keys = key_sequence(random.Random(int(os.environ.get("LOAD_SEED", "5"))))
    topics = Topics(make_topic, unique_name, partitions=PARTITIONS)
    produce_rate = produce_backlog(kafka_bootstrap, topics.input, keys)

    consumer = ConsumerProcess(
        kafka_bootstrap, tmp_path / "consumer.log", *topics.args("--max-keys", str(MAX_KEYS))
    )
    samples: list[tuple[float, float, float]] = []  # (seconds, messages consumed, resident bytes)
    started = time.monotonic()
    try:
        consumer.wait_port(timeout_s=300)
        consumed = 0.0
        while consumed < MESSAGES:
            assert consumer.proc.poll() is None, consumer.log()[-3000:]
            assert time.monotonic() - started < TIMEOUT_S, (
                f"{consumed:.0f} of {MESSAGES} in {TIMEOUT_S:.0f} s"
            )
            text = consumer.get("/metrics")[1]
            consumed = sum(metric_samples(text, "lstm_stream_messages_consumed_total").values())
            rss = metric_samples(text, "process_resident_memory_bytes")[""]
            samples.append((time.monotonic() - started, consumed, rss))
            time.sleep(SAMPLE_S)
        final = consumer.get("/metrics")[1]
        counts = count_predictions(kafka_bootstrap, topics.output, timeout_s=300 + MESSAGES / 1000)
    finally:
        code = consumer.stop()
    assert code == 0, consumer.log()[-3000:]

    per_partition = [sum(1 for key in keys if key % PARTITIONS == p) for p in range(PARTITIONS)]
    expected = {(p, offset) for p in range(PARTITIONS) for offset in range(per_partition[p])}
    assert set(counts) == expected, (
        f"missing {len(expected - set(counts))}, extra {len(set(counts) - expected)}"
    )
    duplicated = sum(1 for n in counts.values() if n > 1)
    assert duplicated == 0

    evicted = metric_samples(final, "lstm_stream_evicted_keys_total")
    held = metric_samples(final, "lstm_stream_stream_keys")
    model = {f'{{partition="{p}"}}': lru_evictions(keys, p, MAX_KEYS) for p in range(PARTITIONS)}
    assert evicted == {label: float(n) for label, (n, _) in model.items()}
    assert held == {label: float(n) for label, (_, n) in model.items()}
    assert all(n > 0 for n, _ in model.values())  # the run did exercise eviction

    first = next(s for s in samples if s[1] > 0)
    last = next(s for s in samples if s[1] >= MESSAGES)
    warm = [s for s in samples if s[1] >= 0.2 * MESSAGES]
    growth = max(s[2] for s in warm) - warm[0][2]
    step = max(len(samples) // 10, 1)
    summary = {
        "messages": MESSAGES,
        "keys": KEYS,
        "partitions": PARTITIONS,
        "max_keys": MAX_KEYS,
        "produce_msgs_per_s": round(produce_rate),
        "consume_msgs_per_s": round((last[1] - first[1]) / max(last[0] - first[0], 1e-9)),
        "seconds": round(last[0] - first[0], 1),
        "evicted_keys": {p: model[f'{{partition="{p}"}}'][0] for p in range(PARTITIONS)},
        "duplicated": duplicated,
        "missing": len(expected - set(counts)),
        "rss_mb_at_20pct": round(warm[0][2] / 2**20),
        "rss_mb_max_after": round(max(s[2] for s in warm) / 2**20),
        "rss_mb_series": [(int(s[1]), round(s[2] / 2**20)) for s in samples[::step]],
        "hit_ratio_1000": {
            labels: round(value, 3)
            for labels, value in metric_samples(final, "lstm_stream_rolling_hit_ratio").items()
            if 'window="1000"' in labels
        },
    }
    print("load summary:", json.dumps(summary))
    assert growth < RSS_GROWTH_LIMIT_BYTES, f"resident memory grew {growth / 2**20:.0f} MiB once warm"
