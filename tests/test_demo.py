"""`make demo` at CI size: the whole local topology learns the seed pattern, then stops without a trace.

scripts/demo (what `make demo` runs) starts its own broker in a temporary DEMO_DIR on free ports,
the topics, the consumer, the producer (seed pattern, 200 msgs/s) and Prometheus when installed,
and stops everything by itself after DEMO_SECONDS. The consumer needs 30-90 s to compile its model
on a loaded 2-core machine; the seed pattern is then learned within a few hundred messages.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import REPO, require

DEMO = REPO / "scripts" / "demo"
DEMO_SECONDS = 150
HIT_RATE = re.compile(r"status: .*hit rate last 1000: ([\d.]+)%")
STARTED = re.compile(r"^demo: started (\w+) \(pid (\d+)\)")
PROMETHEUS_URL = re.compile(r"^\s*prometheus\s+(http://127\.0\.0\.1:\d+)/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def processes_of(demo_dir: Path) -> list[str]:
    """Running processes whose command line or working directory is inside demo_dir."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            cwd = os.readlink(proc / "cwd")
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and (str(demo_dir) in cmdline or cwd.startswith(str(demo_dir))):
            found.append(f"{proc.name}: {cmdline[:200]}")
    return found


def pid_alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def consumer_scraped(prometheus: str) -> bool:
    query = urllib.parse.urlencode({"query": 'up{job="lstm-consumer"}'})
    try:
        with urllib.request.urlopen(f"{prometheus}/api/v1/query?{query}", timeout=5) as response:
            result = json.load(response)["data"]["result"]
    except (OSError, ValueError, KeyError):
        return False
    return any(sample["value"][1] == "1" for sample in result)


def test_make_demo_recipe_runs_scripts_demo() -> None:
    if shutil.which("make") is None:
        require("make is not installed")
    result = subprocess.run(
        ["make", "-n", "demo"], cwd=REPO, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "scripts/demo" in result.stdout


def test_demo_help_and_bad_configuration() -> None:
    result = subprocess.run([sys.executable, str(DEMO), "--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "DEMO_SECONDS" in result.stdout
    env = os.environ | {"DEMO_RATE": "fast", "VENV": sys.prefix}
    result = subprocess.run([sys.executable, str(DEMO)], capture_output=True, text=True, env=env, timeout=30)
    assert result.returncode == 2
    assert "DEMO_RATE" in result.stderr


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.timeout(DEMO_SECONDS + 450)
def test_demo_learns_the_seed_pattern_and_leaves_nothing_running(tmp_path: Path) -> None:
    if shutil.which("java") is None:
        require("Java is not installed: the demo's broker needs it")
    demo_dir = tmp_path / "demo"
    env = os.environ | {
        "DEMO_DIR": str(demo_dir),
        "DEMO_SECONDS": str(DEMO_SECONDS),
        "DEMO_KAFKA_PORT": str(free_port()),
        "DEMO_HTTP_PORT": str(free_port()),
        "DEMO_PROMETHEUS_PORT": str(free_port()),
        "VENV": sys.prefix,
    }
    proc = subprocess.Popen(
        [sys.executable, str(DEMO)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []

    def collect() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    scraped = False
    try:
        deadline = time.monotonic() + DEMO_SECONDS + 400
        while proc.poll() is None and time.monotonic() < deadline:
            prometheus = next((m.group(1) for m in map(PROMETHEUS_URL.match, lines) if m), None)
            if prometheus and not scraped and any(HIT_RATE.search(line) for line in lines):
                scraped = consumer_scraped(prometheus)
            time.sleep(2)
        code = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:  # the test failed: stop the demo the way a user would, then by force
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            subprocess.run(
                [sys.executable, str(REPO / "scripts" / "kafka"), "--dir", str(demo_dir / "broker"), "down"],
                capture_output=True,
                timeout=60,
                check=False,
            )
    reader.join(timeout=10)
    output = "\n".join(lines)

    assert code == 0, output[-5000:]
    assert "demo: stopped cleanly" in output
    rates = [float(m.group(1)) for m in map(HIT_RATE.search, lines) if m]
    assert rates, f"no status line with a hit rate:\n{output[-5000:]}"
    assert max(rates) >= 99.0, f"hit rates seen: {rates}"
    started = {m.group(1): int(m.group(2)) for m in map(STARTED.match, lines) if m}
    assert {"consumer", "producer"} <= set(started), output[-3000:]
    if shutil.which("prometheus"):
        assert "prometheus" in started
        assert scraped, "Prometheus never scraped the demo's consumer"
    assert not [name for name, pid in started.items() if pid_alive(pid)]
    assert processes_of(demo_dir) == [], "the demo left processes behind"
    assert not (demo_dir / "broker" / "broker.pid").exists()
