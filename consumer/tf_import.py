"""Importing TensorFlow without its native start-up lines on stderr.

TensorFlow's C++ libraries log from their static initialisers, before ``TF_CPP_MIN_LOG_LEVEL``
reaches absl's logger: on a CPU where oneDNN is on by default (AVX-512, AMX), every import prints
"oneDNN custom operations are on" and absl's "All log messages before absl::InitializeLog()",
twice. So file descriptor 2 points at a temporary file during the import; the known start-up
lines are dropped and anything else is written back to stderr, so no real error is lost.
"""

from __future__ import annotations

import os
import sys
import tempfile

__all__ = ["STARTUP_NOISE", "import_tensorflow_quietly"]

STARTUP_NOISE = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions",
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning",
    "Could not find cuda drivers",
)


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with its known native start-up lines dropped from stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        lines = captured.read().decode("utf-8", "replace").splitlines(keepends=True)
    kept = [line for line in lines if not any(noise in line for noise in STARTUP_NOISE)]
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()
