"""The consumer installs on every platform it names: its whole dependency set resolves, wheels
only, for Linux on x86-64 and aarch64 and macOS on Apple silicon, with Python 3.11 to 3.13, at the
versions and hashes of requirements/consumer.lock, the consumer image's lock, and from
pyproject.toml's ranges alone (scripts/resolve-platform: pip's resolver with the target's tags and
environment markers). A pin without a wheel somewhere fails here, before a user finds it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO, require

pytestmark = pytest.mark.integration  # it asks PyPI

PLATFORMS = ["linux-x86_64", "linux-aarch64", "macos-arm64"]
PYTHONS = ["3.11", "3.12", "3.13"]


def resolve(
    platform: str, python: str, pyproject: Path | None = None, lock: Path | None = None
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(REPO / "scripts" / "resolve-platform"), "--platform", platform]
    command += ["--python", python, "--extra", "consumer"]
    command += ["--pyproject", str(pyproject)] if pyproject else []
    command += ["--lock", str(lock)] if lock else []
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _report(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    if (
        result.returncode != 0
        and "Could not find a version" not in result.stderr
        and any(
            word in result.stderr for word in ("NewConnectionError", "Max retries", "Network is unreachable")
        )
    ):
        require(f"PyPI is not reachable: {result.stderr[-500:]}")
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(json.loads(result.stdout))


@pytest.mark.parametrize("python", PYTHONS)
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("source", ["lock", "ranges"])
def test_the_consumer_resolves_to_wheels(platform: str, python: str, source: str) -> None:
    lock = REPO / "requirements" / "consumer.lock" if source == "lock" else None
    report = _report(resolve(platform, python, lock=lock))
    files = {item["name"].lower().replace("_", "-"): item["file"] for item in report["install"]}
    tensorflow = "tensorflow-cpu" if platform == "linux-x86_64" else "tensorflow"
    assert tensorflow in files
    assert files[tensorflow].endswith(".whl")
    assert {"keras", "numpy", "prometheus-client", "kafka-python"} <= set(files)
    tag = {"linux-x86_64": "x86_64", "linux-aarch64": "aarch64", "macos-arm64": "macosx"}[platform]
    cp = f"cp{python.replace('.', '')}"
    assert tag in files[tensorflow], files[tensorflow]
    assert cp in files[tensorflow], files[tensorflow]
    assert all(name.endswith(".whl") for name in files.values())


def test_a_pin_without_an_aarch64_wheel_fails_the_resolution(tmp_path: Path) -> None:
    """What the consumer extra was before: the CPU build, unconditionally."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    extra = [
        r for r in project["project"]["optional-dependencies"]["consumer"] if not r.startswith("tensorflow")
    ]
    lines = [
        "[project]",
        'name = "old"',
        'version = "0"',
        f"dependencies = {json.dumps(project['project']['dependencies'])}",
    ]
    lines += [
        "[project.optional-dependencies]",
        f"consumer = {json.dumps(['tensorflow-cpu==2.21.0', *extra])}",
    ]
    old = tmp_path / "pyproject.toml"
    old.write_text("\n".join(lines) + "\n")
    assert _report(resolve("linux-x86_64", "3.12", old))["install"]
    failed = resolve("linux-aarch64", "3.12", old)
    assert failed.returncode != 0
    assert "tensorflow-cpu==2.21.0" in failed.stderr


def test_requires_python_and_the_venv_script_accept_3_11_to_3_13() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["requires-python"] == ">=3.11,<3.14"
    venv = (REPO / "scripts" / "venv").read_text()
    assert "3.11|3.12|3.13" in venv
