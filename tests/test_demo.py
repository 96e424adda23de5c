"""`make demo` is the first thing a new user runs: it must work, and show all three kinds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_given_a_fresh_directory_when_the_demo_runs_then_three_kinds_stored_and_sent(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_STATS_", "TENCENT"))}
    env["SMS_STATS_TIMEZONE"] = "Asia/Shangai"  # a typo in the shell must not break the demo
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), str(tmp_path / "out")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    assert "Traceback" not in out + result.stderr
    for heading in ("requests", "receipts", "balance as of"):
        assert heading in out
    assert "REJECTED" not in out
    # One alert fires and resolves, signed to the webhook and worded in the robot's chat.
    assert out.count("webhook alert.firing") == 1
    assert out.count("webhook alert.resolved") == 1
    assert "| **SMS alert: delivery rate low**" in out
    assert "| **SMS alert resolved: delivery rate low**" in out
    assert "lasted 1 h" in out
    for kind in ("send", "callback", "packages"):
        assert f"   {kind} " in out or f"   {kind}  " in out
    store = tmp_path / "out"
    assert (store / "_store.json").exists()
    assert list(store.glob("app=*/dt=*/*.json"))
    assert list(store.glob("callback/app=*/dt=*/*.json"))
    assert list(store.glob("packages/app=*/dt=*/*.json"))
