"""TLS for real: a broker whose SSL listener requires client certificates, and one with SASL_SSL +
SCRAM whose certificate names another host. Certificates are made at test time (tests/tls_certs.py).

The right files work end to end, for the producer and the consumer (and kcat, a client no one
here wrote, reads the predictions with the same files). A wrong CA, a missing or untrusted client
certificate, a certificate that names another host, TLS spoken to a plaintext listener and the
reverse each stop the command at once with one line naming the cause and the option (exit 2);
no password (the key's, SASL's) appears in any output.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require, start_broker, stop_broker
from tests.consumer_harness import ConsumerProcess, read_all
from tests.tls_certs import KEY_PASSWORD, Certificates, make_certificates

pytestmark = [pytest.mark.integration, pytest.mark.reliability]

SCRAM, USER, PASSWORD, ADMIN_PASSWORD = "SCRAM-SHA-512", "app", "sasl-pa55-Hn3w", "admin-pa55-Lp2c"
SECRETS = (KEY_PASSWORD, PASSWORD, ADMIN_PASSWORD)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="module")
def mtls(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[str]:
    """A broker whose only client listener is SSL and requires a client certificate."""
    state = tmp_path_factory.mktemp("mtls-broker")
    bootstrap = start_broker(
        state, "--protocol", "SSL", *certs.broker_properties(certs.broker_keystore, True)
    )
    try:
        yield bootstrap
    finally:
        stop_broker(state)


@pytest.fixture(scope="module")
def sasl_ssl(tmp_path_factory: pytest.TempPathFactory, certs: Certificates) -> Iterator[str]:
    """SASL_SSL with SCRAM; its certificate names kafka.example.test, not 127.0.0.1."""
    state = tmp_path_factory.mktemp("sasl-ssl-broker")
    users = " ".join(
        f"--add-scram {SCRAM}=[name={n},password={p}]"
        for n, p in (("admin", ADMIN_PASSWORD), (USER, PASSWORD))
    )
    jaas = (
        f"listener.name.client.{SCRAM.lower()}.sasl.jaas.config=org.apache.kafka.common.security.scram."
        f'ScramLoginModule required username="admin" password="{ADMIN_PASSWORD}";'
    )
    os.environ["LSTM_STREAM_KAFKA_FORMAT_ARGS"] = users
    try:
        bootstrap = start_broker(
            state,
            *("--protocol", "SASL_SSL", "--set", f"sasl.enabled.mechanisms={SCRAM}"),
            *("--set", f"sasl.mechanism.inter.broker.protocol={SCRAM}", "--set", jaas),
            *certs.broker_properties(certs.elsewhere_keystore, False),
        )
    finally:
        os.environ.pop("LSTM_STREAM_KAFKA_FORMAT_ARGS", None)
    try:
        yield bootstrap
    finally:
        stop_broker(state)


def _tls(certs: Certificates, ca: Path | None = None, client: bool = True) -> list[str]:
    args = ["--security-protocol", "SSL", "--ssl-cafile", str(ca or certs.ca)]
    if client:
        args += ["--ssl-certfile", str(certs.client_cert), "--ssl-keyfile", str(certs.client_key)]
    return args


def _sasl(certs: Certificates) -> list[str]:
    return [
        *("--security-protocol", "SASL_SSL", "--ssl-cafile", str(certs.ca), "--sasl-mechanism", SCRAM),
        *("--sasl-plain-username", USER),
    ]


def _secrets(prefix: str, sasl: bool = False) -> dict[str, str]:
    """The password through the environment, as users should give it: the client key's, or SASL's."""
    return {f"{prefix}SASL_PLAIN_PASSWORD": PASSWORD} if sasl else {f"{prefix}SSL_PASSWORD": KEY_PASSWORD}


def _producer(
    bootstrap: str, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LSTM_PRODUCER_", "LSTM_CONSUMER_"))}
    args = [sys.executable, "-m", "producer", "pattern", "--bootstrap-servers", bootstrap, "--quiet", *argv]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, env={**clean, **(env or {})})


def _consumer(
    bootstrap: str, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    keep = {"LSTM_CONSUMER_COMPILE_CACHE_DIR"}
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LSTM_CONSUMER_") or k in keep}
    args = [sys.executable, "-m", "consumer", "run", "--bootstrap-servers", bootstrap, "--http-port", "0"]
    return subprocess.run(
        [*args, *argv], capture_output=True, text=True, timeout=120, env={**clean, **(env or {})}
    )


def _one_line_error(result: subprocess.CompletedProcess[str], command: str, *needles: str) -> str:
    """Exit 2; the error is the last line of stderr, names its cause, shows no secret."""
    assert result.returncode == 2, (result.returncode, result.stderr[-3000:])
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{command}: error: "), result.stderr[-3000:]
    for needle in needles:
        assert needle in last, last
    for secret in SECRETS:
        assert secret not in result.stdout + result.stderr
    return last


def test_mutual_tls_with_the_right_files_works_end_to_end(
    mtls: str, certs: Certificates, tmp_path: Path
) -> None:
    produced = _producer(
        mtls,
        *_tls(certs),
        "--count",
        "300",
        "--create-topic",
        "--topic",
        "mtls-in",
        env=_secrets("LSTM_PRODUCER_"),
    )
    assert produced.returncode == 0, produced.stderr
    args = [
        "--input-topic",
        "mtls-in",
        "--output-topic",
        "mtls-out",
        "--group-id",
        "mtls",
        "--instance-id",
        "mtls",
    ]
    consumer = ConsumerProcess(
        mtls, tmp_path / "consumer.log", *args, *_tls(certs), env=_secrets("LSTM_CONSUMER_")
    )
    client = {
        "security_protocol": "SSL",
        "ssl_cafile": str(certs.ca),
        "ssl_certfile": str(certs.client_cert),
        "ssl_keyfile": str(certs.client_key),
        "ssl_password": KEY_PASSWORD,
    }
    try:
        records = read_all(mtls, "mtls-out", 300, timeout_s=240, **client)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(records) == 300
    assert "ssl_password=Secret('**********')" in consumer.log()
    for secret in SECRETS:
        assert secret not in consumer.log() + produced.stderr
    kcat = shutil.which("kcat") or shutil.which("kafkacat")
    if kcat is None:
        require("kcat reads the predictions as a client of its own (apt-get install kcat)")
    read = subprocess.run(
        [
            *(kcat, "-b", mtls, "-C", "-t", "mtls-out", "-o", "beginning", "-e", "-q", "-f", "%k %s\\n"),
            *("-X", "security.protocol=ssl", "-X", f"ssl.ca.location={certs.ca}"),
            *(
                "-X",
                f"ssl.certificate.location={certs.client_cert}",
                "-X",
                f"ssl.key.location={certs.client_key}",
            ),
            *("-X", f"ssl.key.password={KEY_PASSWORD}", "-X", "isolation.level=read_committed"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert read.returncode == 0, read.stderr
    assert len(read.stdout.splitlines()) == 300
    assert '"predicted":"4"' in read.stdout


@pytest.mark.parametrize("command", ["lstm-producer", "lstm-consumer"])
def test_a_wrong_ca_fails_at_once_in_one_line(mtls: str, certs: Certificates, command: str) -> None:
    run = _producer if command == "lstm-producer" else _consumer
    started = time.monotonic()
    result = run(
        mtls,
        *_tls(certs, ca=certs.other_ca),
        "--topic" if run is _producer else "--input-topic",
        "mtls-in",
        env=_secrets("LSTM_PRODUCER_" if run is _producer else "LSTM_CONSUMER_"),
    )
    _one_line_error(result, command, "is not trusted", "--ssl-cafile")
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("command", ["lstm-producer", "lstm-consumer"])
def test_a_missing_client_certificate_fails_at_once_in_one_line(
    mtls: str, certs: Certificates, command: str
) -> None:
    run = _producer if command == "lstm-producer" else _consumer
    result = run(
        mtls, *_tls(certs, client=False), "--topic" if run is _producer else "--input-topic", "mtls-in"
    )
    _one_line_error(result, command, "refused the client", "--ssl-certfile")


def test_a_client_certificate_from_another_ca_is_refused(mtls: str, certs: Certificates) -> None:
    args = [*_tls(certs, client=False), "--ssl-certfile", str(certs.stranger_cert)]
    result = _producer(mtls, *args, "--ssl-keyfile", str(certs.stranger_key), "--topic", "mtls-in")
    _one_line_error(result, "lstm-producer", "refused the client")


def test_tls_to_a_plaintext_listener_and_plaintext_to_a_tls_one(
    mtls: str, certs: Certificates, kafka_bootstrap: str
) -> None:
    result = _producer(mtls, "--topic", "mtls-in")
    _one_line_error(result, "lstm-producer", "answered with TLS", "--security-protocol SSL")
    # The other way round a plaintext broker just closes the connection: retried, then exit 1.
    result = _producer(
        kafka_bootstrap,
        *_tls(certs),
        "--topic",
        "x",
        "--connect-timeout-s",
        "3",
        env=_secrets("LSTM_PRODUCER_"),
    )
    assert result.returncode == 1, result.stderr
    assert "closed the connection during the TLS handshake" in result.stderr


def test_sasl_ssl_works_and_the_hostname_check_is_an_option(
    sasl_ssl: str, certs: Certificates, tmp_path: Path
) -> None:
    env = _secrets("LSTM_PRODUCER_", sasl=True)
    checked = _producer(sasl_ssl, *_sasl(certs), "--count", "3", "--topic", "sasl-ssl-in", env=env)
    _one_line_error(
        checked, "lstm-producer", "does not name the host connected to", "--no-ssl-check-hostname"
    )
    unchecked = [*_sasl(certs), "--no-ssl-check-hostname"]
    produced = _producer(
        sasl_ssl, *unchecked, "--count", "300", "--create-topic", "--topic", "sasl-ssl-in", env=env
    )
    assert produced.returncode == 0, produced.stderr
    args = ["--input-topic", "sasl-ssl-in", "--output-topic", "sasl-ssl-out", "--group-id", "sasl-ssl"]
    consumer = ConsumerProcess(
        sasl_ssl,
        tmp_path / "consumer.log",
        *args,
        "--instance-id",
        "s",
        *unchecked,
        env=_secrets("LSTM_CONSUMER_", sasl=True),
    )
    client = {
        "security_protocol": "SASL_SSL",
        "ssl_cafile": str(certs.ca),
        "ssl_check_hostname": False,
        "sasl_mechanism": SCRAM,
        "sasl_plain_username": USER,
        "sasl_plain_password": PASSWORD,
    }
    try:
        records = read_all(sasl_ssl, "sasl-ssl-out", 300, timeout_s=240, **client)
        metrics = consumer.get("/metrics")[1]
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(records) == 300
    for secret in SECRETS:
        assert secret not in consumer.log() + produced.stderr + metrics


@pytest.mark.parametrize("command", ["lstm-producer", "lstm-consumer"])
def test_unusable_files_and_misplaced_options_exit_2_naming_the_option(
    certs: Certificates, command: str, tmp_path: Path
) -> None:
    """Configuration, caught before any connection (no broker needed)."""
    run = _producer if command == "lstm-producer" else _consumer
    bootstrap = "127.0.0.1:9"
    cases = [
        ([*_tls(certs), "--ssl-keyfile", str(tmp_path / "missing.key")], "--ssl-keyfile: cannot read"),
        (["--security-protocol", "SSL", "--ssl-cafile", str(certs.dir)], "--ssl-cafile: cannot read"),
        (["--security-protocol", "SSL", "--ssl-cafile", str(certs.client_key)], "holds no PEM certificate"),
        (_tls(certs), "is encrypted: give its password"),
        ([*_tls(certs), "--ssl-password", "wrong"], "wrong --ssl-password"),
        (
            [
                *_tls(certs, client=False),
                "--ssl-certfile",
                str(certs.stranger_cert),
                "--ssl-keyfile",
                str(certs.dir / "plain-client.key"),
            ],
            "the private key does not belong to the certificate",
        ),
        (["--ssl-cafile", str(certs.ca)], "--ssl-cafile: only with --security-protocol SSL or SASL_SSL"),
        (["--sasl-mechanism", "PLAIN"], "--sasl-mechanism: only with --security-protocol SASL_PLAINTEXT"),
        (["--sasl-plain-username", "u"], "--sasl-plain-username: only with --security-protocol SASL"),
    ]
    unreadable = tmp_path / "unreadable.pem"
    unreadable.write_text(certs.ca.read_text())
    unreadable.chmod(0)
    if os.geteuid() != 0:  # root reads any file: the missing file and the directory cover it there
        cases.append((["--security-protocol", "SSL", "--ssl-cafile", str(unreadable)], "Permission denied"))
    for argv, needle in cases:
        _one_line_error(run(bootstrap, *argv), command, needle)
    env = {f"{'LSTM_PRODUCER_' if run is _producer else 'LSTM_CONSUMER_'}SASL_PLAIN_PASSWORD": PASSWORD}
    _one_line_error(
        run(bootstrap, env=env), command, "--sasl-plain-password: only with --security-protocol SASL"
    )
