"""scripts/kafka: idempotent `up`, truthful `status`, `down` stops only our broker."""

from __future__ import annotations

import importlib.machinery
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import KAFKA_SCRIPT, require

pytestmark = pytest.mark.integration


def kafka(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(KAFKA_SCRIPT), "--dir", str(state_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_up_twice_gives_one_broker_and_down_stops_it(tmp_path: Path) -> None:
    state = tmp_path / "broker"
    assert kafka(state, "status").returncode == 3
    first = kafka(state, "up")
    if first.returncode != 0:
        require(f"scripts/kafka up failed: {first.stderr[-2000:]}")
    try:
        assert first.stdout.splitlines()[-1].startswith("bootstrap=127.0.0.1:")
        pid = int((state / "broker.pid").read_text())
        second = kafka(state, "up")
        assert second.returncode == 0
        assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]
        assert int((state / "broker.pid").read_text()) == pid
        status = kafka(state, "status")
        assert status.returncode == 0
        assert f"pid={pid}" in status.stdout
        assert "listening" in status.stdout
    finally:
        down = kafka(state, "down")
    assert down.returncode == 0
    assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert kafka(state, "status").returncode == 3
    again = kafka(state, "down")
    assert again.returncode == 0
    assert "no broker of ours" in again.stderr


def test_restart_on_same_data_keeps_port(tmp_path: Path) -> None:
    state = tmp_path / "broker"
    first = kafka(state, "up")
    if first.returncode != 0:
        require(f"scripts/kafka up failed: {first.stderr[-2000:]}")
    kafka(state, "down")
    second = kafka(state, "up")
    try:
        assert second.returncode == 0, second.stderr
        assert second.stdout.splitlines()[-1] == first.stdout.splitlines()[-1]
    finally:
        kafka(state, "down", "--purge")
    assert not state.exists()


def load_script() -> object:
    loader = importlib.machinery.SourceFileLoader("scripts_kafka", str(KAFKA_SCRIPT))
    spec = importlib.util.spec_from_loader("scripts_kafka", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


@pytest.mark.parametrize("draws", [5_000])
def test_cluster_ids_never_start_with_a_dash(draws: int) -> None:
    # About 1 in 64 random ids starts with '-', which kafka-storage read as an option: CI once
    # failed to start a broker that way. 5,000 draws make a regression near-certain to show.
    new_cluster_id = load_script().new_cluster_id  # type: ignore[attr-defined]
    ids = [new_cluster_id() for _ in range(draws)]
    assert all(not cid.startswith("-") and len(cid) == 22 for cid in ids)
    assert len(set(ids)) == draws
    assert any("-" in cid for cid in ids)  # the dash is still a valid character elsewhere
