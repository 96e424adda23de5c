"""Backfill and gaps against the stand-in and a real local store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sms_stats.cli import main
from sms_stats.core.errors import InputError
from sms_stats.core.settings import load_settings
from sms_stats.deliver.sinks import build_sinks
from sms_stats.emulator import Emulator
from sms_stats.run import backfill
from sms_stats.store.base import find_store

from .conftest import APP_A, APP_B, SECRET_ID, SECRET_KEY, SESSION_TOKEN, record_files
from .standins.bots import BotReceiver
from .standins.cos import CosFault, CosStandIn

BUCKET = "stats-1250000000"

NOW = datetime(2021, 5, 10, tzinfo=timezone.utc)


class Interrupt:
    """A progress hook that presses Ctrl-C after `after` fetches."""

    def __init__(self, after: int) -> None:
        self.after = after
        self.done = 0

    def step(self, ok: bool) -> None:
        self.done += 1
        if self.done == self.after:
            raise KeyboardInterrupt

    def finish(self) -> None:
        pass


def stored(store: Path) -> list[str]:
    return record_files(store)


def test_given_range_when_backfilled_then_every_hour_stored_with_stand_in_counts(
    scf_env: dict[str, str], store: Path
) -> None:
    settings = load_settings()
    sinks = build_sinks(settings)
    plan = backfill.plan([APP_A, APP_B], "2021050100", "2021050105", "hour", settings, sinks, NOW)
    assert (plan.todo, plan.stored) == (12, 0)
    result = backfill.run(plan, settings, sinks)
    assert result.ok
    assert len(stored(store)) == 12
    record = json.loads(
        (store / f"app={APP_A}/dt=2021-05-01/2021050103-2021050103.json").read_text()
    )
    assert (
        record["request_count"]
        == Emulator.expected(APP_A, "2021050103", "2021050103")["RequestCount"]
    )


def test_given_partly_stored_range_when_planned_then_stored_windows_skipped_unless_forced(
    scf_env: dict[str, str], store: Path
) -> None:
    settings = load_settings()
    sinks = build_sinks(settings)
    first = backfill.plan([APP_A], "2021050100", "2021050103", "hour", settings, sinks, NOW)
    backfill.run(first, settings, sinks)
    again = backfill.plan([APP_A, APP_B], "2021050100", "2021050107", "hour", settings, sinks, NOW)
    assert (again.stored, again.todo) == (4, 12)
    forced = backfill.plan(
        [APP_A, APP_B], "2021050100", "2021050107", "hour", settings, sinks, NOW, force=True
    )
    assert (forced.stored, forced.todo) == (0, 16)


def test_given_ctrl_c_mid_run_when_resumed_then_store_consistent_and_complete(
    scf_env: dict[str, str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "200")
    settings = load_settings()
    sinks = build_sinks(settings)
    plan = backfill.plan([APP_A, APP_B], "2021050100", "2021050211", "hour", settings, sinks, NOW)
    with pytest.raises(KeyboardInterrupt):
        backfill.run(plan, settings, sinks, progress=Interrupt(after=10), chunk_windows=4)  # type: ignore[arg-type]
    partial = stored(store)
    assert 0 < len(partial) < 72
    for name in partial:
        json.loads((store / name).read_text(encoding="utf-8"))  # every file whole
    assert not list(store.rglob(".tmp-*"))
    resumed = backfill.plan(
        [APP_A, APP_B], "2021050100", "2021050211", "hour", settings, sinks, NOW
    )
    assert resumed.stored == len(partial)
    backfill.run(resumed, settings, sinks)
    assert len(stored(store)) == 72


def test_given_day_backfill_when_gaps_checked_then_days_cover_days_and_not_hours(
    scf_env: dict[str, str], store: Path
) -> None:
    settings = load_settings()
    sinks = build_sinks(settings)
    plan = backfill.plan([APP_A], "2021050100", "2021050223", "day", settings, sinks, NOW)
    backfill.run(plan, settings, sinks)
    assert stored(store) == [
        f"daily/app={APP_A}/dt=2021-05-01/2021050100-2021050123.json",
        f"daily/app={APP_A}/dt=2021-05-02/2021050200-2021050223.json",
    ]
    store_sink = find_store(sinks)
    assert store_sink is not None
    name = store_sink.name
    days = backfill.gaps([APP_A], "2021050100", "2021050323", settings, store_sink, NOW, by="day")
    assert days == [(APP_A, "2021-05-03", name)]
    # One grain per layout: a day record never stands in for its hours (a SUM would count twice).
    hours = backfill.gaps([APP_A], "2021050100", "2021050223", settings, store_sink, NOW)
    assert len(hours) == 48
    assert hours[0] == (APP_A, "2021050100", name)


@pytest.mark.parametrize(
    ("begin", "end", "words"),
    [
        ("2021050200", "2021050100", "before --from"),
        ("2021050100", "2031050100", "has not ended yet"),
        ("2021050100", "2021050124", "hour must be 00-23"),
        ("2021022900", "2021030100", "not a calendar date"),
    ],
)
def test_given_bad_range_when_planned_then_clear_error_before_any_call(
    scf_env: dict[str, str], emulator: Emulator, begin: str, end: str, words: str
) -> None:
    settings = load_settings()
    before = len(emulator.requests)
    with pytest.raises(InputError, match=words):
        backfill.plan([APP_A], begin, end, "hour", settings, build_sinks(settings), NOW)
    assert len(emulator.requests) == before


@pytest.mark.parametrize(
    ("begin", "end"), [("2021050106", "2021050223"), ("2021050100", "2021050205")]
)
def test_given_day_backfill_of_partial_days_when_planned_then_error(
    scf_env: dict[str, str], begin: str, end: str
) -> None:
    settings = load_settings()
    with pytest.raises(InputError, match="whole days"):
        backfill.plan([APP_A], begin, end, "day", settings, [], NOW)


def test_given_range_over_configured_maximum_when_planned_then_error(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_MAX_BACKFILL_HOURS", "24")
    settings = load_settings()
    with pytest.raises(InputError, match="SMS_STATS_MAX_BACKFILL_HOURS"):
        backfill.plan([APP_A], "2021050100", "2021050200", "hour", settings, [], NOW)


def test_given_cli_backfill_then_gaps_when_run_then_exit_codes_and_summary(
    scf_env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["--app-id", APP_A, "--from", "2021050100", "--to", "2021050103"]
    assert main(["backfill", *args]) == 0
    err = capsys.readouterr().err
    assert "0 already stored" in err
    assert "done: 4 fetched, 0 failed" in err
    assert main(["gaps", *args]) == 0
    (store / f"app={APP_A}/dt=2021-05-01/2021050102-2021050102.json").unlink()
    assert main(["gaps", *args]) == 1
    assert capsys.readouterr().out.split() == [APP_A, "2021050102", f"file:{store}"]
    assert main(["backfill", *args]) == 0
    assert "3 already stored" in capsys.readouterr().err


def test_given_cli_backfill_with_bad_app_id_when_run_then_exit_1_with_rule(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["backfill", "--app-id", "12345", "--from", "2021050100", "--to", "2021050101"]) == 1
    )
    assert "'1400' followed by 6 digits" in capsys.readouterr().err


def test_given_chat_bot_sink_when_backfilled_then_bot_left_out_and_store_filled(
    scf_env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with BotReceiver(enforce_rate_limits=True) as bots:
        args = ["--app-id", APP_A, "--from", "2021050100", "--to", "2021050123"]
        sinks = ["--sink", f"file://{store}", "--sink", bots.url("wecom", notify="records")]
        assert main(["backfill", *args, *sinks]) == 0
        assert bots.attempts == []  # 24 windows would have been 24 chat messages
    err = capsys.readouterr().err
    assert "left out: wecom:127.0.0.1:" in err
    assert "--notify" in err
    assert "done: 24 fetched, 0 failed, 24 delivered" in err
    assert len(stored(store)) == 24


def test_given_notify_when_backfilled_then_bot_gets_a_paced_summary_per_window(
    scf_env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with BotReceiver(enforce_rate_limits=True) as bots:
        args = ["--app-id", APP_A, "--app-id", APP_B, "--from", "2021050100", "--to", "2021050105"]
        sinks = ["--sink", f"file://{store}", "--sink", bots.url("feishu", notify="records")]
        assert main(["backfill", *args, *sinks, "--notify"]) == 0
        posted = bots.messages("feishu")
        assert bots.rate_limited == 0  # 6 posts at Feishu's 5 a second: one waited
    err = capsys.readouterr().err
    assert "notify: feishu:127.0.0.1:" in err
    assert "gets 6 summaries, paced to at most 5 messages a second and 100 messages a minute" in err
    assert "(at least 0:00:01)" in err
    assert len(posted) == 6  # one per window, both apps in each
    assert all("All 2 apps" in json.dumps(m.payload, ensure_ascii=False) for m in posted)


def test_given_only_chat_bots_when_backfilled_without_notify_then_exit_1_before_any_call(
    scf_env: dict[str, str], emulator: Emulator, capsys: pytest.CaptureFixture[str]
) -> None:
    calls_before = len(emulator.requests)
    with BotReceiver() as bots:
        args = ["--app-id", APP_A, "--from", "2021050100", "--to", "2021050101"]
        assert main(["backfill", *args, "--sink", bots.url("slack", notify="records")]) == 1
        assert bots.attempts == []
    assert len(emulator.requests) == calls_before
    assert "only chat bots among the sinks" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["gaps", "backfill"])
def test_given_cos_store_without_head_permission_when_cli_runs_then_exit_1_with_message(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str], command: str
) -> None:
    """The policy lacks cos:HeadObject (README: resumable backfills need it): a message, no
    traceback."""
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as cos:
        cos.set_fault(CosFault(403, "AccessDenied"))
        sink = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        args = ["--app-id", APP_A, "--from", "2021050100", "--to", "2021050101", "--sink", sink]
        assert main([command, *args]) == 1
    err = capsys.readouterr().err
    assert "error: " in err
    assert "AccessDenied" in err or "403" in err
    assert "Traceback" not in err


def test_given_no_credentials_when_backfill_runs_then_exit_1_before_any_call(
    scf_env: dict[str, str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("TENCENTCLOUD_SECRETID")
    before = len(emulator.requests)
    assert main(["backfill", "--app-id", APP_A, "--from", "2021050100", "--to", "2021050101"]) == 1
    assert "error: " in capsys.readouterr().err
    assert len(emulator.requests) == before


class TestPipelineResume:
    def test_given_one_app_stored_when_backfill_resumes_then_other_apps_records_stored(
        self, scf_env: dict[str, str], store: Path
    ) -> None:
        settings = load_settings()
        sinks = build_sinks(settings)
        first = backfill.plan([APP_A], "2021050100", "2021050103", "hour", settings, sinks, NOW)
        backfill.run(first, settings, sinks)
        again = backfill.plan(
            [APP_A, APP_B], "2021050100", "2021050103", "hour", settings, sinks, NOW
        )
        result = backfill.run(again, settings, sinks)
        assert result.ok
        assert [r.sms_sdk_app_id for r in result.records] == [APP_B] * 4
        assert len(record_files(store)) == 8


class TestBackfillEdges:
    def test_given_one_hour_that_just_ended_when_planned_then_that_single_window(
        self, scf_env: dict[str, str]
    ) -> None:
        """--from = --to = the last full hour (07:00 Shanghai at NOW) is a valid range."""
        settings = load_settings()
        sinks = build_sinks(settings)
        plan = backfill.plan([APP_A], "2021051007", "2021051007", "hour", settings, sinks, NOW)
        assert plan.todo == 1

    def test_given_range_of_exactly_the_maximum_when_planned_then_accepted(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SMS_STATS_MAX_BACKFILL_HOURS", "24")
        settings = load_settings()
        sinks = build_sinks(settings)
        plan = backfill.plan([APP_A], "2021050100", "2021050123", "hour", settings, sinks, NOW)
        assert plan.todo == 24

    def test_given_more_apps_than_four_times_concurrency_when_backfilled_then_all_stored(
        self, scf_env: dict[str, str], store: Path
    ) -> None:
        """21 apps: over SMS_STATS_MAX_APP_IDS (a per-request limit) and over 4 x concurrency."""
        apps = [str(1400100000 + i) for i in range(21)]
        settings = load_settings()
        sinks = build_sinks(settings)
        plan = backfill.plan(apps, "2021050100", "2021050101", "hour", settings, sinks, NOW)
        result = backfill.run(plan, settings, sinks)
        assert result.ok
        assert len(stored(store)) == 42
