"""TensorFlow's native start-up lines are dropped from stderr; anything else written then is kept."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO


def test_known_startup_lines_are_dropped_and_others_kept(tmp_path: Path) -> None:
    # A stand-in `tensorflow` that writes to file descriptor 2 as TensorFlow's C++ code does.
    fake = tmp_path / "tensorflow.py"
    fake.write_text(
        "import os\n"
        "os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written\\n')\n"
        "os.write(2, b'I0000 00:00:1.2 1 port.cc:153] oneDNN custom operations are on. You may see...\\n')\n"
        "os.write(2, b'E0000 a real native error\\n')\n"
        "import sys; print('a Python warning', file=sys.stderr)\n"
    )
    code = (
        "import sys; from consumer.tf_import import import_tensorflow_quietly; "
        "import_tensorflow_quietly(); print('after', file=sys.stderr); "
        "sys.exit(0 if 'tensorflow' in sys.modules else 3)"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr == "E0000 a real native error\na Python warning\nafter\n"
