"""README's "Command line" block, run as written, in order, as a new user pastes it (issue 25):
the stand-in in one terminal, the `export` lines and every command in the other, each the
console script a person types, from an empty directory. Only the ports are changed, to free
ones, the same way in every line."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

from .console import SCRIPT, console_env

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("\n## Command line\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, flags=re.S)


def lines(block: str) -> list[str]:
    return [line for line in block.splitlines() if line and not line.startswith("#")]


def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Poll `url` until it answers (never a fixed sleep)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited with {process.returncode} before answering {url}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if getattr(exc, "code", None):  # an HTTP error status: it is answering
                return
            time.sleep(0.05)
    raise AssertionError(f"{url} did not answer in {seconds} s")


def test_given_the_readme_block_when_pasted_in_order_then_every_command_succeeds(
    tmp_path: Path,
) -> None:
    stand_in, commands = blocks()[:2]
    api_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_STATS_", "TENCENT"))}

    def argv(line: str) -> list[str]:
        line = line.split("  #", 1)[0].replace("9000", str(api_port))
        line = line.replace("8080", str(http_port))
        words = shlex.split(line)
        assert words[0] == ".venv/bin/sms-stats", line
        return [str(SCRIPT), *words[1:]]

    (emulator_line,) = lines(stand_in)
    emulator = subprocess.Popen(
        argv(emulator_line), env=console_env(env), cwd=tmp_path, stdout=subprocess.DEVNULL
    )
    try:
        wait_for(f"http://127.0.0.1:{api_port}/", emulator)
        ran: list[str] = []
        for line in lines(commands):
            if line.startswith("export "):
                for pair in shlex.split(line)[1:]:
                    name, _, value = pair.partition("=")
                    env[name] = value.replace("9000", str(api_port))
                continue
            if " serve " in f"{line} ":
                server = subprocess.Popen(argv(line), env=console_env(env), cwd=tmp_path)
                try:
                    wait_for(f"http://127.0.0.1:{http_port}/healthz", server)
                finally:
                    server.terminate()
                    server.wait(10)
                ran.append("serve")
                continue
            done = subprocess.run(
                argv(line),
                env=console_env(env),
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"{line}\n{done.stdout[-1500:]}\n{done.stderr[-1500:]}"
            assert "Traceback" not in done.stderr, line
            ran.append(shlex.split(line)[1])
    finally:
        emulator.terminate()
        emulator.wait(10)
    assert ran[:2] == ["invoke", "invoke"]
    assert ran[-1] == "serve"
    assert (tmp_path / "out" / "_store.json").exists()
