"""The zones SMS_STATS_TIMEZONE accepts: only ones whose hours the API can be asked for once each.

The API names its hours `yyyymmddhh` in a zone without daylight saving. In a zone whose clocks
go back, two real hours share one name (both were fetched and stored: issue 23 found a
fall-back day in America/New_York summing to 23,329 against 22,958 from one call); where they go
forward, a name is never fetched. So every zone whose offset changes between 2000 and 2100 is
refused, with a real hour it would get wrong; every other zone sums to one API call.
"""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import zoneinfo
from datetime import datetime, timedelta, timezone, tzinfo
from itertools import accumulate, pairwise, repeat
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from index import main_handler

from sms_stats.cli import main
from sms_stats.core.errors import ConfigError
from sms_stats.core.windows import (
    HOUR,
    Window,
    api_zone,
    format_hour,
    keeps_one_offset,
    offset_change,
    parse_hour,
)
from sms_stats.emulator import Emulator
from sms_stats.store.file import FileSink

from .conftest import APP_A, load_event, record_files

SRC = Path(__file__).resolve().parents[1] / "src"
FIRST = datetime(2000, 1, 1, tzinfo=timezone.utc) - timedelta(hours=14)  # 2000-01-01 00:00 +14
LAST = datetime(2101, 1, 1, tzinfo=timezone.utc) + timedelta(hours=12)  # 2101-01-01 00:00 -12
WINTER = datetime(2026, 1, 15, tzinfo=timezone.utc)
SUMMER = datetime(2026, 5, 1, tzinfo=timezone.utc)
HARM = re.compile(
    r"the hours? (\d{4}-\d\d-\d\d \d\d:\d\d)(?: to (\d\d:\d\d))? "
    r"would (be fetched twice|never be fetched)"
)


@functools.cache
def verdicts() -> dict[str, str | None]:
    """Every zone this machine knows -> None (accepted) or why it is refused."""
    found: dict[str, str | None] = {}
    for name in sorted(zoneinfo.available_timezones()):
        try:
            api_zone(name, SUMMER)
        except ValueError as exc:
            found[name] = str(exc)
        else:
            found[name] = None
    return found


def accepted() -> list[str]:
    return [name for name, why in verdicts().items() if why is None]


def refused() -> list[str]:
    return [name for name, why in verdicts().items() if why is not None]


def names_of_hours(tz: tzinfo, around: datetime, hours: int = 96) -> list[str]:
    """The `yyyymmddhh` of each real hour of `hours` from two days before `around`, as the
    collector's windows name them."""
    start = (around - timedelta(days=2)).astimezone(tz).replace(minute=0, second=0, microsecond=0)
    end = (start.astimezone(timezone.utc) + hours * HOUR).astimezone(tz)
    return [hour.begin_time for hour in Window(start, end).split("hour")]


class WeekOfSummerTime(tzinfo):
    """A zone with one week of daylight saving in 2000 and none after, as America/Recife had
    (8 to 15 October 2000): shorter than the month between two firsts of a month."""

    STANDARD = timedelta(hours=-3)
    SUMMER = (datetime(2000, 10, 8), datetime(2000, 10, 15))

    def utcoffset(self, dt: datetime | None) -> timedelta:
        return self.STANDARD + self.dst(dt)

    def dst(self, dt: datetime | None) -> timedelta:
        if dt is not None and self.SUMMER[0] <= dt.replace(tzinfo=None) < self.SUMMER[1]:
            return HOUR
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "-02" if self.dst(dt) else "-03"


class LastHourChange(tzinfo):
    """A zone whose offset changes in the last hour of 2100, after its last midnight."""

    def utcoffset(self, dt: datetime | None) -> timedelta:
        late = dt is not None and dt.replace(tzinfo=None) >= datetime(2100, 12, 31, 23, 30)
        return timedelta(hours=1 if late else 0)

    def dst(self, dt: datetime | None) -> timedelta:
        return timedelta(0)

    def tzname(self, dt: datetime | None) -> str:
        return "x"


class TestTheRefusal:
    def test_given_new_york_in_summer_when_checked_then_the_fall_back_hour_is_fetched_twice(
        self,
    ) -> None:
        with pytest.raises(ValueError, match="America/New_York") as caught:
            api_zone("America/New_York", SUMMER)
        assert str(caught.value) == (
            "must keep one UTC offset from 2000 to 2100, since the API names its hours "
            "yyyymmddhh in a zone without daylight saving: in America/New_York the hour "
            "2026-11-01 01:00 would be fetched twice (at 2026-11-01 02:00 its clocks go back to "
            "01:00, UTC-04:00 to UTC-05:00). Use the zone the API names its hours in, which "
            "keeps one offset: Asia/Shanghai (the default: Tencent's hours are Beijing time), "
            "UTC, or the Etc/GMT zone of that offset (Etc/GMT+5 is UTC-05:00, America/New_York's "
            "standard time: the sign is reversed)"
        )

    def test_given_new_york_in_winter_when_checked_then_the_spring_forward_hour_is_never_fetched(
        self,
    ) -> None:
        with pytest.raises(ValueError, match="the hour 2026-03-08 02:00 would never be fetched"):
            api_zone("America/New_York", WINTER)

    @pytest.mark.parametrize(
        ("now", "hour", "count"), [(SUMMER, "2026110101", 2), (WINTER, "2026030802", 0)]
    )
    def test_given_the_hours_the_refusal_names_when_windows_are_made_then_they_really_are_wrong(
        self, now: datetime, hour: str, count: int
    ) -> None:
        """What issue 23 saw: 2026110101 fetched and stored twice, 2026030802 never."""
        tz = zoneinfo.ZoneInfo("America/New_York")
        change = offset_change(tz, now)
        assert change is not None
        assert names_of_hours(tz, change.at).count(hour) == count

    def test_given_a_permanent_change_when_checked_then_refused_the_same_way(self) -> None:
        with pytest.raises(ValueError, match="one UTC offset") as caught:
            api_zone("Europe/Moscow", SUMMER)
        message = str(caught.value)
        assert "in Europe/Moscow the hour 2014-10-26 01:00 would be fetched twice" in message
        assert "UTC+04:00 to UTC+03:00" in message
        assert "Etc/GMT-3 is UTC+03:00" in message

    def test_given_a_half_hour_change_when_checked_then_said_so_with_no_etc_zone_offered(
        self,
    ) -> None:
        with pytest.raises(ValueError, match="one UTC offset") as caught:
            api_zone("Australia/Lord_Howe", SUMMER)
        message = str(caught.value)
        assert "the hours from 2026-10-04 02:00 on would not line up" in message
        assert "its clocks go forward 30 minutes, UTC+10:30 to UTC+11:00" in message
        assert "Etc/GMT-8 is UTC+08:00" in message  # an example: +10:30 has no Etc zone

    @pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC", "Etc/GMT+5", "Asia/Kolkata"])
    def test_given_a_zone_of_one_offset_when_checked_then_accepted(self, name: str) -> None:
        assert str(api_zone(name)) == name

    def test_given_a_week_of_summer_time_when_scanned_then_found(self) -> None:
        """The daily scan sees an offset in force for a week; a monthly one would not."""
        tz = WeekOfSummerTime()
        assert keeps_one_offset(tz) is False
        change = offset_change(tz, datetime(2000, 6, 1, tzinfo=timezone.utc))
        assert change is not None
        assert change.at == datetime(2000, 10, 8, 3, tzinfo=timezone.utc)
        assert (change.before, change.after) == (timedelta(hours=-3), timedelta(hours=-2))

    def test_given_a_change_after_the_last_midnight_when_scanned_then_found(self) -> None:
        assert keeps_one_offset(LastHourChange()) is False


class TestEveryZone:
    """Over every zone this machine's tz database holds."""

    def test_given_every_zone_when_checked_then_both_kinds_are_there(self) -> None:
        assert "Asia/Shanghai" in accepted()
        assert "America/New_York" in refused()
        assert len(accepted()) > 100  # the fixed ones: Etc/, most of Africa and Asia
        assert len(refused()) > 100

    def test_given_every_accepted_zone_when_sampled_densely_then_one_offset_throughout(
        self,
    ) -> None:
        """Every 7 hours (so every hour of the day is visited) from 2000 to 2100: denser than
        the scan's daily samples, so an offset the scan could miss shows here."""
        steps = (LAST - FIRST) // timedelta(hours=7)
        start = datetime(2000, 1, 1)
        for name in accepted():
            tz = zoneinfo.ZoneInfo(name)
            offsets = set(map(tz.utcoffset, accumulate(repeat(7 * HOUR, steps), initial=start)))
            assert len(offsets) == 1, name

    @pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC"])
    def test_given_a_zone_that_is_never_scanned_when_checked_hour_by_hour_then_one_offset(
        self, name: str
    ) -> None:
        """These two are accepted by name, without a scan: every hour of 2000 to 2100."""
        tz = zoneinfo.ZoneInfo(name)
        hours = (LAST - FIRST) // HOUR
        instants = accumulate(repeat(HOUR, hours), initial=FIRST.replace(tzinfo=None))
        assert len(set(map(tz.utcoffset, instants))) == 1

    def test_given_every_refused_zone_when_its_change_is_checked_then_it_is_real(self) -> None:
        """A refusal is never spurious: the change it names is in range and real, and the
        hours it says are fetched twice (or never) are, as the collector names hours."""
        for name in refused():
            tz = zoneinfo.ZoneInfo(name)
            change = offset_change(tz, SUMMER)
            assert change is not None, name
            assert FIRST <= change.at < LAST, name
            assert change.before != change.after, name
            assert (change.at - timedelta(seconds=1)).astimezone(tz).utcoffset() == change.before
            assert change.at.astimezone(tz).utcoffset() == change.after, name
            why = verdicts()[name]
            assert why is not None
            harm = HARM.search(why)
            if (change.after - change.before) % HOUR:  # half an hour: said without an hour
                assert harm is None, name
                continue
            assert harm is not None, (name, why)
            first = datetime.strptime(harm[1], "%Y-%m-%d %H:%M")
            last = first if harm[2] is None else datetime.combine(first, _clock(harm[2]))
            named = {format_hour(first + n * HOUR) for n in range((last - first) // HOUR + 1)}
            names = names_of_hours(tz, change.at)
            wanted = 2 if harm[3] == "be fetched twice" else 0
            assert [names.count(hour) for hour in sorted(named)] == [wanted] * len(named), name


def _clock(text: str) -> Any:
    return datetime.strptime(text, "%H:%M").time()


@st.composite
def accepted_hours(draw: st.DrawFn) -> tuple[str, datetime]:
    name = draw(st.sampled_from(accepted()))
    moment = draw(st.datetimes(min_value=datetime(2000, 1, 4), max_value=datetime(2100, 12, 28)))
    return name, moment.replace(tzinfo=timezone.utc)


@given(accepted_hours())
def test_property_in_an_accepted_zone_consecutive_hours_have_consecutive_distinct_names(
    zone_and_moment: tuple[str, datetime],
) -> None:
    name, moment = zone_and_moment
    tz = zoneinfo.ZoneInfo(name)
    names = names_of_hours(tz, moment, hours=48)
    assert len(names) == len(set(names)) == 48
    starts = [parse_hour(text, timezone.utc).replace(tzinfo=None) for text in names]
    assert all(b - a == HOUR for a, b in pairwise(starts))


# -- through the real handler, the stand-in API and a real store -------------------------------


def stored_hours(store: Path, app_id: str) -> dict[str, dict[str, Any]]:
    """The hour records of one app: begin_time -> record."""
    found = {}
    for key in record_files(store):
        if key.startswith(f"app={app_id}/"):
            record = json.loads((store / key).read_text(encoding="utf-8"))
            assert record["begin_time"] == record["end_time"]
            found[record["begin_time"]] = record
    return found


def sums(records: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "RequestCount": sum(r["request_count"] for r in records),
        "RequestSuccessCount": sum(r["request_success_count"] for r in records),
        "FeeCount": sum(r["fee_count"] for r in records),
    }


ZONES = ["UTC", "Etc/GMT+5", "Asia/Kolkata"]


class TestOneCallOverTheSameRange:
    @pytest.fixture(autouse=True)
    def _unpaced(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """24 calls at the API's 10 a second would be most of each test."""
        monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")

    @pytest.mark.parametrize("name", ZONES)
    @pytest.mark.parametrize("day", ["20261101", "20260308"])  # New York's clock changes
    def test_given_a_zone_of_one_offset_when_a_day_is_backfilled_then_its_hours_sum_to_one_call(
        self,
        scf_env: dict[str, str],
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
        name: str,
        day: str,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_TIMEZONE", name)
        args = ["backfill", "--app-id", APP_A, "--from", f"{day}00", "--to", f"{day}23"]
        assert main([*args, "--sink", f"file://{store}"]) == 0
        hours = stored_hours(store, APP_A)
        assert sorted(hours) == [f"{day}{h:02d}" for h in range(24)]
        assert sums(list(hours.values())) == Emulator.expected(APP_A, f"{day}00", f"{day}23")
        assert {r["timezone"] for r in hours.values()} == {name}

    @pytest.mark.parametrize("name", ZONES)
    def test_given_a_zone_of_one_offset_when_a_job_fetches_24_hours_then_they_sum_to_one_call(
        self,
        scf_env: dict[str, str],
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        name: str,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_TIMEZONE", name)
        job = {"app_ids": [APP_A], "window": "hour", "lookback": 24}
        assert main_handler(job, context)["ok"] is True
        hours = stored_hours(store, APP_A)
        names = sorted(hours)
        assert len(names) == 24
        starts = [parse_hour(text, timezone.utc) for text in names]
        assert all(b - a == HOUR for a, b in pairwise(starts))  # distinct and consecutive
        assert sums(list(hours.values())) == Emulator.expected(APP_A, names[0], names[-1])


class TestADaylightSavingZone:
    """`SMS_STATS_TIMEZONE=America/New_York`: refused before anything is fetched or written."""

    MESSAGE = re.compile(
        r"^invalid settings: SMS_STATS_TIMEZONE: must keep one UTC offset from 2000 to 2100, "
        r"since the API names its hours yyyymmddhh in a zone without daylight saving: in "
        r"America/New_York the hour \d{4}-\d\d-\d\d \d\d:00 would (be fetched twice|never be "
        r"fetched) .* Use the zone the API names its hours in.* \(got 'America/New_York'\)$"
    )

    @pytest.mark.parametrize(
        "event",
        [load_event("timer.json"), {"app_ids": [APP_A], "window": "hour", "lookback": 24}],
        ids=["timer", "direct job"],
    )
    def test_given_new_york_when_invoked_then_refused_with_the_reason_no_call_nothing_written(
        self,
        scf_env: dict[str, str],
        store: Path,
        emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
        event: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_TIMEZONE", "America/New_York")
        calls = len(emulator.requests)
        with pytest.raises(ConfigError) as caught:
            main_handler(event, context)
        assert self.MESSAGE.match(caught.value.message), caught.value.message
        assert len(emulator.requests) == calls
        assert not store.exists()
        logged = capsys.readouterr()
        assert "Traceback" not in logged.out + logged.err
        assert "would be fetched twice" in logged.out or "would never be fetched" in logged.out

    def test_given_new_york_when_asked_over_http_then_500_and_the_logs_say_why(
        self,
        scf_env: dict[str, str],
        emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_TIMEZONE", "America/New_York")
        calls = len(emulator.requests)
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 500
        assert "misconfigured" in answer["body"]
        assert len(emulator.requests) == calls
        assert "SMS_STATS_TIMEZONE: must keep one UTC offset" in capsys.readouterr().out

    def test_given_a_new_york_store_and_setting_when_run_then_the_setting_is_what_is_refused(
        self,
        scf_env: dict[str, str],
        store: Path,
        emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        """A store written by an earlier version in New York time: the settings refusal says
        why, rather than the store's "one store holds one zone"."""
        FileSink(store, f"file:{store}").put(
            "_store.json", b'{"timezone": "America/New_York", "layout": 2}'
        )
        monkeypatch.setenv("SMS_STATS_TIMEZONE", "America/New_York")
        calls = len(emulator.requests)
        with pytest.raises(ConfigError) as caught:
            main_handler(load_event("timer.json"), context)
        assert self.MESSAGE.match(caught.value.message), caught.value.message
        assert "_store.json" not in caught.value.message
        assert len(emulator.requests) == calls
        assert record_files(store) == []

    def test_given_a_new_york_store_when_run_in_shanghai_then_refused_without_advising_new_york(
        self,
        scf_env: dict[str, str],
        store: Path,
        emulator: Emulator,
        context: dict[str, Any],
    ) -> None:
        FileSink(store, f"file:{store}").put(
            "_store.json", b'{"timezone": "America/New_York", "layout": 2}'
        )
        calls = len(emulator.requests)
        with pytest.raises(ConfigError) as caught:
            main_handler(load_event("timer.json"), context)
        message = caught.value.message
        assert "holds hours named in America/New_York, a zone whose UTC offset changes" in message
        assert "SMS_STATS_TIMEZONE no longer accepts" in message
        assert "give Asia/Shanghai a store of its own" in message
        assert "SMS_STATS_TIMEZONE=America/New_York" not in message
        assert len(emulator.requests) == calls
        assert record_files(store) == []

    def test_given_new_york_when_the_cli_backfills_then_exit_1_with_the_reason_no_traceback(
        self, scf_env: dict[str, str], store: Path, emulator: Emulator
    ) -> None:
        env = {**os.environ, "SMS_STATS_TIMEZONE": "America/New_York", "PYTHONPATH": str(SRC)}
        calls = len(emulator.requests)
        args = ["--app-id", APP_A, "--from", "2026110100", "--to", "2026110123"]
        done = subprocess.run(
            [sys.executable, "-m", "sms_stats.cli", "backfill", *args, "--sink", f"file://{store}"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert done.returncode == 1
        assert "SMS_STATS_TIMEZONE: must keep one UTC offset from 2000 to 2100" in done.stderr
        assert "in America/New_York the hour" in done.stderr
        assert "Traceback" not in done.stderr
        assert len(emulator.requests) == calls
        assert not store.exists()
