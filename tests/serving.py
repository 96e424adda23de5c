"""`sms-stats serve` started as a user starts it: the installed console script, from a directory
that is not the repository's root.

`python -m sms_stats.cli` from the root was the side door that hid `No module named 'index'`:
`index.py` is importable only there. So the script next to the interpreter is run with `cwd` in
a temporary directory and `PYTHONPATH` naming the directory that holds the `sms_stats` package
these tests imported (a worktree's `src`, or the editable install's), and the test polls its
`serve.listening` line rather than sleeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sms_stats

SMS_STATS = Path(sys.executable).parent / "sms-stats"
PACKAGE_ROOT = Path(sms_stats.__file__).resolve().parents[1]
START_TIMEOUT_S = 60.0


@dataclass
class Served:
    """A running `sms-stats serve`: where it listens, its process and its stderr (the log)."""

    host: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def threads(self) -> int:
        """The server process's threads, as the kernel counts them."""
        return len(os.listdir(f"/proc/{self.process.pid}/task"))

    def rss_kb(self) -> int:
        """The server process's resident memory (VmRSS), in KB."""
        status = Path(f"/proc/{self.process.pid}/status").read_text(encoding="ascii")
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1])


def serve_env(extra: Mapping[str, str] | None = None, *pythonpath: Path) -> dict[str, str]:
    """This process's environment (the settings the fixtures set) with PYTHONPATH naming the
    tested package first, absolutely."""
    paths = [*map(str, pythonpath), str(PACKAGE_ROOT)]
    return {**os.environ, **(extra or {}), "PYTHONPATH": os.pathsep.join(paths)}


@contextmanager
def serving(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> Iterator[Served]:
    """`sms-stats serve --port 0 ARGS` from `cwd`, until the block ends (then stopped)."""
    log = cwd / f"serve-{time.monotonic_ns()}.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [str(SMS_STATS), "serve", "--port", "0", *args],
            cwd=cwd,
            env=dict(env) if env is not None else serve_env(),
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        host, port = _listening(process, log)
        yield Served(host, port, process, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def _listening(process: subprocess.Popen[bytes], log: Path) -> tuple[str, int]:
    """Poll the log for the `serve.listening` line (the port is bound before it is written)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
            if '"serve.listening"' in line:
                url = json.loads(line)["url"]
                host, _, port = url.removeprefix("http://").rpartition(":")
                return host, int(port)
        if process.poll() is not None:
            raise AssertionError(f"sms-stats serve exited {process.returncode}: {log.read_text()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"sms-stats serve did not listen: {log.read_text()}")
        time.sleep(0.05)  # the next look at the log, not a wait for a known moment
