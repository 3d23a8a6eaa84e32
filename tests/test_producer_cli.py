"""lstm-producer's command line: help, exit codes, environment variables, clear errors.

No broker here: these runs fail before or while connecting (see test_producer_kafka.py).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from producer.cli import COMMANDS, main

UNREACHABLE = ["--bootstrap-servers", "127.0.0.1:1", "--connect-timeout-s", "1"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in os.environ:
        if name.startswith("LSTM_PRODUCER_"):
            monkeypatch.delenv(name)


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse: --help, usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


@pytest.mark.parametrize("argv", [[], *[[name] for name in COMMANDS]])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([*argv, "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: lstm-producer {' '.join(argv)}".rstrip())
    assert "LSTM_PRODUCER_" in out


def test_pattern_help_explains_the_grammar(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["pattern", "--help"])
    out = capsys.readouterr().out
    for expected in ["(1*2,2)*2,1*2,3", "--noise", "LSTM_PRODUCER_SPEC"]:
        assert expected in out


@pytest.mark.parametrize(
    "argv", [["pattern", "--no-such-option"], ["nosuchsource"], [], ["pattern", "--rate", "1", "extra"]]
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    code, err = run_main(capsys, *argv)
    assert code == 2
    assert "usage: lstm-producer" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["pattern", "--spec", "4,8*x"],
            "--spec (env LSTM_PRODUCER_SPEC): position 5: expected a repeat count after '*'",
        ),
        (["pattern", "--spec", "4*6,(8"], "--spec (env LSTM_PRODUCER_SPEC): position 7: expected ',' or ')'"),
        (["pattern", "--noise", "1.5"], "--noise (env LSTM_PRODUCER_NOISE): must be between 0 and 1"),
        (["pattern", "--keys", "2", "--key", "k"], "--key: only with --keys 1"),
        (["pattern", "--rate", "-1"], "--rate (env LSTM_PRODUCER_RATE): must be >= 0"),
        (["pattern", "--count", "zero"], "--count (env LSTM_PRODUCER_COUNT): expected a whole number"),
        (
            ["pattern", "--value-format", "xml"],
            "--value-format (env LSTM_PRODUCER_VALUE_FORMAT): must be one of",
        ),
        (["stdin", "--bootstrap-servers", "nohost"], "--bootstrap-servers: expected host:port"),
        (["stdin", "--linger-ms", "100000"], "--delivery-timeout-ms: must be >= --linger-ms + 30000"),
        (["file"], "PATH (or --path, env LSTM_PRODUCER_PATH): required"),
        (["file", "a.txt", "--path", "b.txt"], "PATH and --path: give only one"),
        (["file", "a.txt", "--column", "c"], "--column/--key-column: only with --csv"),
        (["file", "a.csv", "--csv"], "--column: required with --csv"),
    ],
)
def test_configuration_errors_exit_2_naming_the_option(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, err = run_main(capsys, *argv)
    assert code == 2
    assert err.startswith("lstm-producer: error: ")
    assert message in err


def test_environment_variables_are_read(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LSTM_PRODUCER_SPEC", "a,(b")
    code, err = run_main(capsys, "pattern")
    assert (code, err.strip()) == (
        2,
        "lstm-producer: error: --spec (env LSTM_PRODUCER_SPEC): position 5: "
        "expected ',' or ')' to close the group opened at position 3, found the end",
    )
    code, err = run_main(capsys, "pattern", "--spec", "a,b", *UNREACHABLE)  # a flag wins
    assert code == 1
    assert "cannot reach Kafka" in err


def test_environment_names_the_broker(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LSTM_PRODUCER_BOOTSTRAP_SERVERS", "127.0.0.1:1")
    monkeypatch.setenv("LSTM_PRODUCER_CONNECT_TIMEOUT_S", "0.5")
    code, err = run_main(capsys, "pattern", "--count", "3")
    assert code == 1
    assert "cannot reach Kafka at 127.0.0.1:1 within 0.5 s" in err


def test_path_from_the_environment(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LSTM_PRODUCER_PATH", str(tmp_path / "absent.txt"))
    code, err = run_main(capsys, "file")
    assert code == 2
    assert f"PATH: cannot read '{tmp_path / 'absent.txt'}': No such file or directory" in err


@pytest.mark.parametrize("name", ["missing.txt", "."])
def test_unreadable_file_exits_2_before_connecting(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, name: str
) -> None:
    code, err = run_main(capsys, "file", str(tmp_path / name), *UNREACHABLE)
    assert code == 2
    assert "lstm-producer: error: PATH: cannot read" in err
    assert "Kafka" not in err


def test_missing_csv_column_exits_2(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user,action\nu,a\n", encoding="utf-8")
    code, err = run_main(capsys, "file", str(path), "--csv", "--column", "act", *UNREACHABLE)
    assert code == 2
    assert "--column: 'act' is not a column of" in err
    assert "(user, action)" in err


def test_unreachable_broker_fails_clearly_in_bounded_time() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "producer", "pattern", "--count", "5", *UNREACHABLE],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("lstm-producer: error: cannot reach Kafka at 127.0.0.1:1 within 1 s")
    assert "Traceback" not in result.stderr


def test_stdin_with_unreachable_broker_does_not_wait_for_input() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "producer", "stdin", *UNREACHABLE],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None
    assert proc.stderr is not None
    try:
        code = proc.wait(timeout=60)  # stdin stays open: it must fail on its own
    finally:
        proc.kill()
        proc.stdin.close()
    assert code == 1
    assert "cannot reach Kafka" in proc.stderr.read()
    proc.stderr.close()


def test_no_producer_module_imports_tensorflow() -> None:
    modules = ["cli", "progress", "publisher", "settings", "sources", "spec"]
    code = (
        f"import sys; import {', '.join('producer.' + m for m in modules)}; "
        "sys.exit(any(m.split('.')[0] in ('tensorflow', 'keras', 'numpy') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0
