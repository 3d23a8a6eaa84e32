"""SASL_PLAINTEXT + SCRAM-SHA-256: producer and consumer work with credentials, fail clearly without,
and never show the password (logs, /metrics, error messages)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import start_broker, stop_broker
from tests.consumer_harness import ConsumerProcess, read_all

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

USER, PASSWORD, ADMIN_PASSWORD = "app", "app-s3cret-Zq9", "admin-s3cret-Xw4"
SCRAM = "SCRAM-SHA-256"
JAAS = (
    f"listener.name.client.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram."
    f'ScramLoginModule required username="admin" password="{ADMIN_PASSWORD}";'
)
SASL_ARGS = [
    "--security-protocol",
    "SASL_PLAINTEXT",
    "--sasl-mechanism",
    SCRAM,
    "--sasl-plain-username",
    USER,
]
CLIENT = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": SCRAM,
    "sasl_plain_username": USER,
    "sasl_plain_password": PASSWORD,
}


@pytest.fixture(scope="module")
def sasl_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of its own whose only client listener wants SCRAM credentials."""
    state = tmp_path_factory.mktemp("sasl-broker")
    users = " ".join(
        f"--add-scram {SCRAM}=[name={name},password={password}]"
        for name, password in (("admin", ADMIN_PASSWORD), (USER, PASSWORD))
    )
    previous = os.environ.get("LSTM_STREAM_KAFKA_FORMAT_ARGS")
    os.environ["LSTM_STREAM_KAFKA_FORMAT_ARGS"] = users
    try:
        bootstrap = start_broker(
            state,
            "--protocol",
            "SASL_PLAINTEXT",
            "--set",
            f"sasl.enabled.mechanisms={SCRAM}",
            "--set",
            f"sasl.mechanism.inter.broker.protocol={SCRAM}",
            "--set",
            JAAS,
        )
    finally:
        if previous is None:
            os.environ.pop("LSTM_STREAM_KAFKA_FORMAT_ARGS", None)
        else:
            os.environ["LSTM_STREAM_KAFKA_FORMAT_ARGS"] = previous
    try:
        yield bootstrap
    finally:
        stop_broker(state)


def _producer(bootstrap: str, *argv: str, password: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_PRODUCER_")}
    if password is not None:
        env["LSTM_PRODUCER_SASL_PLAIN_PASSWORD"] = password  # not on the command line, as users should
    args = [sys.executable, "-m", "producer", "pattern", "--bootstrap-servers", bootstrap, *argv]
    args += SASL_ARGS if password is not None else []
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env=env)


def test_with_credentials_everything_works_and_the_password_never_shows(
    sasl_bootstrap: str, tmp_path: Path
) -> None:
    produced = _producer(
        sasl_bootstrap, "--count", "300", "--create-topic", "--topic", "sasl-in", password=PASSWORD
    )
    assert produced.returncode == 0, produced.stderr
    assert PASSWORD not in produced.stdout + produced.stderr
    env = {"LSTM_CONSUMER_SASL_PLAIN_PASSWORD": PASSWORD}
    args = [
        "--input-topic",
        "sasl-in",
        "--output-topic",
        "sasl-out",
        "--group-id",
        "sasl",
        "--instance-id",
        "sasl",
    ]
    args += SASL_ARGS
    consumer = ConsumerProcess(sasl_bootstrap, tmp_path / "consumer.log", *args, env=env)
    try:
        records = read_all(sasl_bootstrap, "sasl-out", 300, timeout_s=240, **CLIENT)
        metrics = consumer.get("/metrics")[1]
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(records) == 300
    assert PASSWORD not in consumer.log()
    assert "sasl_plain_password=Secret('**********')" in consumer.log()
    assert PASSWORD not in metrics


def test_without_credentials_the_producer_fails_clearly(sasl_bootstrap: str) -> None:
    started = time.monotonic()
    result = _producer(
        sasl_bootstrap, "--count", "3", "--topic", "sasl-in", "--connect-timeout-s", "5", password=None
    )
    assert result.returncode == 1
    assert "cannot reach Kafka" in result.stderr
    assert "--security-protocol (PLAINTEXT)" in result.stderr
    assert time.monotonic() - started < 60


def test_a_wrong_password_fails_clearly_and_is_never_shown(sasl_bootstrap: str, tmp_path: Path) -> None:
    wrong = "wr0ng-pa55word-Kd8"
    result = _producer(
        sasl_bootstrap, "--count", "3", "--topic", "sasl-in", "--connect-timeout-s", "5", password=wrong
    )
    assert result.returncode == 1
    assert "SASL, the mechanism and credentials" in result.stderr
    assert wrong not in result.stdout + result.stderr
    args = ["--input-topic", "sasl-in", "--group-id", "sasl-wrong", "--instance-id", "wrong", *SASL_ARGS]
    consumer = ConsumerProcess(
        sasl_bootstrap, tmp_path / "consumer.log", *args, env={"LSTM_CONSUMER_SASL_PLAIN_PASSWORD": wrong}
    )
    try:
        deadline = time.monotonic() + 90
        while "cannot connect to Kafka" not in consumer.log() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "cannot connect to Kafka" in consumer.log(), consumer.log()[-3000:]
        assert consumer.proc.poll() is None  # it keeps retrying, as a service should
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert wrong not in consumer.log()
