"""Run the `sms-stats` console script as a person types it: the installed script beside this
interpreter, from a directory that is not the repository (`python -m sms_stats.cli` from the
root once hid a `serve` that could not start), optionally on a pseudo-terminal."""

from __future__ import annotations

import os
import pty
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

from .serving import PACKAGE_ROOT
from .serving import SMS_STATS as SCRIPT

# The package these tests imported (a worktree's, or the editable install's): the script runs
# the same code whatever directory it is started from.
PACKAGE_PARENT = str(PACKAGE_ROOT)


class Ran(NamedTuple):
    code: int
    out: str
    err: str


def console_env(env: Mapping[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": PACKAGE_PARENT}


def run(
    args: Sequence[str],
    env: Mapping[str, str],
    cwd: Path,
    *,
    terminal: bool = False,
    timeout: float = 120,
) -> Ran:
    """`sms-stats ARGS` in `cwd`; with `terminal`, stderr is a pseudo-terminal (what a person
    sees: the CLI writes for people there) and `err` is what it showed."""
    command = [str(SCRIPT), *args]
    if not terminal:
        done = subprocess.run(
            command,
            env=console_env(env),
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        return Ran(done.returncode, done.stdout, done.stderr)
    main_fd, side = pty.openpty()
    process = subprocess.Popen(
        command,
        env=console_env(env),
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=side,
    )
    os.close(side)
    shown = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main_fd)
    out = process.stdout.read().decode() if process.stdout else ""
    code = process.wait(timeout=timeout)
    return Ran(code, out, shown.decode().replace("\r\n", "\n"))
