"""A new user's first hour with the command line (issue 25): each command run as the console
script a person types, from a directory that is not the repository, reading what they read."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, APP_B
from .console import run


@pytest.fixture
def env(scf_env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "SMS_STATS_LOG_LEVEL"}


def test_given_kind_callback_when_fetch_then_a_receipts_table(
    env: dict[str, str], tmp_path: Path
) -> None:
    args = ["fetch", "--app-id", APP_A, "--begin", "2021050113", "--end", "2021050113"]
    ran = run([*args, "--kind", "callback"], env, tmp_path)
    assert ran.code == 0, ran.err
    header, row = ran.out.splitlines()[:2]
    assert header.split()[:3] == ["app", "receipts", "of"]
    expected = Emulator.expected_callback(APP_A, "2021050113", "2021050113")
    assert row.split()[:4] == [
        APP_A,
        "2021050113-2021050113",
        str(expected["CallbackCount"]),
        str(expected["CallbackSuccessCount"]),
    ]


def test_given_kind_packages_and_no_range_when_fetch_then_the_balance_now(
    env: dict[str, str], tmp_path: Path
) -> None:
    ran = run(["fetch", "--app-id", APP_A, "--app-id", APP_B, "--kind", "packages"], env, tmp_path)
    assert ran.code == 0, ran.err
    lines = ran.out.splitlines()
    assert lines[0].split()[:4] == ["app", "balance", "as", "of"]
    assert [line.split()[0] for line in lines[1:]] == [APP_A, APP_B]


def test_given_sends_without_a_range_when_fetch_then_the_missing_option_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    ran = run(["fetch", "--app-id", APP_A], env, tmp_path)
    assert ran.code == 1
    assert "--begin is required" in ran.err
    assert "Traceback" not in ran.err


def test_given_no_app_ids_when_alerts_dry_run_then_refused_naming_app_id(
    env: dict[str, str], tmp_path: Path
) -> None:
    """It used to judge nothing and say `0 notice(s), 0 firing`, exit 0."""
    env = {k: v for k, v in env.items() if k != "SMS_STATS_APP_IDS"}
    ran = run(["alerts", "dry-run", "--from", "2021050100", "--to", "2021050123"], env, tmp_path)
    assert ran.code == 1
    assert "--app-id" in ran.err
    assert "0 notice(s)" not in ran.err


def test_given_no_subcommand_when_alerts_then_the_choices_are_named(
    env: dict[str, str], tmp_path: Path
) -> None:
    ran = run(["alerts"], env, tmp_path)
    assert ran.code == 2
    assert "rules,state,dry-run" in ran.err
    assert "alerts_command" not in ran.err


def test_given_a_sink_url_without_its_colon_when_run_then_the_colon_is_the_fix(
    env: dict[str, str], tmp_path: Path
) -> None:
    env = {**env, "SMS_STATS_SINKS": "https//example.com/hook"}
    ran = run(["gaps", "--from", "2021050100", "--to", "2021050101"], env, tmp_path)
    assert ran.code == 1
    assert "lacks the ':' after https; write https://" in ran.err
    assert "file:https" not in ran.err


def test_given_two_kinds_when_backfill_then_the_header_says_so(
    env: dict[str, str], tmp_path: Path
) -> None:
    args = ["backfill", "--from", "2021050100", "--to", "2021050101"]
    ran = run([*args, "--kind", "send", "--kind", "callback"], env, tmp_path)
    assert ran.code == 0, ran.err
    assert "2 app(s) x 2 hour window(s) x 2 kinds (send, callback)" in ran.err
    assert "8 to fetch" in ran.err


class TestTerminal:
    def test_given_missing_credentials_when_invoked_on_a_terminal_then_said_once_readably(
        self, env: dict[str, str], tmp_path: Path
    ) -> None:
        env = {
            k: v
            for k, v in env.items()
            if not k.startswith(("TENCENTCLOUD_SECRET", "SCF_"))  # a laptop, not SCF
        }
        ran = run(["invoke", "timer"], env, tmp_path, terminal=True)
        assert ran.code == 1
        assert '{"ts"' not in ran.err  # no JSON line for a person to read
        assert ran.err.count("missing credentials") == 1  # the problem, said once
        assert ran.err.startswith("error: ")
        # On a laptop, the fix a laptop can use: the keys, or the local stand-in's.
        assert "sms-stats emulator" in ran.err
        assert "execution role" not in ran.err

    def test_given_retries_when_fetching_on_a_terminal_then_no_line_per_attempt(
        self, env: dict[str, str], emulator: Emulator, tmp_path: Path
    ) -> None:
        emulator.set_fault(Fault(error_code="InternalError.Timeout", times=2), APP_A)
        args = ["fetch", "--app-id", APP_A, "--begin", "2021050113", "--end", "2021050113"]
        ran = run(args, env, tmp_path, terminal=True)
        assert ran.code == 0, ran.err
        assert "upstream.call" not in ran.err
        assert '{"ts"' not in ran.err
        assert ran.out.splitlines()[1].startswith(APP_A)

    def test_given_a_pipe_when_a_command_logs_then_json_lines_as_before(
        self, env: dict[str, str], emulator: Emulator, tmp_path: Path
    ) -> None:
        emulator.set_fault(Fault(error_code="InternalError.Timeout", times=1), APP_A)
        args = ["fetch", "--app-id", APP_A, "--begin", "2021050113", "--end", "2021050113"]
        ran = run(args, env, tmp_path)
        assert ran.code == 0, ran.err
        assert '"event":"upstream.call"' in ran.err  # machines still get every line
