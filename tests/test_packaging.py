"""Layout promises: console scripts, `python -m`, and the producer never importing TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
