"""The lock files: what CI, `make venv` and the images install, exactly and with hashes.

pyproject.toml declares ranges, so that the package installs beside others; requirements/*.lock
pin every package, direct and transitive, for every platform and supported Python at once, with
the hash of every file. A lock that no longer follows from pyproject.toml (a range changed, an
extra added) fails here, as does an image lock that carries what its image must not: the
producer's TensorFlow, the consumer's matplotlib. Resolving asks PyPI (uv), as `make lock` does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
LOCKS = REPO / "requirements"
UV = Path(sys.executable).parent / "uv"
# What `make lock` runs for each file (the Makefile's LOCK_FLAGS; read from it below).
EXTRAS = {"producer.lock": [], "consumer.lock": ["consumer"], "dev.lock": ["consumer", "plot", "dev"]}
PIN = re.compile(r"^([A-Za-z0-9._-]+)==(\S+)(?: ; (.*?))? \\$")


def pins(lock: str) -> dict[str, tuple[str, str]]:
    """Package name -> its version and its marker ('' for none)."""
    out = {}
    for line in (LOCKS / lock).read_text().splitlines():
        match = PIN.match(line)
        if match:
            out[match[1].lower()] = (match[2], match[3] or "")
    return out


def body(text: str) -> list[str]:
    """The lock without its header comment (which names the command)."""
    return [line for line in text.splitlines() if not line.startswith("#")]


def make_flags() -> list[str]:
    makefile = (REPO / "Makefile").read_text()
    (line,) = [x for x in makefile.splitlines() if x.startswith("LOCK_FLAGS = ")]
    return line.removeprefix("LOCK_FLAGS = ").split()


def test_every_lock_pins_every_file_with_its_hash() -> None:
    for lock in EXTRAS:
        text = (LOCKS / lock).read_text()
        entries = re.split(r"\n(?=[A-Za-z0-9])", text.split("\n", 2)[2].strip())
        assert entries, lock
        for entry in entries:
            assert PIN.match(entry.splitlines()[0]), f"{lock}: not an exact pin: {entry.splitlines()[0]}"
            assert "--hash=sha256:" in entry, f"{lock}: no hash for {entry.splitlines()[0]}"


def test_each_image_lock_holds_only_what_its_image_needs() -> None:
    producer, consumer, dev = pins("producer.lock"), pins("consumer.lock"), pins("dev.lock")
    assert {"kafka-python", "crc32c", "tqdm"} <= producer.keys()
    assert not {"tensorflow", "tensorflow-cpu", "keras", "numpy", "matplotlib"} & producer.keys()
    assert {"tensorflow", "tensorflow-cpu", "keras", "numpy", "prometheus-client"} <= consumer.keys()
    assert "matplotlib" not in consumer, "matplotlib is the [plot] extra: not in the service's image"
    assert {"matplotlib", "pytest", "mypy", "ruff", "uv"} <= dev.keys()
    # One lock for every platform: the CPU-only build on x86-64 Linux, the full one elsewhere.
    assert "x86_64" in consumer["tensorflow-cpu"][1]
    assert "x86_64" in consumer["tensorflow"][1]
    # The images and the venv install the same versions of what they share.
    for lock in (producer, consumer):
        for name, (version, _) in lock.items():
            assert dev.get(name, ("",))[0] == version, f"{name} {version}: the tests run another version"


@pytest.mark.parametrize("lock", list(EXTRAS))
def test_the_lock_follows_from_pyproject(lock: str, tmp_path: Path) -> None:
    """`make lock` would write the same file: the locked versions are kept where the ranges allow
    (uv prefers the versions of the file it writes), so only a change to pyproject.toml shows."""
    out = tmp_path / lock
    shutil.copy(LOCKS / lock, out)
    extras = [arg for extra in EXTRAS[lock] for arg in ("--extra", extra)]
    done = subprocess.run(
        [str(UV), "pip", "compile", "pyproject.toml", *extras, *make_flags(), "-o", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert body(out.read_text()) == body((LOCKS / lock).read_text()), f"{lock} is stale: run `make lock`"
