"""Layout promises: console scripts, `python -m`, the producer never importing TensorFlow, and the
wheel `make dist` builds installing in a fresh virtualenv (README's Install without Docker)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

BIN = Path(sys.executable).parent


@pytest.mark.parametrize("name", ["producer", "consumer"])
def test_console_script_and_module_run(name: str) -> None:
    script = subprocess.run([str(BIN / f"lstm-{name}"), "--help"], capture_output=True, text=True, timeout=60)
    assert script.returncode == 0, script.stderr
    assert f"usage: lstm-{name}" in script.stdout
    module = subprocess.run(
        [sys.executable, "-m", name, "--help"], capture_output=True, text=True, timeout=60
    )
    assert module.returncode == 0, module.stderr
    assert module.stdout == script.stdout


def test_producer_does_not_import_tensorflow() -> None:
    code = (
        "import sys, producer.cli; "
        "sys.exit(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_producer_distribution_does_not_require_tensorflow() -> None:
    from importlib.metadata import requires

    base = [r for r in requires("lstm-stream") or [] if "extra ==" not in r]
    assert base, "the base distribution declares its producer dependencies"
    assert not any(r.lower().startswith(("tensorflow", "keras")) for r in base)


@pytest.mark.slow
def test_the_wheel_make_dist_builds_installs_in_a_fresh_venv(tmp_path: Path) -> None:
    """README's Install without Docker: the wheel alone gives a working producer without
    TensorFlow; with the [consumer] extra, the consumer too."""
    dist, venv = tmp_path / "dist", tmp_path / "venv"
    built = subprocess.run(
        ["make", "-s", "dist", f"DIST={dist}", f"VENV={BIN.parent}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = dist.glob("lstm_stream-*-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        (licence,) = [name for name in archive.namelist() if name.endswith(".dist-info/licenses/LICENSE")]
        assert "Apache License" in archive.read(licence).decode()
        typed = {name for name in archive.namelist() if name.endswith("/py.typed")}
        assert typed == {"consumer/py.typed", "producer/py.typed", "lstm_stream/py.typed"}
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"

    def pip(*args: str) -> None:
        result = subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *args],
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, result.stderr[-3000:]

    def pip_install(requirement: str, lock: str) -> None:
        """The lock's files (hashes checked), then the wheel with no index: the ranges the wheel
        declares must accept every locked version, or pip has nothing to install from."""
        pip("--require-hashes", "-r", str(REPO / "requirements" / lock))
        pip("--no-index", requirement)

    def has_tensorflow() -> bool:
        probe = "import importlib.util, sys; sys.exit(importlib.util.find_spec('tensorflow') is None)"
        return subprocess.run([str(python), "-c", probe], timeout=60).returncode == 0

    pip_install(str(wheel), "producer.lock")
    assert not has_tensorflow()
    producer = subprocess.run([str(venv / "bin" / "lstm-producer"), "--help"], capture_output=True, text=True)
    assert producer.returncode == 0, producer.stderr
    assert "usage: lstm-producer" in producer.stdout
    pip_install(f"{wheel}[consumer]", "consumer.lock")
    assert has_tensorflow()
    consumer = subprocess.run(
        [str(venv / "bin" / "lstm-consumer"), "--help"], capture_output=True, text=True, timeout=120
    )
    assert consumer.returncode == 0, consumer.stderr
    assert "usage: lstm-consumer" in consumer.stdout
    # ... and learns: the installed consumer evaluates a short stream with TensorFlow.
    tokens = tmp_path / "tokens.txt"
    tokens.write_text("".join(f"{'aab'[i % 3]}\n" for i in range(300)))
    small = ["--window", "8", "--loss-steps", "4", "--units", "8", "--compile-cache-dir", "none"]
    evaluate = subprocess.run(
        [str(venv / "bin" / "lstm-consumer"), "evaluate", str(tokens), "--json", "--quiet", *small],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert evaluate.returncode == 0, evaluate.stderr
    assert json.loads(evaluate.stdout)["messages"] == 300
