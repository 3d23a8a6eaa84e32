"""Fixtures shared by the whole suite: a real Kafka broker, unique names, topic creation.

The broker is session-scoped: `KAFKA_BOOTSTRAP_SERVERS` when set (as `make test` does), else one
started here with scripts/kafka in a temporary directory and stopped (by its PID) at the end.
Under CI=true a missing prerequisite fails the run instead of skipping.
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NoReturn

import pytest

from consumer.core import compile_cache

REPO = Path(__file__).resolve().parent.parent

# The tests' own learners share the run's compile cache (scripts/test sets it) with the consumer
# processes they start; before any test compiles. Never the user's cache: no variable, no cache.
compile_cache.enable(os.environ.get("LSTM_CONSUMER_COMPILE_CACHE_DIR", ""))
KAFKA_SCRIPT = REPO / "scripts" / "kafka"


def require(reason: str) -> NoReturn:
    """Skip for lack of a prerequisite locally; fail under CI, where everything must be there."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"missing prerequisite under CI: {reason}", pytrace=False)
    pytest.skip(reason)


def start_broker(state_dir: Path, *extra: str, timeout_s: float = 90.0) -> str:
    """Start a broker with scripts/kafka in state_dir; return its bootstrap address."""
    result = subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), "--dir", str(state_dir), "up", *extra],
        capture_output=True,
        text=True,
        timeout=timeout_s + 240,
    )
    last = result.stdout.strip().splitlines()[-1:] if result.stdout.strip() else []
    if result.returncode != 0 or not last or not last[0].startswith("bootstrap="):
        require(f"could not start a Kafka broker: {result.stderr.strip()[-2000:]}")
    return last[0].removeprefix("bootstrap=")


def stop_broker(state_dir: Path, purge: bool = True) -> None:
    args = [sys.executable, str(KAFKA_SCRIPT), "--dir", str(state_dir), "down"]
    subprocess.run(args + (["--purge"] if purge else []), capture_output=True, timeout=60, check=False)


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap address of a real broker for the whole session."""
    env = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if env:
        yield env
        return
    state_dir = tmp_path_factory.mktemp("kafka")
    bootstrap = start_broker(state_dir)
    try:
        yield bootstrap
    finally:
        stop_broker(state_dir)


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> Callable[[str], str]:
    """Names no other test uses: unique_name("topic") -> "topic-test_x-1a2b3c4d"."""
    test = request.node.name.replace("[", "-").replace("]", "")[:40]

    def make(prefix: str) -> str:
        return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"

    return make


@pytest.fixture
def make_topic(kafka_bootstrap: str, unique_name: Callable[[str], str]) -> Iterator[Callable[..., str]]:
    """Create a topic with a unique name: make_topic(partitions=4, config={"cleanup.policy": "compact"})."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, request_timeout_ms=30_000)
    created: list[str] = []

    def make(prefix: str = "topic", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique_name(prefix)
        admin.create_topics(
            [NewTopic(name, num_partitions=partitions, replication_factor=1, topic_configs=config or {})]
        )
        created.append(name)
        return name

    yield make
    try:
        if created:
            admin.delete_topics(created)
    finally:
        admin.close()
