"""lstm-producer end to end into the real broker, read back by a plain KafkaConsumer."""

from __future__ import annotations

import math
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from producer.sources import default_partition, pattern_records
from producer.spec import parse_spec, vocabulary

pytestmark = pytest.mark.integration

Message = tuple[str | None, str]


def producer_cli(bootstrap: str, *argv: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_PRODUCER_")}
    env.update(kwargs.pop("env", {}))
    return subprocess.run(
        [sys.executable, "-m", "producer", *argv, "--bootstrap-servers", bootstrap],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        **kwargs,
    )


def read_topic(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list[Message]:
    """Every message of the topic, partition by partition, each in offset order."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        partitions = sorted(consumer.partitions_for_topic(topic) or [])
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=300).values():  # anything beyond the expected count
            records.extend(batch)
    finally:
        consumer.close()
    records.sort(key=lambda r: (r.partition, r.offset))
    return [(None if r.key is None else r.key.decode(), r.value.decode()) for r in records]


def key_partitions(bootstrap: str, topic: str, expected: int) -> dict[str | None, set[int]]:
    """Each key of the topic's first `expected` records -> the partitions holding its records."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        consumer.assign([TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or []])
        found: dict[str | None, set[int]] = {}
        seen, deadline = 0, time.monotonic() + 30
        while seen < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                for r in batch:
                    found.setdefault(None if r.key is None else r.key.decode(), set()).add(r.partition)
                    seen += 1
        return found
    finally:
        consumer.close()


def per_key(messages: list[Message]) -> dict[str | None, list[str]]:
    streams: dict[str | None, list[str]] = {}
    for key, token in messages:
        streams.setdefault(key, []).append(token)
    return streams


def test_default_stream_is_the_exact_seed_pattern(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic()
    result = producer_cli(kafka_bootstrap, "pattern", "--topic", topic, "--count", "270")
    assert result.returncode == 0, result.stderr
    assert "sent 270, delivered 270, failed 0" in result.stderr
    assert read_topic(kafka_bootstrap, topic, 270) == list(
        islice(pattern_records(parse_spec("4*6,8,4*5,8,4*6,8,4*6,28")), 270)
    )


def test_keyed_streams_keep_their_order_and_exact_pattern(
    kafka_bootstrap: str, make_topic: Callable[..., str]
) -> None:
    topic = make_topic(partitions=3)
    spec, n = "(1*2,2)*2,1*2,3,x*3", 3000
    argv = ["--topic", topic, "--spec", spec, "--keys", "5", "--seed", "42", "--count", str(n), "--quiet"]
    result = producer_cli(kafka_bootstrap, "pattern", *argv)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # --quiet
    got = read_topic(kafka_bootstrap, topic, n)
    assert len(got) == n
    expected = list(islice(pattern_records(parse_spec(spec), keys=5, seed=42, partitions=3), n))
    assert per_key(got) == per_key(expected)
    # The streams are spread over the partitions: 5 over 3 is 2, 2 and 1, none left idle.
    streams_per_partition = Counter(default_partition(key, 3) for key in per_key(got) if key)
    assert sorted(streams_per_partition.values()) == [1, 2, 2]
    # ... where the broker really holds them: each stream on the one partition its name hashes to.
    keys = [key for key in per_key(got) if key]
    assert key_partitions(kafka_bootstrap, topic, n) == {key: {default_partition(key, 3)} for key in keys}


def test_noise_rate_is_within_binomial_bounds(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    n, noise, spec = 20_000, 0.1, "4*6,8,4*5,8,4*6,8,4*6,28"
    argv = ["--topic", topic, "--count", str(n), "--noise", str(noise), "--seed", "3", "--quiet"]
    result = producer_cli(kafka_bootstrap, "pattern", *argv)
    assert result.returncode == 0, result.stderr
    got = [token for _, token in read_topic(kafka_bootstrap, topic, n)]
    assert len(got) == n
    unit = parse_spec(spec)
    assert got == [t for _, t in islice(pattern_records(unit, noise=noise, seed=3), n)]
    clean = [t for _, t in islice(pattern_records(unit), n)]
    # A replaced token is drawn uniformly from the vocabulary, so it still matches 1 time in |V|.
    p = noise * (1 - 1 / len(vocabulary(unit)))
    rate = sum(a != b for a, b in zip(got, clean, strict=True)) / n
    assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / n), (rate, p)


def test_csv_file_with_key_column_and_json_values(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic(partitions=2)
    rows = [(f"u{i % 3}", f"act{i % 7}") for i in range(200)]
    path = tmp_path / "events.csv"
    path.write_text("user,action\n" + "".join(f"{u},{a}\n" for u, a in rows), encoding="utf-8")
    argv = [
        "file",
        str(path),
        "--csv",
        "--column",
        "action",
        "--key-column",
        "user",
        "--value-format",
        "json",
    ]
    result = producer_cli(kafka_bootstrap, *argv, "--topic", topic)
    assert result.returncode == 0, result.stderr
    got = read_topic(kafka_bootstrap, topic, len(rows))
    assert per_key(got) == per_key([(u, f'{{"token": "{a}"}}') for u, a in rows])


def test_env_configures_a_text_file_run(
    kafka_bootstrap: str, make_topic: Callable[..., str], tmp_path: Path
) -> None:
    topic = make_topic()
    path = tmp_path / "tokens.txt"
    path.write_text("a\n\n  b \nc\n" * 10, encoding="utf-8")
    env = {"LSTM_PRODUCER_TOPIC": topic, "LSTM_PRODUCER_KEY": "app", "LSTM_PRODUCER_PATH": str(path)}
    result = producer_cli(kafka_bootstrap, "file", env=env)
    assert result.returncode == 0, result.stderr
    assert read_topic(kafka_bootstrap, topic, 30) == [("app", t) for t in "abc" * 10]


def test_stdin_is_published_line_by_line(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    cmd = [
        sys.executable,
        "-m",
        "producer",
        "stdin",
        "--topic",
        topic,
        "--bootstrap-servers",
        kafka_bootstrap,
    ]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        proc.stdin.write("first\n")
        proc.stdin.flush()
        # stdin is still open: the first line must reach Kafka before any EOF
        assert read_topic(kafka_bootstrap, topic, 1) == [(None, "first")]
        proc.stdin.write("second\n\nthird\n")
    finally:
        proc.stdin.close()
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    assert "sent 3, delivered 3, failed 0" in proc.stderr.read()
    proc.stderr.close()
    assert read_topic(kafka_bootstrap, topic, 3) == [(None, "first"), (None, "second"), (None, "third")]


def test_sigterm_flushes_everything_sent(kafka_bootstrap: str, make_topic: Callable[..., str]) -> None:
    topic = make_topic()
    cmd = [
        sys.executable,
        "-m",
        "producer",
        "pattern",
        "--topic",
        topic,
        "--bootstrap-servers",
        kafka_bootstrap,
    ]
    proc = subprocess.Popen([*cmd, "--rate", "300", "--keys", "2"], stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    assert read_topic(kafka_bootstrap, topic, 20), "nothing published"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=60) == 0
    err = proc.stderr.read()
    proc.stderr.close()
    assert "stopped by SIGTERM" in err
    match = re.search(r"sent (\d+), delivered (\d+), failed 0", err)
    assert match, err
    assert match[1] == match[2], err
    got = read_topic(kafka_bootstrap, topic, int(match[1]))
    assert len(got) == int(match[1])
    expected = list(islice(pattern_records(parse_spec("4*6,8,4*5,8,4*6,8,4*6,28"), keys=2), len(got)))
    assert per_key(got) == per_key(expected)


def test_create_topic_with_partitions(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> None:
    topic = unique_name("created")
    argv = [
        "pattern",
        "--topic",
        topic,
        "--create-topic",
        "--partitions",
        "3",
        "--keys",
        "6",
        "--count",
        "60",
    ]
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        for _ in range(2):  # the second run finds the topic already there
            result = producer_cli(kafka_bootstrap, *argv)
            assert result.returncode == 0, result.stderr
        [described] = admin.describe_topics([topic])
        assert len(described["partitions"]) == 3
        assert len(read_topic(kafka_bootstrap, topic, 120)) == 120
    finally:
        admin.delete_topics([topic])
        admin.close()


def test_missing_topic_fails_clearly(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> None:
    result = producer_cli(
        kafka_bootstrap,
        "pattern",
        "--topic",
        unique_name("absent"),
        "--count",
        "1",
        "--connect-timeout-s",
        "1",
    )
    assert result.returncode == 1
    assert "not available within 1 s; --create-topic creates it" in result.stderr
