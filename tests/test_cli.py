from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest

from sms_stats.cli import main
from sms_stats.emulator import Emulator

from .conftest import APP_A, APP_B, EVENTS, record_files


def test_given_range_when_fetch_then_table_with_stand_in_counts(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", "--app-id", APP_A, "--begin", "2021050113", "--end", "2021050118"]) == 0
    out = capsys.readouterr().out
    expected = Emulator.expected(APP_A, "2021050113", "2021050118")
    line = next(line for line in out.splitlines() if line.startswith(APP_A))
    assert line.split()[:4] == [
        APP_A,
        "2021050113-2021050118",
        str(expected["RequestCount"]),
        str(expected["RequestSuccessCount"]),
    ]


def test_given_json_flag_when_fetch_then_records_on_stdout(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "fetch",
        "--app-id",
        APP_A,
        "--app-id",
        APP_B,
        "--begin",
        "2021050113",
        "--end",
        "2021050113",
        "--json",
    ]
    assert main(args) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["sms_sdk_app_id"] for r in records] == [APP_A, APP_B]


def test_given_bad_hour_when_fetch_then_exit_1_and_rule_named(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["fetch", "--app-id", APP_A, "--begin", "2021050125", "--end", "2021050125"]) == 1
    assert "--begin: hour must be 00-23" in capsys.readouterr().err


def test_given_event_file_when_invoke_then_handler_answer_printed(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str], store: Path
) -> None:
    assert main(["invoke", str(EVENTS / "function_url_get.json")]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["statusCode"] == 200


def test_given_builtin_timer_when_invoke_then_records_stored(
    scf_env: dict[str, str], store: Path
) -> None:
    assert main(["invoke", "timer"]) == 0
    assert len(record_files(store)) == 2


@pytest.mark.parametrize(
    ("content", "words"),
    [(None, "cannot read the event file"), ("{not json", "is not JSON")],
)
def test_given_missing_or_broken_event_file_when_invoked_then_exit_1_with_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, words: str
) -> None:
    """A cron line runs `invoke hourly.json`: a typo in it must say so, not print a traceback."""
    path = tmp_path / "hourly.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["invoke", str(path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    assert words in err
    assert "Traceback" not in err


def test_given_every_fetch_refused_when_fetch_then_no_empty_table_and_all_failed_said(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDnotknownbythestandin0000000")
    args = ["fetch", "--app-id", APP_A, "--app-id", APP_B, "--begin", "2021050113", "--end"]
    assert main([*args, "2021050113"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2
    assert all("AuthFailure.SecretIdNotFound" in line for line in errors)


def test_given_output_piped_into_head_when_gaps_then_no_traceback(
    scf_env: dict[str, str], store: Path
) -> None:
    env = {**os.environ, "SMS_STATS_SINKS": f"file://{store}"}
    command = (
        f"{sys.executable} -m sms_stats.cli gaps --app-id {APP_A} "
        "--from 2021010100 --to 2021033123 | head -3"
    )
    done = subprocess.run(
        ["/bin/sh", "-c", command],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert len(done.stdout.splitlines()) == 3
    assert "Traceback" not in done.stderr
    assert "BrokenPipeError" not in done.stderr


def test_given_a_terminal_when_backfill_runs_then_progress_not_buried_under_log_lines(
    scf_env: dict[str, str], store: Path
) -> None:
    """stderr is a pseudo-terminal, as when a person runs the command."""
    main_fd, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "SMS_STATS_LOG_LEVEL"}
    args = ["--app-id", APP_A, "--from", "2021050100", "--to", "2021050105"]
    process = subprocess.Popen(
        [sys.executable, "-m", "sms_stats.cli", "backfill", *args],
        stdout=subprocess.DEVNULL,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
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
    assert process.wait(timeout=60) == 0
    text = shown.decode()
    assert "[########################] 6/6" in text
    assert '"event"' not in text
