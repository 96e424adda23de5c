"""The sms-stats/v1 record: its fields, its key, and a success rate that never hides a failure."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.core.records import (
    SCHEMA,
    BalanceRecord,
    Counts,
    Package,
    Record,
    from_dict,
    hour_label,
    hour_tail,
    key_tail,
    store_key,
)
from sms_stats.core.windows import Window, zone

from .conftest import APP_A

SHANGHAI = zone("Asia/Shanghai")
FETCHED = datetime(2021, 5, 1, 6, 5, 7, 123000, tzinfo=timezone.utc)


def record(requests: int, ok: int, begin: str = "2021050113", end: str = "2021050113") -> Record:
    window = Window.from_api(begin, end, SHANGHAI)
    return Record(
        APP_A, window, "Asia/Shanghai", Counts(requests, ok, requests + 3, "rid"), FETCHED
    )


def test_given_record_when_dumped_then_contract_fields_with_offsets() -> None:
    assert record(1880, 1875).to_dict() == {
        "schema": SCHEMA,
        "sms_sdk_app_id": APP_A,
        "begin_time": "2021050113",
        "end_time": "2021050113",
        "timezone": "Asia/Shanghai",
        "window_start": "2021-05-01T13:00:00+08:00",
        "window_end": "2021-05-01T14:00:00+08:00",
        "request_count": 1880,
        "request_success_count": 1875,
        "fee_count": 1883,
        "success_rate": 0.99734,
        "request_id": "rid",
        "fetched_at": "2021-05-01T06:05:07Z",
    }


def test_given_day_window_when_keyed_then_in_the_daily_layout_under_its_local_date() -> None:
    day = Window.from_api("2021050100", "2021050123", SHANGHAI)
    assert store_key(APP_A, day) == f"daily/app={APP_A}/dt=2021-05-01/2021050100-2021050123.json"


@pytest.mark.parametrize(
    ("begin", "end", "layout"),
    [
        ("2021050113", "2021050113", ""),
        ("2021050100", "2021050123", "daily/"),
        ("2021050113", "2021050118", "ranges/"),
        ("2021050101", "2021050123", "ranges/"),  # a clipped day is a range
        ("2021050100", "2021050200", "ranges/"),  # a day and an hour
        ("2021050100", "2021050223", "ranges/"),  # two days in one call
    ],
)
def test_given_window_when_keyed_then_one_grain_per_layout(
    begin: str, end: str, layout: str
) -> None:
    window = Window.from_api(begin, end, SHANGHAI)
    assert store_key(APP_A, window) == f"{layout}app={APP_A}/dt=2021-05-01/{begin}-{end}.json"


@pytest.mark.parametrize("name", ["UTC", "Asia/Kolkata", "Etc/GMT+5"])
def test_given_a_day_in_another_zone_when_keyed_then_a_day_under_its_own_date(name: str) -> None:
    window = Window.from_api("2021050100", "2021050123", zone(name))
    assert (window.hours, window.grain) == (24, "day")
    assert store_key(APP_A, window) == f"daily/app={APP_A}/dt=2021-05-01/2021050100-2021050123.json"


def test_given_no_requests_when_rated_then_none_not_zero() -> None:
    assert record(0, 0).success_rate is None


@pytest.mark.parametrize(
    ("requests", "ok", "rate"),
    [
        (10_000_000, 9_999_999, 0.999999),  # one failure in ten million is not 100 %
        (10_000_000, 1, 0.000001),  # one success in ten million is not 0 %
        (10_000_000, 10_000_000, 1.0),
        (10_000_000, 0, 0.0),
        (3, 2, 0.666667),
    ],
)
def test_given_extreme_counts_when_rated_then_rounding_never_hides_a_failure_or_a_success(
    requests: int, ok: int, rate: float
) -> None:
    """Alerts are written as `success_rate < 1`: a rounded-up 1.0 would silence them."""
    assert record(requests, ok).success_rate == rate


def test_given_a_used_up_package_expiring_first_when_balanced_then_next_expiry_skips_it() -> None:
    utc = timezone.utc
    start = datetime(2021, 1, 1, tzinfo=utc)
    used_up = Package(1, True, 100, 100, start, start, datetime(2021, 6, 1, tzinfo=utc))
    holding = Package(2, False, 50, 10, start, start, datetime(2021, 9, 1, tzinfo=utc))
    expired = Package(3, True, 70, 0, start, start, datetime(2021, 4, 1, tzinfo=utc))
    as_of = datetime(2021, 5, 1, 13, 5, tzinfo=SHANGHAI)
    balance = BalanceRecord(APP_A, as_of, (used_up, holding, expired), "r", as_of)
    data = balance.to_dict()
    assert data["remaining"] == 40
    assert data["next_expiry"] == "2021-09-01T08:00:00+08:00"
    assert data["next_expiry_remaining"] == 40
    assert [p["remaining"] for p in data["packages"]] == [0, 40, 70]
    assert balance.key == f"packages/app={APP_A}/dt=2021-05-01/2021050113.json"
    assert from_dict(data).to_dict() == data  # what the outbox stores reads back the same


@given(
    hour=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 12, 31, 22)).map(
        lambda d: d.replace(minute=0, second=0, microsecond=0)
    ),
    zone_name=st.sampled_from(["Asia/Shanghai", "UTC", "Asia/Kolkata", "Etc/GMT+5", "Etc/GMT-14"]),
)
def test_given_an_hour_when_named_without_its_window_then_as_the_window_names_it(
    hour: datetime, zone_name: str
) -> None:
    """The healer names 72 hours per run without making their windows: the names must be the
    windows' own, or it would look for keys no record is stored under."""
    start = hour.replace(tzinfo=zone(zone_name))
    window = Window.through(start, start)
    label = hour_label(start)
    assert label == window.label
    assert hour_tail(start, label) == key_tail(window)
