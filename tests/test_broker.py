"""The test broker is real, single-node and transactional."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata

pytestmark = pytest.mark.integration


def read_all(bootstrap: str, topic: str, isolation_level: str, expected: int) -> list[bytes]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=3_000,
    )
    consumer.assign([TopicPartition(topic, 0)])
    values: list[bytes] = []
    for record in consumer:
        values.append(record.value)
        if len(values) >= expected:
            break
    consumer.close()
    return values


def test_transactions_commit_and_abort(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str]
) -> None:
    source, sink = make_topic("source"), make_topic("sink")
    group = unique_name("group")
    seed = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    for i in range(3):
        seed.send(source, f"in-{i}".encode())
    seed.flush()
    seed.close()

    consumer = KafkaConsumer(
        source,
        bootstrap_servers=kafka_bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed",
    )
    records = []
    for _ in range(50):
        for batch in consumer.poll(timeout_ms=500).values():
            records.extend(batch)
        if len(records) >= 3:
            break
    assert [r.value for r in records] == [b"in-0", b"in-1", b"in-2"]

    producer = KafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=unique_name("txn"), enable_idempotence=True
    )
    producer.init_transactions()
    producer.begin_transaction()
    for r in records:
        producer.send(sink, b"committed-" + r.value)
    offsets = {TopicPartition(source, 0): OffsetAndMetadata(records[-1].offset + 1, "", -1)}
    producer.send_offsets_to_transaction(offsets, consumer.group_metadata())
    producer.commit_transaction()

    producer.begin_transaction()
    producer.send(sink, b"aborted")
    producer.flush()
    producer.abort_transaction()
    producer.close()

    assert consumer.committed(TopicPartition(source, 0)) == 3
    consumer.close()
    committed = read_all(kafka_bootstrap, sink, "read_committed", expected=4)
    assert committed == [b"committed-in-0", b"committed-in-1", b"committed-in-2"]
    uncommitted = read_all(kafka_bootstrap, sink, "read_uncommitted", expected=4)
    assert b"aborted" in uncommitted
