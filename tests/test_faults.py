"""Faults against a broker of the test's own: a hung broker (SIGSTOP) mid-run must turn into a loud
watchdog failure and a clean restart, not a silent hang, and lose or double nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import KafkaAdminClient, NewTopic

from tests.conftest import start_broker, stop_broker
from tests.consumer_harness import ConsumerProcess, produce, read_all, seed_tokens

pytestmark = [pytest.mark.integration, pytest.mark.reliability]


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    state = tmp_path / "broker"
    bootstrap = start_broker(state)
    try:
        yield bootstrap, state
    finally:
        pid_file = state / "broker.pid"
        if pid_file.exists():  # never leave it stopped: `down` could not stop a frozen process
            os.kill(int(pid_file.read_text()), signal.SIGCONT)
        stop_broker(state)


def _create_topics(bootstrap: str, *names: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1) for name in names])
    finally:
        admin.close()


def test_a_hung_broker_trips_the_watchdog_and_the_consumer_recovers(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    bootstrap, state = own_broker
    _create_topics(bootstrap, "in", "out")
    count = 2000
    produce(bootstrap, "in", (t.encode() for t in seed_tokens(count)))
    args = ["--input-topic", "in", "--output-topic", "out", "--group-id", "g", "--instance-id", "hung"]
    args += ["--transaction-timeout-s", "5", "--max-poll-records", "50", "--session-timeout-ms", "30000"]
    consumer = ConsumerProcess(bootstrap, tmp_path / "consumer.log", *args)
    broker_pid = int((state / "broker.pid").read_text())
    try:
        read_all(bootstrap, "out", 200, timeout_s=240)  # processing is under way
        os.kill(broker_pid, signal.SIGSTOP)
        deadline = time.monotonic() + 60
        while "did not finish within 5 s" not in consumer.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        frozen_for = 60 - (deadline - time.monotonic())
        os.kill(broker_pid, signal.SIGCONT)
        assert "did not finish within 5 s" in consumer.log(), consumer.log()[-3000:]
        records = read_all(bootstrap, "out", count, timeout_s=300)
    finally:
        os.kill(broker_pid, signal.SIGCONT)
        code = consumer.stop()
    log = consumer.log()
    assert code == 0, log[-3000:]
    assert frozen_for < 45  # the watchdog fired within its deadline, not after a long hang
    offsets = sorted(json.loads(r.value)["offset"] for r in records)
    assert offsets == list(range(count)), "read_committed output must hold every offset exactly once"
    assert "Kafka session failed, restarting" in log or "cannot connect to Kafka" in log


def test_a_broker_restart_mid_run_loses_and_duplicates_nothing(
    own_broker: tuple[str, Path], tmp_path: Path
) -> None:
    import subprocess
    import sys

    bootstrap, state = own_broker
    _create_topics(bootstrap, "in", "out")
    count = 3000
    command = [sys.executable, "-m", "producer", "pattern", "--bootstrap-servers", bootstrap, "--topic", "in"]
    command += ["--count", str(count), "--rate", "100", "--quiet", "--connect-timeout-s", "60"]
    producer = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    args = ["--input-topic", "in", "--output-topic", "out", "--group-id", "g", "--instance-id", "restart"]
    consumer = ConsumerProcess(bootstrap, tmp_path / "consumer.log", *args)
    try:
        read_all(bootstrap, "out", 300, timeout_s=240)  # both are under way
        stop_broker(state, purge=False)
        time.sleep(5)
        assert start_broker(state) == bootstrap  # the same data and port
        _, err = producer.communicate(timeout=240)
        assert producer.returncode == 0, err
        records = read_all(bootstrap, "out", count, timeout_s=300)
    finally:
        if producer.poll() is None:
            producer.kill()
        code = consumer.stop()
    assert code == 0, consumer.log()[-3000:]
    offsets = sorted(json.loads(r.value)["offset"] for r in records)
    assert offsets == list(range(count)), f"{len(offsets)} predictions for {count} inputs"
