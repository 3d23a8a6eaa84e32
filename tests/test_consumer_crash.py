"""Exactly-once under crashes: SIGKILL the consumer at random points, restart it, compare outputs.

An uninterrupted run and a run killed at least 5 times (each kill after the output grew, then a
random delay, so kills land mid-batch, mid-transaction or mid-snapshot) read the same input.
With read_committed, the killed run holds exactly one prediction per input offset, and in strict
mode each prediction record is byte-identical to the uninterrupted run's, even though the killed
run also polls in smaller batches (the learner's chunking invariance, end to end).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from tests.consumer_harness import ConsumerProcess, predictions_by_offset, produce, read_all, seed_tokens
from tests.test_consumer_service import Topics

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

MESSAGES = int(os.environ.get("CRASH_MESSAGES", "24000"))  # 5 lives must not get through it all
KILLS = int(os.environ.get("CRASH_KILLS", "5"))
READ_TIMEOUT_S = 300 + MESSAGES / 50  # the last life and the reference run work through the backlog


class Counter(threading.Thread):
    """Counts the committed records of a topic as they arrive."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        super().__init__(daemon=True)
        self.count = 0
        self.grew: list[float] = []  # when (time.monotonic) the count last grew, at each poll
        self._stop_event = threading.Event()
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap, isolation_level="read_committed", auto_offset_reset="earliest"
        )
        partitions = self.consumer.partitions_for_topic(topic) or set()
        self.consumer.assign([TopicPartition(topic, p) for p in partitions])

    def run(self) -> None:
        while not self._stop_event.is_set():
            arrived = sum(len(b) for b in self.consumer.poll(timeout_ms=200).values())
            if arrived:
                self.count += arrived
                self.grew.append(time.monotonic())
        self.consumer.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(30)

    def wait_beyond(self, count: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while self.count <= count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count > count


def test_sigkill_at_random_points_loses_and_duplicates_nothing(
    kafka_bootstrap: str, make_topic: Callable[..., str], unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    rng = random.Random(int(os.environ.get("CRASH_SEED", "7")))
    keys = [b"s1", b"s2", None]
    reference = Topics(make_topic, unique_name)
    for i, key in enumerate(keys):  # three streams, one after the other in the same partition
        count = MESSAGES // 3 + (i < MESSAGES % 3)
        produce(kafka_bootstrap, reference.input, (t.encode() for t in seed_tokens(count)), key=key)

    crashed = Topics(make_topic, unique_name)
    crashed.input = reference.input  # the same input, another group with its own output and state
    counter = Counter(kafka_bootstrap, crashed.output)
    counter.start()
    kills = 0
    try:
        while kills < KILLS:
            process = ConsumerProcess(
                kafka_bootstrap, tmp_path / f"crash-{kills}.log", *crashed.args("--max-poll-records", "100")
            )
            seen = counter.count
            if not counter.wait_beyond(seen, timeout_s=240):
                process.kill()
                pytest.fail(f"no progress after restart {kills}:\n{process.log()[-3000:]}")
            time.sleep(rng.uniform(0.0, 1.5))
            process.kill()
            kills += 1
            if counter.count >= MESSAGES:
                pytest.fail(f"the run finished after {kills} kills: raise CRASH_MESSAGES")
        final = ConsumerProcess(
            kafka_bootstrap, tmp_path / "final.log", *crashed.args("--max-poll-records", "100")
        )
        try:
            crashed_records = read_all(kafka_bootstrap, crashed.output, MESSAGES, timeout_s=READ_TIMEOUT_S)
        finally:
            assert final.stop() == 0, final.log()[-3000:]
    finally:
        counter.stop()

    uninterrupted = ConsumerProcess(kafka_bootstrap, tmp_path / "reference.log", *reference.args())
    try:
        reference_records = read_all(kafka_bootstrap, reference.output, MESSAGES, timeout_s=READ_TIMEOUT_S)
    finally:
        assert uninterrupted.stop() == 0, uninterrupted.log()[-3000:]

    expected = predictions_by_offset(reference_records)
    got = predictions_by_offset(crashed_records)
    assert sorted(expected) == [(0, i) for i in range(MESSAGES)]
    missing = set(expected) - set(got)
    duplicated = [offset for offset, values in got.items() if len(values) > 1]
    assert (len(missing), len(duplicated)) == (0, 0), (
        f"{kills} kills: missing {missing}, duplicated {duplicated}"
    )
    differing = [offset for offset in expected if got[offset] != expected[offset]]
    assert not differing, (
        f"{len(differing)} predictions differ, first at {differing[0]}: {got[differing[0]]!r}"
    )
    assert _keys(crashed_records) == _keys(reference_records)
    restored = sum("learner restored" in (tmp_path / f"crash-{i}.log").read_text() for i in range(1, kills))
    assert restored >= 1  # later lives resumed from a snapshot, not from scratch
    summary = {"kills": kills, "messages": MESSAGES, "missing": len(missing), "duplicated": len(duplicated)}
    print(
        "crash summary:", json.dumps({**summary, "byte_identical": not differing, "restored_lives": restored})
    )


def _keys(records: list[Any]) -> dict[int, bytes | None]:
    import json

    return {json.loads(r.value)["offset"]: r.key for r in records}
