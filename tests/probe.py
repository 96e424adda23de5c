"""Run Python in a fresh interpreter from the repository's root: what a cold container imports,
collects and freezes can only be seen from a process that has loaded nothing yet."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def run_fresh(code: str, timeout: float = 120) -> Any:
    """The JSON of the last line `code` prints (None when it prints nothing); a failing run
    fails the test with the end of its stderr."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None
