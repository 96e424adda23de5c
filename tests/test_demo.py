"""`make demo` is the first thing a new user runs: it must work, and show all three kinds."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _demo(out: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_STATS_", "TENCENT"))}
    env["SMS_STATS_TIMEZONE"] = "Asia/Shangai"  # a typo in the shell must not break the demo
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "demo.py"), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_given_a_demo_run_before_when_run_again_then_the_whole_story_again(
    tmp_path: Path,
) -> None:
    """Issue 25: the second `make demo` found the first one's alert state in ./out and its
    robot showed nothing."""
    first, second = _demo(tmp_path / "out"), _demo(tmp_path / "out")
    assert first.returncode == second.returncode == 0, second.stderr[-2000:]
    for run in (first, second):
        assert run.stdout.count("webhook alert.firing") == 1
        assert "| **SMS alert: delivery rate low**" in run.stdout


def test_given_a_directory_of_something_else_when_the_demo_runs_then_it_is_left_alone(
    tmp_path: Path,
) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.txt").write_text("mine")
    ran = _demo(tmp_path / "out")
    assert ran.returncode == 1
    assert "not a demo's store" in ran.stdout
    assert (tmp_path / "out" / "thesis.txt").read_text() == "mine"


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
        assert f" {kind}\n" in out  # the webhook got each kind
    # The story in order, one step after the other, in lines a terminal shows whole.
    steps = [line[:2] for line in out.splitlines() if line[:1].isdigit() and line[1:2] == "."]
    assert steps == ["1.", "2.", "3.", "4.", "5."]
    assert max(len(line) for line in out.splitlines() if str(tmp_path) not in line) <= 100
    assert '{"ts"' not in out  # no log line in the story
    assert "the daily digest of the day before" in out  # the digest's date, explained
    store = tmp_path / "out"
    assert (store / "_store.json").exists()
    assert list(store.glob("app=*/dt=*/*.json"))
    assert list(store.glob("callback/app=*/dt=*/*.json"))
    assert list(store.glob("packages/app=*/dt=*/*.json"))
