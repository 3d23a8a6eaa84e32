"""Configuration as deployments give it: through the environment, as docker-compose passes it.

An empty variable (what compose passes for an unset ``${VAR}``) counts as unset; a variable of the
program's prefix that is no option is a warning naming the closest option; a value that cannot
be used names the option and its variable, exit 2. Both commands, in process (no broker needed:
each case fails, or is checked, before connecting).
"""

from __future__ import annotations

import argparse

import pytest

from consumer.cli import build_parser as consumer_build_parser
from consumer.cli import main as consumer_main
from consumer.settings import PREFIX as CONSUMER
from consumer.settings import RunSettings
from lstm_stream.settings import from_namespace
from producer.cli import build_parser as producer_parser
from producer.cli import load_settings as producer_settings
from producer.cli import main as producer_main
from producer.settings import PREFIX as PRODUCER


def _clean(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith((CONSUMER, PRODUCER)) and name != f"{CONSUMER}COMPILE_CACHE_DIR":
            monkeypatch.delenv(name)


def test_empty_variables_count_as_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    _clean(monkeypatch)
    for name in ("COUNT", "RATE", "TOPIC", "SSL_CAFILE", "REPLICATION_FACTOR", "SASL_PLAIN_PASSWORD"):
        monkeypatch.setenv(PRODUCER + name, "")
    monkeypatch.setenv(PRODUCER + "PARTITIONS", "  ")
    settings = producer_settings(producer_parser().parse_args(["pattern"]))
    assert (settings.count, settings.rate, settings.topic, settings.partitions) == (None, 0.0, "sequence", 1)
    assert settings.replication_factor is None
    for name in ("COMMIT_INTERVAL_MS", "WORKERS", "INPUT_TOPIC", "VALUE_FIELD", "KEY_FIELD", "HTTP_PORT"):
        monkeypatch.setenv(CONSUMER + name, "")
    from consumer.cli import build_parser

    run = from_namespace(RunSettings, CONSUMER, build_parser().parse_args(["run"]))
    assert (run.commit_interval_ms, run.input_topic, run.value_field, run.key_field) == (
        100,
        "sequence",
        "token",
        "",
    )


def test_a_mistyped_variable_is_a_warning_naming_the_closest_option(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("LSTM_PRODUCER_BOOTSTRAP_SERVER", "127.0.0.1:1")
    monkeypatch.setenv("LSTM_PRODUCER_TOPIC", "x")  # an option: no warning
    with pytest.raises(SystemExit):
        producer_main(["pattern", "--help"])
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "lstm-producer: warning: LSTM_PRODUCER_BOOTSTRAP_SERVER is not an option "
        "(did you mean LSTM_PRODUCER_BOOTSTRAP_SERVERS, --bootstrap-servers?)"
    ]
    monkeypatch.setenv("LSTM_CONSUMER_WINDOWS", "8")
    monkeypatch.setenv("LSTM_CONSUMER_XYZZY", "1")
    monkeypatch.setenv("LSTM_CONSUMER_CHUNK", "8")  # evaluate's option: known to the program
    with pytest.raises(SystemExit):
        consumer_main(["run", "--help"])
    err = capsys.readouterr().err
    assert (
        "lstm-consumer: warning: LSTM_CONSUMER_WINDOWS is not an option "
        "(did you mean LSTM_CONSUMER_WINDOW, --window?)" in err
    )
    assert "lstm-consumer: warning: LSTM_CONSUMER_XYZZY is not an option\n" in err
    assert "CHUNK" not in err


CONSUMER_CASES = [
    (
        "COMMIT_INTERVAL_MS",
        "fast",
        "--commit-interval-ms (env LSTM_CONSUMER_COMMIT_INTERVAL_MS): expected a whole",
    ),
    (
        "REPLICATION_FACTOR",
        "0",
        "--replication-factor (env LSTM_CONSUMER_REPLICATION_FACTOR): must be >= 1, got 0",
    ),
    (
        "VALUE_FIELD",
        "event..type",
        "--value-field (env LSTM_CONSUMER_VALUE_FIELD): an empty key in 'event..type'",
    ),
    ("KEY_FIELD", "user.id", "--key-field: only with --value-format json"),
    ("SASL_MECHANISM", "PLAIN", "--sasl-mechanism: only with --security-protocol SASL_PLAINTEXT or SASL_SSL"),
    ("SSL_CERTFILE", "/no/such.pem", "--ssl-certfile: only with --security-protocol SSL or SASL_SSL"),
]
PRODUCER_CASES = [
    (
        "REPLICATION_FACTOR",
        "three",
        "--replication-factor (env LSTM_PRODUCER_REPLICATION_FACTOR): expected a whole",
    ),
    (
        "VALUE_FIELD",
        "a\\",
        "--value-field (env LSTM_PRODUCER_VALUE_FIELD): 'a\\\\' ends with a lone backslash",
    ),
    ("SASL_PLAIN_USERNAME", "app", "--sasl-plain-username: only with --security-protocol SASL_PLAINTEXT"),
    ("SSL_CAFILE", "/no/such/ca.pem", "--ssl-cafile: only with --security-protocol SSL or SASL_SSL"),
]


@pytest.mark.parametrize(
    ("program", "variable", "value", "message"),
    [("lstm-consumer", *case) for case in CONSUMER_CASES]
    + [("lstm-producer", *case) for case in PRODUCER_CASES],
)
def test_values_that_cannot_be_used_exit_2_naming_option_and_variable(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    program: str,
    variable: str,
    value: str,
    message: str,
) -> None:
    _clean(monkeypatch)
    consumer = program == "lstm-consumer"
    monkeypatch.setenv((CONSUMER if consumer else PRODUCER) + variable, value)
    assert (consumer_main(["run"]) if consumer else producer_main(["pattern"])) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].startswith(f"{program}: error: {message}")


def test_a_missing_ca_file_exits_2_at_once_instead_of_retrying(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv(CONSUMER + "SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv(CONSUMER + "SSL_CAFILE", "/no/such/ca.pem")
    assert consumer_main(["run"]) == 2
    assert (
        capsys.readouterr()
        .err.strip()
        .endswith(
            "lstm-consumer: error: --ssl-cafile: cannot read /no/such/ca.pem: No such file or directory"
        )
    )


def test_help_shows_choices_and_empty_or_secret_defaults_plainly_and_each_commands_own_heading(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean(monkeypatch)
    monkeypatch.setenv("LSTM_CONSUMER_SASL_PLAIN_PASSWORD", "s3cret")  # a value never shown
    with pytest.raises(SystemExit):
        consumer_main(["run", "--help"])
    run_help = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert "Secret(" not in run_help
    assert "s3cret" not in run_help
    assert "LSTM_CONSUMER_SASL_PLAIN_PASSWORD; default: none]" in run_help
    assert "LSTM_CONSUMER_INSTANCE_ID; default: none]" in run_help
    assert "default: ]" not in run_help
    assert "--mode {strict,relaxed}" in run_help
    assert "--sasl-mechanism {PLAIN,SCRAM-SHA-256,SCRAM-SHA-512}" in run_help
    assert "(one of: PLAIN, SCRAM-SHA-256, SCRAM-SHA-512; or empty)" in run_help
    with pytest.raises(SystemExit):
        consumer_main(["export", "--help"])
    export_help = capsys.readouterr().out
    lines = export_help.splitlines()
    headings = [line[:-1] for line in lines if line.endswith(":") and not line[0].isspace()]
    assert "evaluate" not in headings
    own = lines.index("export:")
    assert lines[own + 1].strip().startswith("--partition")
    with pytest.raises(SystemExit):
        producer_main(["pattern", "--help"])
    producer_help = " ".join(capsys.readouterr().out.split())
    assert "default: ]" not in producer_help
    assert "Secret(" not in producer_help


def _choices(parser: argparse.ArgumentParser, command: str) -> dict[str, list[str]]:
    """Each option of `command` that lists choices, as completion tools read them."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {
        a.option_strings[0]: list(a.choices)
        for a in sub.choices[command]._actions
        if a.option_strings and a.choices is not None
    }


def test_choices_are_listed_for_completion_and_checked_with_one_message(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _clean(monkeypatch)
    run = _choices(consumer_build_parser(), "run")
    assert run["--mode"] == ["strict", "relaxed"]
    assert run["--value-format"] == ["text", "json"]
    assert run["--sasl-mechanism"] == ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]  # "" (unset) not listed
    assert "--window" not in run
    assert _choices(producer_parser(), "pattern")["--value-format"] == ["text", "json"]
    # A flag's bad choice reads as the variable's does: exit 2, the option, the choices.
    assert consumer_main(["run", "--mode", "fast"]) == 2
    flag_error = capsys.readouterr().err.strip().splitlines()[-1]
    monkeypatch.setenv(CONSUMER + "MODE", "fast")
    assert consumer_main(["run"]) == 2
    env_error = capsys.readouterr().err.strip().splitlines()[-1]
    expected = (
        "lstm-consumer: error: --mode (env LSTM_CONSUMER_MODE): must be one of strict, relaxed, got 'fast'"
    )
    assert flag_error == env_error == expected
