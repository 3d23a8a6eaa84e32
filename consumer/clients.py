"""The Kafka clients of one session, and the topics they need.

Contract: `connect(settings)` creates the missing output topics (unless --no-create-topics),
learns the dead-letter topic's size limit, then builds the producer (transactional for
exactly-once, its transactions initialized) and the consumer (read_committed, no auto-commit).
Every call is bounded; a broker that is unreachable or refuses us raises `ConnectError`, which
the service retries with backoff.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import KafkaAdminClient
from kafka.errors import KafkaError

from consumer.restore import FatalError
from consumer.settings import RunSettings
from consumer.state import (
    DEAD_LETTER_TOPIC_CONFIG,
    STATE_MAX_BYTES,
    STATE_TOPIC_CONFIG,
    ensure_topic,
    max_message_bytes,
)
from consumer.watchdog import deadline

__all__ = [
    "BOOTSTRAP_TIMEOUT_MS",
    "Clients",
    "ConnectError",
    "check_feedback_topic",
    "connect",
    "wait_for_topic",
]

log = logging.getLogger("consumer.service")
BOOTSTRAP_TIMEOUT_MS = 15_000  # an unreachable or refusing broker is reported (and retried) this soon
FEEDBACK_TOPIC_WAIT_S = 15.0  # a feedback topic just created takes a moment to show in metadata
CONSUMER_RETRY_BACKOFF_MS = 20  # see connect(): bounds a poll's idle sleep, which delays records


class ConnectError(KafkaError):  # type: ignore[misc]
    """The Kafka clients could not be created: the broker is unreachable or refuses us."""


@dataclass
class Clients:
    consumer: KafkaConsumer
    producer: KafkaProducer
    dead_letter_limit: int | None  # the dead-letter topic's max.message.bytes


def connect(settings: RunSettings) -> Clients:
    s, kafka = settings, settings.client_kwargs()
    try:
        with deadline(s.transaction_timeout_s + 30, "connecting to Kafka"):
            limit = _ensure_topics(s)
            producer = KafkaProducer(
                **kafka,
                acks="all",
                enable_idempotence=True,
                transactional_id=s.transactional_id if s.processing_guarantee == "exactly_once" else None,
                linger_ms=5,
                max_request_size=STATE_MAX_BYTES,
                bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS,
            )
            try:
                if s.processing_guarantee == "exactly_once":
                    producer.init_transactions()
                consumer = KafkaConsumer(
                    **kafka,
                    group_id=s.group_id,
                    enable_auto_commit=False,
                    isolation_level="read_committed",
                    auto_offset_reset=s.auto_offset_reset,
                    max_poll_records=s.max_poll_records,
                    max_poll_interval_ms=s.max_poll_interval_ms,
                    session_timeout_ms=s.session_timeout_ms,
                    heartbeat_interval_ms=max(s.session_timeout_ms // 3, 100),
                    # kafka-python 3.0.12's poll sleeps min(timeout, retry_backoff_ms) when it
                    # finds no fetch in flight, which also happens when a fetch response landed
                    # between its drain and its next send: the records wait out the sleep. At
                    # the default 100 ms that was the p99 of produce -> committed prediction;
                    # 20 ms bounds it and retries failed requests a little sooner.
                    retry_backoff_ms=CONSUMER_RETRY_BACKOFF_MS,
                )
            except BaseException:
                producer.close(timeout=5)
                raise
    except KafkaError as exc:
        raise ConnectError(f"{type(exc).__name__}: {exc}") from exc
    return Clients(consumer, producer, limit)


def wait_for_topic(consumer: KafkaConsumer, settings: RunSettings, stop: threading.Event) -> None:
    """Return once the input topic's metadata is known: a group formed before that assigns nothing."""
    waited = 0.0
    while not stop.is_set():
        with deadline(settings.transaction_timeout_s, "reading the input topic's metadata"):
            if consumer.partitions_for_topic(settings.input_topic):
                return
        if waited % 30 == 0:
            log.warning("waiting for the input topic %s to exist", settings.input_topic)
        stop.wait(1.0)
        waited += 1.0


def _ensure_topics(s: RunSettings) -> int | None:
    """Create the missing output topics (unless told not to); the dead-letter topic's size limit."""
    admin = KafkaAdminClient(**s.client_kwargs(), bootstrap_timeout_ms=BOOTSTRAP_TIMEOUT_MS)
    try:
        if s.create_topics:
            topics = admin.list_topics()
            described = admin.describe_topics([s.input_topic]) if s.input_topic in topics else []
            count = max((len(t.get("partitions", [])) for t in described), default=1)
            replicas = s.replication_factor
            ensure_topic(admin, s.output_topic, count, replication_factor=replicas)
            ensure_topic(admin, s.dead_letter_topic, count, DEAD_LETTER_TOPIC_CONFIG, replicas)
            ensure_topic(admin, s.state_topic, count, STATE_TOPIC_CONFIG, replicas)
            if s.anomaly_top_g:
                ensure_topic(admin, s.anomaly_topic, count, replication_factor=replicas)
                ensure_topic(admin, s.feedback_topic, count, replication_factor=replicas)
        return max_message_bytes(admin, s.dead_letter_topic)
    finally:
        admin.close()


def check_feedback_topic(consumer: KafkaConsumer, s: RunSettings) -> None:
    """The feedback topic must be partitioned as the input is: a mark goes to the partition of
    the input it names, and both are assigned together."""
    inputs = consumer.partitions_for_topic(s.input_topic) or set()
    feedback: set[int] = set()
    waited = time.monotonic() + FEEDBACK_TOPIC_WAIT_S  # a topic just created takes a moment to show
    while not feedback and time.monotonic() < waited:
        feedback = consumer.partitions_for_topic(s.feedback_topic) or set()
        if not feedback:
            time.sleep(0.2)
    if feedback != inputs:
        raise FatalError(
            f"--feedback-topic {s.feedback_topic} has {len(feedback)} partitions and --input-topic "
            f"{s.input_topic} {len(inputs)}: they must have as many (create it so, or name another)"
        )
