from __future__ import annotations

from contextlib import suppress
from datetime import datetime, timedelta, timezone
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.core.windows import Window, format_hour, last_full, parse_hour, zone

SHANGHAI = ZoneInfo("Asia/Shanghai")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


class TestLastFullHour:
    def test_given_timer_at_1149_utc_when_resolved_then_beijing_hour_18_is_collected(self) -> None:
        (window,) = last_full(utc(2019, 2, 21, 11, 49), SHANGHAI)
        assert (window.begin_time, window.end_time) == ("2019022118", "2019022118")
        assert window.start.isoformat() == "2019-02-21T18:00:00+08:00"
        assert window.end.isoformat() == "2019-02-21T19:00:00+08:00"

    def test_given_exact_hour_when_resolved_then_the_hour_that_just_ended(self) -> None:
        (window,) = last_full(utc(2021, 5, 1, 5, 0, 0), SHANGHAI)
        assert window.begin_time == "2021050112"

    def test_given_utc_evening_when_resolved_then_beijing_date_is_next_day(self) -> None:
        (window,) = last_full(utc(2021, 4, 30, 17, 30), SHANGHAI)
        assert window.begin_time == "2021050100"
        assert window.local_date.isoformat() == "2021-05-01"

    def test_given_first_minutes_of_beijing_day_when_resolved_then_last_hour_of_previous_day(
        self,
    ) -> None:
        (window,) = last_full(utc(2021, 2, 28, 16, 5), SHANGHAI)
        assert window.begin_time == "2021022823"
        assert window.end.isoformat() == "2021-03-01T00:00:00+08:00"

    def test_given_new_year_in_beijing_when_resolved_then_previous_year_hour(self) -> None:
        (window,) = last_full(utc(2020, 12, 31, 16, 0, 1), SHANGHAI)
        assert window.begin_time == "2020123123"

    def test_given_leap_day_when_resolved_then_feb_29(self) -> None:
        (window,) = last_full(utc(2024, 2, 29, 3, 10), SHANGHAI)
        assert window.begin_time == "2024022910"

    def test_given_lookback_3_when_resolved_then_three_hours_oldest_first(self) -> None:
        windows = last_full(utc(2021, 5, 1, 5, 5), SHANGHAI, "hour", 3)
        assert [w.begin_time for w in windows] == ["2021050110", "2021050111", "2021050112"]

    def test_given_day_window_when_resolved_then_whole_previous_local_day(self) -> None:
        (day,) = last_full(utc(2021, 5, 1, 16, 5), SHANGHAI, "day")
        assert (day.begin_time, day.end_time, day.hours) == ("2021050100", "2021050123", 24)

    def test_given_naive_now_when_resolved_then_value_error(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            last_full(datetime(2021, 5, 1), SHANGHAI)


class TestZonesOfAnotherOffset:
    def test_given_a_half_hour_zone_when_resolved_then_hours_start_at_its_whole_hours(
        self,
    ) -> None:
        (window,) = last_full(utc(2026, 11, 1, 5, 45), ZoneInfo("Asia/Kolkata"))
        assert (window.begin_time, window.hours) == ("2026110110", 1)
        assert window.start.isoformat() == "2026-11-01T10:00:00+05:30"

    def test_given_a_day_west_of_utc_when_split_then_24_hours_named_00_to_23(self) -> None:
        (day,) = last_full(utc(2026, 3, 9, 12), ZoneInfo("Etc/GMT+5"), "day")
        hours = day.split("hour")
        assert [h.begin_time for h in hours] == [f"20260308{n:02d}" for n in range(24)]
        assert day.start.isoformat() == "2026-03-08T00:00:00-05:00"


class TestParseHour:
    @pytest.mark.parametrize(
        ("text", "rule"),
        [
            ("2021022913", "calendar date"),
            ("2021050124", "hour must be 00-23"),
            ("202105011", "10 digits"),
            ("2021-05-01", "10 digits"),
            ("２０２１０５０１１３", "10 digits"),
            ("1999123123", "2000 to 2100"),
            ("9999123123", "2000 to 2100"),
        ],
    )
    def test_given_bad_hour_when_parsed_then_rule_is_named(self, text: str, rule: str) -> None:
        with pytest.raises(ValueError, match=rule):
            parse_hour(text, SHANGHAI)

    def test_given_unknown_zone_when_resolved_then_value_error(self) -> None:
        with pytest.raises(ValueError, match="unknown time zone"):
            zone("Mars/Olympus_Mons")


class TestWindow:
    def test_given_api_range_when_built_then_both_hours_included(self) -> None:
        window = Window.from_api("2021050113", "2021050118", SHANGHAI)
        assert window.hours == 6
        assert window.end.isoformat() == "2021-05-01T19:00:00+08:00"

    def test_given_range_over_midnight_when_split_by_day_then_clipped_days(self) -> None:
        window = Window.from_api("2021043022", "2021050101", SHANGHAI)
        assert [str(d) for d in window.split("day")] == [
            "2021043022-2021043023",
            "2021050100-2021050101",
        ]

    def test_given_reversed_range_when_built_then_value_error(self) -> None:
        with pytest.raises(ValueError, match="before BeginTime"):
            Window.from_api("2021050118", "2021050113", SHANGHAI)


hours = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31, 23))


@given(hours)
def test_property_format_then_parse_is_identity(moment: datetime) -> None:
    text = moment.strftime("%Y%m%d%H")
    assert format_hour(parse_hour(text, SHANGHAI)) == text


@given(hours, st.integers(min_value=1, max_value=24 * 40))
def test_property_split_by_hour_and_day_cover_the_window(moment: datetime, span: int) -> None:
    start = moment.replace(minute=0, second=0, microsecond=0, tzinfo=SHANGHAI)
    window = Window(start, start + timedelta(hours=span))
    by_hour = window.split("hour")
    by_day = window.split("day")
    assert len(by_hour) == span
    assert sum(d.hours for d in by_day) == span
    assert by_day[0].start == window.start
    assert by_day[-1].end == window.end
    assert all(a.end == b.start for a, b in pairwise(by_day))


@given(st.text(max_size=14))
def test_property_parse_hour_only_raises_value_error(text: str) -> None:
    with suppress(ValueError):
        parse_hour(text, SHANGHAI)
