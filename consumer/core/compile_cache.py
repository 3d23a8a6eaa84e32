"""A persistent XLA compile cache that processes can share: the second start skips the compile.

TensorFlow's own persistent cache (`--tf_xla_persistent_cache_directory`) writes each compiled
program in place, so a process reading the directory while another writes it can read half an
entry and fail its call. Here TensorFlow gets a private directory instead, filled at start with
copies of the shared directory's complete entries; what it compiles is published back to the
shared directory under a temporary name and renamed into place (atomic on one filesystem), so
a reader sees an entry whole or not at all. Any number of processes (replicas on one volume,
a restarted consumer beside a running one) can share one directory.

Call `enable` before the process compiles its first program (TensorFlow reads its XLA flags
once); `publish` after a call that may have compiled; the private directory goes at exit.

>>> enable("")  # no directory: no cache
False
"""

from __future__ import annotations

import atexit
import logging
import os
import shutil
import tempfile
import threading
from pathlib import Path

__all__ = ["DEFAULT_DIR", "compiled_programs", "enable", "publish", "shared_dir"]

DEFAULT_DIR = "~/.cache/lstm-stream/xla"
FLAG = "--tf_xla_persistent_cache_directory"
_PRIVATE_PREFIX = "lstm-stream-xla-"

log = logging.getLogger(__name__)

_shared: Path | None = None
_private: Path | None = None
_published: dict[str, int] = {}  # entry name -> its mtime (ns) in the private dir when known
_compiled: set[str] = set()  # entries this process compiled (written by TensorFlow here)


def shared_dir() -> Path | None:
    """The shared directory in use, or None."""
    return _shared


def enable(directory: str) -> bool:
    """Use `directory` (created if missing; "" = none) as the shared compile cache of this
    process. False, and nothing changes, when there is none or the cache is already set: by an
    earlier call, or by TF_XLA_FLAGS naming a directory of its own (the user's choice wins)."""
    global _shared, _private
    if not directory or _private is not None or FLAG in os.environ.get("TF_XLA_FLAGS", ""):
        return False
    shared = Path(directory).expanduser()
    try:
        shared.mkdir(parents=True, exist_ok=True)
        _remove_stale_private_dirs()
        private = Path(tempfile.mkdtemp(prefix=f"{_PRIVATE_PREFIX}{os.getpid()}-"))
    except OSError as exc:  # an unwritable cache costs a compile, never the process
        log.warning("compile cache %s not usable (%s): compiling without it", shared, exc)
        return False
    for entry in _entries(shared):
        try:
            shutil.copyfile(entry, private / entry.name)
            _published[entry.name] = (private / entry.name).stat().st_mtime_ns
        except OSError:  # removed meanwhile: compiled again if needed
            continue
    _shared, _private = shared, private
    flags = os.environ.get("TF_XLA_FLAGS", "")
    os.environ["TF_XLA_FLAGS"] = f"{flags} {FLAG}={private}".strip()
    atexit.register(_close)
    return True


def publish() -> int:
    """Copy the entries compiled since the last call into the shared directory; their number."""
    if _shared is None or _private is None:
        return 0
    count = 0
    for entry in _entries(_private):
        try:
            written = entry.stat().st_mtime_ns
        except OSError:
            continue
        if _published.get(entry.name) == written:
            continue  # loaded from the cache, or published already
        _compiled.add(entry.name)
        if entry.name in _published:  # compiled again over a copy that did not load
            _published[entry.name] = written
            continue
        staging = _shared / f".{entry.name}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            shutil.copyfile(entry, staging)
            os.replace(staging, _shared / entry.name)
        except OSError as exc:
            log.warning("compile cache %s: could not publish %s (%s)", _shared, entry.name, exc)
            staging.unlink(missing_ok=True)
            continue
        _published[entry.name] = written
        count += 1
    return count


def compiled_programs() -> int:
    """Programs this process compiled rather than loaded from the cache, as of the last
    `publish` (0 without a cache: nothing is tracked then)."""
    return len(_compiled)


def _entries(directory: Path) -> list[Path]:
    """Complete entries: TensorFlow's `.pb` files, not our staging names (which start with '.')."""
    try:
        return sorted(p for p in directory.iterdir() if p.suffix == ".pb" and not p.name.startswith("."))
    except OSError:
        return []


def _close() -> None:
    global _private
    publish()
    if _private is not None:
        shutil.rmtree(_private, ignore_errors=True)
        _private = None


def _remove_stale_private_dirs() -> None:
    """Private directories left by processes that were killed (their pid is gone)."""
    for path in Path(tempfile.gettempdir()).glob(f"{_PRIVATE_PREFIX}*"):
        pid = path.name[len(_PRIVATE_PREFIX) :].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
