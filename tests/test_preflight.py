"""A function set up wrong says everything that is wrong, in its first invocation, plainly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from index import main_handler

from sms_stats.core.errors import ConfigError
from sms_stats.core.settings import load_settings
from sms_stats.deliver.sinks import build_sinks

from .conftest import APP_A, load_event

ROOT = Path(__file__).resolve().parents[1]


def problems_of(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        main_handler(load_event("timer.json"), None)
    return caught.value.problems


def test_given_bad_sink_and_no_credentials_when_timer_runs_then_both_said_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    problems = problems_of({"SMS_STATS_SINKS": "out", "SMS_STATS_APP_IDS": APP_A}, monkeypatch)
    assert len(problems) == 2
    assert problems[0].startswith("missing credentials: TENCENTCLOUD_SECRETID and")
    assert problems[1] == (
        "SMS_STATS_SINKS item 1: 'out' is not a URL (no scheme); for a directory write file:out"
    )


def test_given_bad_setting_bad_sink_no_app_ids_no_credentials_when_timer_then_all_four(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {"SMS_STATS_TIMEZONE": "Asia/Shangai", "SMS_STATS_SINKS": "ftp://x"}
    problems = problems_of(env, monkeypatch)
    joined = "\n".join(problems)
    assert "SMS_STATS_TIMEZONE: unknown time zone 'Asia/Shangai'" in joined
    assert "SMS_STATS_SINKS item 1: unknown sink scheme 'ftp'" in joined
    assert "missing credentials" in joined


def test_given_no_app_ids_and_no_credentials_when_timer_then_both(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    problems = problems_of({"SMS_STATS_SINKS": f"file://{tmp_path}"}, monkeypatch)
    assert [p.split(":")[0] for p in problems] == ["missing credentials", "no app ids to collect"]


def test_given_no_sinks_when_scheduled_then_config_error_but_http_query_may_run(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, object]
) -> None:
    monkeypatch.delenv("SMS_STATS_SINKS")
    with pytest.raises(ConfigError) as caught:
        main_handler(load_event("timer.json"), context)
    assert caught.value.message.startswith("SMS_STATS_SINKS: a scheduled run needs somewhere")
    with pytest.raises(ConfigError):
        main_handler({"window": "hour", "lookback": 1}, context)
    answer = main_handler(load_event("function_url_get.json"), context)
    assert answer["statusCode"] == 200


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"SMS_STATS_ENDPOINT": "127.0.0.1:9137"},
            "SMS_STATS_ENDPOINT: must be scheme://host[:port]; got '127.0.0.1:9137', which has "
            "no scheme: write http://127.0.0.1:9137 (or https://)",
        ),
        (
            {"SMS_STATS_APP_IDS": "140000687,abc"},
            "SMS_STATS_APP_IDS: '140000687', 'abc' are not SmsSdkAppIds ('1400' followed by 6 "
            "digits, like 1400006874; comma-separated)",
        ),
    ],
)
def test_given_value_with_a_slip_when_loaded_then_message_shows_it_and_the_fix(
    env: dict[str, str], expected: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(env)
    assert expected in caught.value.problems


def test_given_bot_url_without_scheme_when_loaded_then_key_never_shown() -> None:
    url = "qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY-SENTINEL-0123"
    with pytest.raises(ConfigError) as caught:
        build_sinks(load_settings({"SMS_STATS_SINKS": url}))
    assert "SENTINEL" not in caught.value.message
    assert "start with https://" in caught.value.message


def test_given_several_problems_when_cli_invoked_then_one_per_line(tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "SMS_STATS_SINKS": "out"}
    env["SMS_STATS_APP_IDS"] = APP_A
    done = subprocess.run(
        [sys.executable, "-m", "sms_stats.cli", "invoke", "timer"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert "error: InternalError.Configuration: 2 problems:" in lines
    assert (
        "  - SMS_STATS_SINKS item 1: 'out' is not a URL (no scheme); for a directory write file:out"
        in lines
    )
    assert "Traceback" not in done.stderr
