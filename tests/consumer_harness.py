"""Running `lstm-consumer run` as a real process against the test broker, and reading its output.

A `ConsumerProcess` is started with `python -m consumer run`, logs to a file, binds its HTTP
endpoints to a free loopback port, and is stopped by its own PID only (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

SEED_UNIT = ["4"] * 6 + ["8"] + ["4"] * 5 + ["8"] + ["4"] * 6 + ["8"] + ["4"] * 6 + ["28"]
PORT_LINE = re.compile(r"serving /healthz, /readyz and /metrics on http://[\d.]+:(\d+)")


def seed_tokens(count: int) -> list[str]:
    return [SEED_UNIT[i % len(SEED_UNIT)] for i in range(count)]


def produce(
    bootstrap: str,
    topic: str,
    values: Iterable[bytes | None],
    key: bytes | None = None,
    partition: int | None = None,
) -> None:
    """Publish with a plain kafka-python client (what any other producer would send)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    try:
        for value in values:
            producer.send(topic, key=key, value=value, partition=partition)
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=10)


def read_all(bootstrap: str, topic: str, expected: int, timeout_s: float, **client: Any) -> list[Any]:
    """The topic's committed records (read_committed), at least `expected` of them or what came in time."""
    consumer = KafkaConsumer(
        **client,
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        deadline = time.monotonic() + timeout_s
        partitions: set[int] = set()
        while not partitions and time.monotonic() < deadline:
            partitions = consumer.partitions_for_topic(topic) or set()
            time.sleep(0.1)
        consumer.assign([TopicPartition(topic, p) for p in sorted(partitions)])
        records: list[Any] = []
        while len(records) < expected and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        for batch in consumer.poll(timeout_ms=500).values():  # anything beyond the expected count
            records.extend(batch)
        return records
    finally:
        consumer.close()


def metric_samples(text: str, name: str) -> dict[str, float]:
    """{labels: value} of one metric in a Prometheus exposition text."""
    out = {}
    for line in text.splitlines():
        match = re.match(rf"^{name}(\{{[^}}]*\}})? (\S+)$", line)
        if match:
            out[match.group(1) or ""] = float(match.group(2))
    return out


def predictions_by_offset(records: Sequence[Any]) -> dict[tuple[int, int], list[bytes]]:
    """Input (partition, offset) -> the raw values of every prediction naming it."""
    out: dict[tuple[int, int], list[bytes]] = {}
    for record in records:
        doc = json.loads(record.value)
        out.setdefault((doc["partition"], doc["offset"]), []).append(record.value)
    return out


class ConsumerProcess:
    """`lstm-consumer run` in a subprocess, logging to `log_path`."""

    def __init__(self, bootstrap: str, log_path: Path, *argv: str, env: dict[str, str] | None = None) -> None:
        self.log_path = log_path
        # The user's LSTM_CONSUMER_* settings stay out; the run's compile cache (scripts/test) stays in.
        keep = {"LSTM_CONSUMER_COMPILE_CACHE_DIR"}
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_CONSUMER_") or k in keep}
        full_env.update({"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
        full_env.update(env or {})
        args = [
            sys.executable,
            "-m",
            "consumer",
            "run",
            "--bootstrap-servers",
            bootstrap,
            "--http-port",
            "0",
            "--status-interval-s",
            "2",
            *argv,
        ]
        self._log = open(log_path, "ab")  # noqa: SIM115 (closed in wait())
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT, env=full_env)
        self.port: int | None = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_port(self, timeout_s: float = 120.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            match = PORT_LINE.search(self.log())
            if match:
                self.port = int(match.group(1))
                return self.port
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        raise AssertionError(f"consumer did not serve HTTP:\n{self.log()[-3000:]}")

    def get(self, path: str) -> tuple[int, str]:
        port = self.port or self.wait_port()
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def post(self, path: str, body: bytes) -> tuple[int, str]:
        port = self.port or self.wait_port()
        request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if self.get("/readyz")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError(f"consumer never ready:\n{self.log()[-3000:]}")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.wait(30)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM, then wait; SIGKILL (and fail) if it does not stop in time."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(
                f"consumer ignored SIGTERM for {timeout_s} s:\n{self.log()[-3000:]}"
            ) from None

    def wait(self, timeout_s: float) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            if self.proc.poll() is not None:
                self._log.close()


def committed_offsets(
    bootstrap: str, group: str, topic: str, partitions: Iterable[int]
) -> dict[int, int | None]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    try:
        return {p: consumer.committed(TopicPartition(topic, p)) for p in partitions}
    finally:
        consumer.close()
