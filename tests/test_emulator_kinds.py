"""The emulator's CallbackStatusStatistics and SmsPackagesStatistics, driven by the official SDK.

Every answer goes through the SDK's own request and response models
(``SmsClient.CallbackStatusStatistics`` / ``SmsClient.SmsPackagesStatistics``), so the shapes are
proven to parse where the client will parse them. The clock is pinned: receipts settle and
packages exist relative to it.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.sms.v20210111 import models, sms_client

from sms_stats.emulator import Emulator, Fault
from sms_stats.emulator.cli import _merged, _parse_fault
from tests.test_emulator import (
    APP,
    UUID4,
    body_of,
    host_of,
    raw,
    sdk_client,
    send,
    tc3_headers,
)

BEIJING = timezone(timedelta(hours=8))
NOW = datetime(2024, 6, 1, 12, 30, tzinfo=timezone.utc)  # 20:30 in Beijing
DROP = object()


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = {**base, **overrides}
    return {k: v for k, v in merged.items() if v is not DROP}


CALLBACK: dict[str, Any] = {
    "SmsSdkAppId": APP,
    "BeginTime": "2024050113",
    "EndTime": "2024050118",
    "Limit": 0,
    "Offset": 0,
}
PACKAGES: dict[str, Any] = {
    "SmsSdkAppId": APP,
    "Limit": 500,
    "Offset": 0,
    "BeginTime": "2022010100",
    "EndTime": "2024060100",
}


def callback(client: sms_client.SmsClient, **overrides: Any) -> dict[str, int]:
    request = models.CallbackStatusStatisticsRequest()
    request.from_json_string(json.dumps(_merge(CALLBACK, overrides)))
    response = client.CallbackStatusStatistics(request)
    assert isinstance(response, models.CallbackStatusStatisticsResponse)
    assert isinstance(response.CallbackStatusStatistics, models.CallbackStatusStatistics)
    assert UUID4.match(response.RequestId)
    return dict(json.loads(response.to_json_string())["CallbackStatusStatistics"])


def packages(client: sms_client.SmsClient, **overrides: Any) -> list[dict[str, int]]:
    request = models.SmsPackagesStatisticsRequest()
    request.from_json_string(json.dumps(_merge(PACKAGES, overrides)))
    response = client.SmsPackagesStatistics(request)
    assert all(
        isinstance(p, models.SmsPackagesStatistics) for p in response.SmsPackagesStatisticsSet
    )
    return list(json.loads(response.to_json_string())["SmsPackagesStatisticsSet"])


def error_of(call: Callable[..., Any], client: sms_client.SmsClient, **overrides: Any) -> str:
    with pytest.raises(TencentCloudSDKException) as info:
        call(client, **overrides)
    assert info.value.requestId
    return str(info.value.code)


def all_pages(
    client: sms_client.SmsClient, limit: int, **overrides: Any
) -> list[list[dict[str, int]]]:
    pages = []
    offset = 0
    while True:
        page = packages(client, Limit=limit, Offset=offset, **overrides)
        pages.append(page)
        if len(page) < limit:
            return pages
        offset += limit


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def make_emulator(log_stream: io.StringIO, clock: Clock) -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def _make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("log_stream", log_stream)
        kwargs.setdefault("clock", clock)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield _make
    for emu in started:
        emu.stop()


@pytest.fixture
def emu(make_emulator: Callable[..., Emulator]) -> Emulator:
    return make_emulator()


@pytest.fixture
def client(emu: Emulator) -> sms_client.SmsClient:
    return sdk_client(emu)


# -- CallbackStatusStatistics ---------------------------------------------------------------


def test_given_settled_range_when_sdk_calls_callback_then_expected_counts_in_the_model_order(
    client: sms_client.SmsClient,
) -> None:
    answer = callback(client)

    assert answer == Emulator.expected_callback(APP, "2024050113", "2024050118", now=NOW)
    assert list(answer) == [
        "CallbackCount",
        "RequestSuccessCount",
        "CallbackFailCount",
        "CallbackSuccessCount",
        "InternalErrorCount",
        "InvalidNumberCount",
        "ShutdownErrorCount",
        "BlackListCount",
        "FrequencyLimitCount",
    ]


def test_given_same_app_and_range_when_send_and_callback_then_request_success_counts_agree(
    client: sms_client.SmsClient,
) -> None:
    receipts = callback(client, BeginTime="2024050100", EndTime="2024050123")
    sent = send(client, BeginTime="2024050100", EndTime="2024050123")

    assert receipts["RequestSuccessCount"] == sent["SendStatusStatistics"]["RequestSuccessCount"]
    assert receipts["CallbackCount"] <= receipts["RequestSuccessCount"]
    assert (
        receipts["CallbackSuccessCount"] + receipts["CallbackFailCount"]
        == receipts["CallbackCount"]
    )


def test_given_range_when_sdk_calls_callback_then_total_is_sum_of_single_hours(
    client: sms_client.SmsClient,
) -> None:
    hours = ["2024053122", "2024053123", "2024060100", "2024060101"]

    total = callback(client, BeginTime=hours[0], EndTime=hours[-1])
    per_hour = [callback(client, BeginTime=h, EndTime=h) for h in hours]

    assert total == {key: sum(one[key] for one in per_hour) for key in total}


REASONS = (
    "InternalErrorCount",
    "InvalidNumberCount",
    "ShutdownErrorCount",
    "BlackListCount",
    "FrequencyLimitCount",
)


@settings(max_examples=150, deadline=None)
@given(
    app_id=st.from_regex(r"\A1400[0-9]{6}\Z"),
    hour=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 12, 31)),
    after=st.integers(min_value=-7200, max_value=30_000),
    later=st.integers(min_value=0, max_value=30_000),
)
def test_given_any_hour_and_time_when_receipts_counted_then_rules_hold_and_only_grow(
    app_id: str, hour: datetime, after: int, later: int
) -> None:
    name = hour.strftime("%Y%m%d%H")
    ended = hour.replace(minute=0, second=0, microsecond=0, tzinfo=BEIJING) + timedelta(hours=1)
    first = Emulator.callback_counts(app_id, name, now=ended + timedelta(seconds=after))
    second = Emulator.callback_counts(app_id, name, now=ended + timedelta(seconds=after + later))

    for one in (first, second):
        assert one["RequestSuccessCount"] == Emulator.counts(app_id, name)["RequestSuccessCount"]
        assert 0 <= one["CallbackCount"] <= one["RequestSuccessCount"]
        assert one["CallbackSuccessCount"] + one["CallbackFailCount"] == one["CallbackCount"]
        assert sum(one[reason] for reason in REASONS) == one["CallbackFailCount"]
        assert all(value >= 0 for value in one.values())
    assert all(second[key] >= first[key] for key in first)


def test_given_busy_hour_when_clock_moves_then_receipts_settle_from_80_percent_to_all_in_6_hours(
    client: sms_client.SmsClient, clock: Clock
) -> None:
    hour = next(
        h
        for h in (f"20240601{n:02d}" for n in range(24))
        if Emulator.counts(APP, h)["RequestSuccessCount"] > 500
    )
    ended = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=BEIJING) + timedelta(hours=1)
    seen = []
    for hours_after in (0, 3, 6, 24):
        clock.now = ended + timedelta(hours=hours_after)
        seen.append(callback(client, BeginTime=hour, EndTime=hour))

    final = seen[-1]
    assert seen[2] == final  # all in after 6 hours, nothing changes after
    assert seen[0]["CallbackCount"] < seen[1]["CallbackCount"] < final["CallbackCount"]
    assert abs(seen[0]["CallbackCount"] - 0.8 * final["CallbackCount"]) <= len(REASONS) + 1
    for moment, answer in zip((0, 3, 6, 24), seen, strict=True):
        assert answer == Emulator.expected_callback(
            APP, hour, hour, now=ended + timedelta(hours=moment)
        )


@pytest.mark.parametrize(
    ("end", "accepted"),
    [("2024050123", True), ("2024060200", True), ("2024060201", False), ("2024070100", False)],
)
def test_given_range_near_32_days_when_callback_called_then_cap_is_end_minus_begin_32_days(
    client: sms_client.SmsClient, end: str, accepted: bool
) -> None:
    if accepted:
        answer = callback(client, BeginTime="2024050100", EndTime=end)
        assert answer == Emulator.expected_callback(APP, "2024050100", end, now=NOW)
    else:
        code = error_of(callback, client, BeginTime="2024050100", EndTime=end)
        assert code == "InvalidParameterValue.EndTimeVerifyFail"


def test_given_32_days_when_send_called_then_send_keeps_its_31_day_cap(
    client: sms_client.SmsClient,
) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        send(client, BeginTime="2024050100", EndTime="2024060200")

    assert info.value.code == "InvalidParameterValue.EndTimeVerifyFail"


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"SmsSdkAppId": DROP}, "MissingParameter"),
        ({"Limit": DROP}, "MissingParameter"),
        ({"BeginTime": "2024-05-01"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"EndTime": "2024050112"}, "InvalidParameterValue.EndTimeVerifyFail"),
        ({"Limit": 1}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Offset": 5}, "InvalidParameterValue.OffsetVerifyFail"),
        ({"SmsSdkAppId": "1500006874"}, "InvalidParameterValue.SdkAppIdNotExist"),
        ({"SmsSdkAppId": "1400000000"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
    ],
)
def test_given_invalid_parameters_when_callback_called_then_seed_error_code(
    client: sms_client.SmsClient, overrides: dict[str, Any], code: str
) -> None:
    assert error_of(callback, client, **overrides) == code


def test_given_get_method_when_callback_called_then_same_answer_as_post(emu: Emulator) -> None:
    answer = callback(sdk_client(emu, method="GET"))

    assert answer == Emulator.expected_callback(APP, "2024050113", "2024050118", now=NOW)
    assert emu.requests[-1]["method"] == "GET"


# -- SmsPackagesStatistics ------------------------------------------------------------------


def test_given_default_packages_when_sdk_calls_then_the_six_cases_a_balance_needs(
    client: sms_client.SmsClient,
) -> None:
    answer = packages(client, EndTime="2024060120")  # the current hour in Beijing
    moment = int(NOW.timestamp())

    assert answer == Emulator.expected_packages(APP, now=NOW)
    assert len(answer) == 6
    assert all(list(p) == list(answer[0]) for p in answer)
    assert list(answer[0]) == [
        "PackageCreateTime",
        "PackageEffectiveTime",
        "PackageExpiredTime",
        "PackageAmount",
        "PackageType",
        "PackageId",
        "CurrentUsage",
    ]
    assert all(type(value) is int for p in answer for value in p.values())
    assert {p["PackageType"] for p in answer} == {0, 1}
    expired = [p for p in answer if p["PackageExpiredTime"] <= moment]
    assert len(expired) == 1
    assert expired[0]["CurrentUsage"] < expired[0]["PackageAmount"]
    assert any(p["CurrentUsage"] == p["PackageAmount"] for p in answer)
    assert any(p["PackageEffectiveTime"] > moment for p in answer)
    oldest = min(p["PackageCreateTime"] for p in answer)
    assert moment - oldest > 365 * 86_400  # spread over about two years
    assert Emulator.remaining(answer, NOW) == sum(
        p["PackageAmount"] - p["CurrentUsage"]
        for p in answer
        if p["PackageEffectiveTime"] <= moment < p["PackageExpiredTime"]
    )


def test_given_1234_packages_when_paged_by_500_then_no_repeat_no_gap_in_creation_then_id_order(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(packages={APP: 1234})
    client = sdk_client(emu)

    pages = all_pages(client, 500, BeginTime="2022050100", EndTime="2024060100")

    assert [len(page) for page in pages] == [500, 500, 234]
    seen = [p for page in pages for p in page]
    assert seen == Emulator.expected_packages(APP, now=NOW, count=1234) == emu.packages_of(APP)
    assert len({p["PackageId"] for p in seen}) == 1234
    keys = [(p["PackageCreateTime"], p["PackageId"]) for p in seen]
    assert keys == sorted(keys)
    assert any(a[0] == b[0] for a, b in itertools.pairwise(keys))  # ties by id
    assert packages(client, Offset=1234, BeginTime="2022050100") == []


def test_given_creation_window_when_packages_called_then_only_those_created_inside_both_hours(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(packages={APP: 300})
    everything = emu.packages_of(APP)
    inside = everything[100:140]
    first = datetime.fromtimestamp(inside[0]["PackageCreateTime"], BEIJING)
    last = datetime.fromtimestamp(inside[-1]["PackageCreateTime"], BEIJING)
    begin, end = first.strftime("%Y%m%d%H"), last.strftime("%Y%m%d%H")
    low, high = (
        int(first.replace(minute=0, second=0).timestamp()),
        int(last.replace(minute=0, second=0).timestamp()) + 3600,
    )
    wanted = [p for p in everything if low <= p["PackageCreateTime"] < high]

    answer = packages(sdk_client(emu), BeginTime=begin, EndTime=end)

    assert answer == wanted
    assert inside[0] in answer
    assert inside[-1] in answer
    assert 40 <= len(answer) < 300


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"Limit": 0}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Limit": 501}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Limit": "5"}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Offset": -1}, "InvalidParameterValue.OffsetVerifyFail"),
        ({"Limit": DROP}, "MissingParameter"),
        ({"BeginTime": DROP}, "MissingParameter"),
        ({"BeginTime": "2024013100x"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"EndTime": "2024022924x"}, "InvalidParameterValue.EndTimeVerifyFail"),
        ({"EndTime": "2022010100"}, "InvalidParameterValue.EndTimeVerifyFail"),  # == Begin
        ({"EndTime": "2024060121"}, "InvalidParameterValue.EndTimeVerifyFail"),  # future
        ({"SmsSdkAppId": "1400000000"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
    ],
)
def test_given_invalid_parameters_when_packages_called_then_error_code(
    client: sms_client.SmsClient, overrides: dict[str, Any], code: str
) -> None:
    assert error_of(packages, client, **overrides) == code


def test_given_limit_500_and_current_hour_when_packages_called_then_accepted(
    client: sms_client.SmsClient,
) -> None:
    assert packages(client, Limit=500, EndTime="2024060120") == Emulator.expected_packages(
        APP, now=NOW
    )
    assert (
        packages(client, Limit=1, Offset=1, EndTime="2024060120")
        == (Emulator.expected_packages(APP, now=NOW)[1:2])
    )


def test_given_get_method_when_packages_called_then_limit_and_offset_are_read_as_integers(
    emu: Emulator,
) -> None:
    answer = packages(sdk_client(emu, method="GET"), Limit=2, Offset=1, EndTime="2024060120")

    assert answer == Emulator.expected_packages(APP, now=NOW)[1:3]


def test_given_explicit_package_list_when_set_then_served_in_api_order(emu: Emulator) -> None:
    made = [
        {
            "PackageCreateTime": 1_700_000_000 - i,
            "PackageEffectiveTime": 1_700_000_000,
            "PackageExpiredTime": 1_800_000_000,
            "PackageAmount": 100,
            "PackageType": 1,
            "PackageId": 5 - i,
            "CurrentUsage": 10 * i,
        }
        for i in range(3)
    ]
    emu.set_packages(APP, made)

    answer = packages(sdk_client(emu))

    assert answer == list(reversed(made))
    emu.set_packages(APP, None)
    assert packages(sdk_client(emu)) == Emulator.expected_packages(APP, now=NOW)


@pytest.mark.parametrize(
    "bad",
    [[{"PackageId": 1}], [dict.fromkeys(("PackageCreateTime",), 1)], -1, True],
)
def test_given_malformed_packages_when_set_then_value_error(emu: Emulator, bad: Any) -> None:
    with pytest.raises(ValueError, match="package"):
        emu.set_packages(APP, bad)


# -- faults per action ----------------------------------------------------------------------


def test_given_permission_fault_for_callback_only_when_all_three_called_then_only_it_fails(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(
        Fault(error_code="UnauthorizedOperation.RequestPermissionDeny", action="callback")
    )

    code = error_of(callback, client)

    assert code == "UnauthorizedOperation.RequestPermissionDeny"
    assert send(client)["SendStatusStatistics"] == Emulator.expected(
        APP, "2021050113", "2021050118"
    )
    assert packages(client, EndTime="2024060120") == Emulator.expected_packages(APP, now=NOW)


def test_given_faults_at_each_scope_when_called_then_the_most_specific_wins(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(error_code="InternalError"))
    emu.set_fault(Fault(error_code="InternalError.Timeout", action="SmsPackagesStatistics"))
    emu.set_fault(Fault(error_code="InternalError.OtherError"), APP)
    emu.set_fault(Fault(error_code="InternalError.UnknownError", action="packages"), APP)

    assert error_of(packages, client) == "InternalError.UnknownError"
    assert error_of(callback, client) == "InternalError.OtherError"
    assert error_of(packages, client, SmsSdkAppId="1400000001") == "InternalError.Timeout"
    assert error_of(callback, client, SmsSdkAppId="1400000001") == "InternalError"


def test_given_fault_with_unknown_action_or_paging_when_set_then_value_error(emu: Emulator) -> None:
    with pytest.raises(ValueError, match=r"Fault\.action"):
        emu.set_fault(Fault(error_code="InternalError", action="SendSms"))
    with pytest.raises(ValueError, match=r"Fault\.paging"):
        emu.set_fault(Fault(paging="sometimes"))


def test_given_http_and_hang_faults_for_packages_when_called_then_transport_errors(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    emu.set_fault(Fault(http_status=503, action="packages", times=1))
    emu.set_fault(Fault(hang=True, action="callback"))

    with pytest.raises(TencentCloudSDKException) as refused:
        packages(sdk_client(emu))
    assert refused.value.code == "ServerNetworkError"
    with pytest.raises(TencentCloudSDKException) as info:
        callback(sdk_client(emu, timeout=1))
    assert info.value.code == "ClientNetworkError"
    assert packages(sdk_client(emu), EndTime="2024060120") == Emulator.expected_packages(
        APP, now=NOW
    )


def test_given_fields_fault_for_packages_when_called_then_written_into_every_package(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(fields={"PackageAmount": "1e400"}, action="packages"), APP)
    body = json.dumps(PACKAGES).encode()

    _, _, payload = raw(emu, body, tc3_headers(host_of(emu), body, action="SmsPackagesStatistics"))

    assert payload.decode().count('"PackageAmount":1e400') == 6


def test_given_huge_fault_for_callback_when_called_then_padded_answer_still_has_the_counts(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(huge_body=100_000, action="callback"), APP)
    body = json.dumps(CALLBACK).encode()

    _, _, payload = raw(
        emu, body, tc3_headers(host_of(emu), body, action="CallbackStatusStatistics")
    )

    assert len(payload) == 100_000
    answer = json.loads(payload)["Response"]["CallbackStatusStatistics"]
    assert answer == Emulator.expected_callback(APP, "2024050113", "2024050118", now=NOW)


# -- bad data the client must catch ---------------------------------------------------------


def test_given_overuse_fault_when_packages_called_then_a_package_used_beyond_its_amount(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(overuse=True, action="packages"))

    answer = packages(client, EndTime="2024060120")

    assert answer[0]["CurrentUsage"] > answer[0]["PackageAmount"]
    assert answer[1:] == Emulator.expected_packages(APP, now=NOW)[1:]
    assert emu.requests[-1]["code"] == "Fault.BadData"


def test_given_overcount_fault_when_callback_called_then_more_receipts_than_submissions(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(overcount=True, action="callback"))

    answer = callback(client)

    assert answer["CallbackCount"] > answer["RequestSuccessCount"]
    assert answer["CallbackSuccessCount"] + answer["CallbackFailCount"] == answer["CallbackCount"]
    assert sum(answer[reason] for reason in REASONS) == answer["CallbackFailCount"]


def test_given_fields_fault_with_no_failures_but_reasons_when_sdk_calls_then_it_takes_it(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    """Issue 23: CallbackFailCount 0 beside five failures by reason. The SDK's model takes it
    as given (so the client has to refuse it itself)."""
    emu.set_fault(
        Fault(fields={"CallbackFailCount": "0", **dict.fromkeys(REASONS, "1")}, action="callback")
    )

    answer = callback(client)

    assert answer["CallbackFailCount"] == 0
    assert sum(answer[reason] for reason in REASONS) == 5
    expected = Emulator.expected_callback(APP, "2024050113", "2024050118", now=NOW)
    assert answer["CallbackCount"] == expected["CallbackCount"]
    assert emu.requests[-1]["code"] == "Fault.Fields"


def test_given_fields_fault_with_expiry_zero_when_sdk_calls_then_every_package_has_it(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(fields={"PackageExpiredTime": "0"}, action="packages"))

    answer = packages(client, EndTime="2024060120")

    assert [p["PackageExpiredTime"] for p in answer] == [0] * 6
    assert [p["PackageId"] for p in answer] == [
        p["PackageId"] for p in Emulator.expected_packages(APP, now=NOW)
    ]


def test_given_repeated_fault_when_answered_then_the_key_twice_on_the_wire_and_sdk_keeps_last(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    """A key named twice: the SDK (Python's json) keeps the last value without a word, which
    is why the client refuses such an answer."""
    emu.set_fault(Fault(repeated={"FeeCount": "7", "RequestId": '"rid-again"'}, action="send"))
    body = body_of()  # the seed's request: 2021050113..2021050118

    _, _, payload = raw(emu, body, tc3_headers(host_of(emu), body))
    sent = send(client)

    expected = Emulator.expected(APP, "2021050113", "2021050118")
    text = payload.decode()
    assert text.count('"FeeCount":') == 2
    assert f'{{"FeeCount":{expected["FeeCount"]},' in text
    assert re.search(
        r'"FeeCount":7\},"RequestId":"[0-9a-f-]{36}","RequestId":"rid-again"\}\}$', text
    )
    assert sent["SendStatusStatistics"]["FeeCount"] == 7
    assert sent["RequestId"] == "rid-again"
    assert emu.requests[-1]["code"] == "Fault.Fields"


def test_given_repeated_fault_for_packages_when_answered_then_every_package_repeats_it(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(repeated={"CurrentUsage": "0"}, action="packages"), APP)
    body = json.dumps({**PACKAGES, "EndTime": "2024060120"}).encode()

    _, _, payload = raw(emu, body, tc3_headers(host_of(emu), body, action="SmsPackagesStatistics"))

    assert payload.decode().count('"CurrentUsage":0}') == 6


def test_given_repeated_fault_that_is_not_json_when_set_then_value_error(emu: Emulator) -> None:
    with pytest.raises(ValueError, match=r"Fault\.repeated\['FeeCount'\] must be JSON text"):
        emu.set_fault(Fault(repeated={"FeeCount": "seven"}))


@pytest.mark.parametrize(
    ("paging", "second_starts_at"), [("repeat", 0), ("skip", 200), ("overlap", 99)]
)
def test_given_paging_fault_when_paged_then_page_two_repeats_or_skips_packages(
    make_emulator: Callable[..., Emulator], paging: str, second_starts_at: int
) -> None:
    emu = make_emulator(packages={APP: 250})
    emu.set_fault(Fault(paging=paging, action="packages"))
    client = sdk_client(emu)
    everything = emu.packages_of(APP)

    first = packages(client, Limit=100, Offset=0)
    second = packages(client, Limit=100, Offset=100)

    assert first == everything[:100]
    assert second == everything[second_starts_at : second_starts_at + 100]
    assert second != everything[100:200]


# -- shared machinery: rate limit, signature, common parameters, log -------------------------


def test_given_rate_limit_when_three_actions_called_then_each_action_has_its_own_budget(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(rate_limit=0.01)
    client = sdk_client(emu)

    send(client)
    callback(client)
    packages(client, EndTime="2024060120")

    assert error_of(callback, client) == "RequestLimitExceeded"
    assert error_of(packages, client) == "RequestLimitExceeded"
    assert emu.rejected_count == 2


def test_given_10_per_second_when_ten_calls_of_each_action_in_a_burst_then_none_rejected(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(rate_limit=10)
    barrier = threading.Barrier(3)
    failures: list[str] = []

    def worker(call: Callable[[sms_client.SmsClient], Any]) -> None:
        client = sdk_client(emu)
        barrier.wait()
        for _ in range(10):
            try:
                call(client)
            except TencentCloudSDKException as error:
                failures.append(str(error.code))

    calls = [send, callback, lambda c: packages(c, EndTime="2024060120")]
    threads = [threading.Thread(target=worker, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)

    assert failures == []
    assert len(emu.requests) == 30
    assert emu.rejected_count == 0


@pytest.mark.parametrize("action", ["CallbackStatusStatistics", "SmsPackagesStatistics"])
def test_given_body_changed_after_signing_when_new_action_then_signature_failure(
    emu: Emulator, action: str
) -> None:
    signed = json.dumps(CALLBACK).encode()
    sent = json.dumps({**CALLBACK, "SmsSdkAppId": "1400009999"}).encode()

    _, _, payload = raw(emu, sent, tc3_headers(host_of(emu), signed, action=action))

    assert json.loads(payload)["Response"]["Error"]["Code"] == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize("action", ["CallbackStatusStatistics", "SmsPackagesStatistics"])
def test_given_other_version_when_new_action_then_no_such_version(
    emu: Emulator, action: str
) -> None:
    body = json.dumps(CALLBACK).encode()

    _, _, payload = raw(
        emu, body, tc3_headers(host_of(emu), body, action=action, version="2019-07-11")
    )

    assert json.loads(payload)["Response"]["Error"]["Code"] == "NoSuchVersion"


def test_given_new_actions_when_served_then_each_logged_as_one_json_line_naming_its_action(
    client: sms_client.SmsClient, log_stream: io.StringIO
) -> None:
    callback(client)
    packages(client, EndTime="2024060120")
    error_of(packages, client, Limit=0)

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [(line["action"], line["code"]) for line in lines] == [
        ("CallbackStatusStatistics", "OK"),
        ("SmsPackagesStatistics", "OK"),
        ("SmsPackagesStatistics", "InvalidParameterValue.LimitVerifyFail"),
    ]
    assert lines[1]["app_id"] == APP
    assert (lines[1]["begin"], lines[1]["end"]) == ("2022010100", "2024060120")


# -- command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "app_id", "fault"),
    [
        (
            "*@callback:UnauthorizedOperation.RequestPermissionDeny",
            None,
            Fault(
                error_code="UnauthorizedOperation.RequestPermissionDeny",
                action="CallbackStatusStatistics",
            ),
        ),
        (
            "1400000001@SmsPackagesStatistics:503",
            "1400000001",
            Fault(http_status=503, action="SmsPackagesStatistics"),
        ),
        ("*@packages:overuse", None, Fault(overuse=True, action="SmsPackagesStatistics")),
        ("*:overcount", None, Fault(overcount=True)),
        ("*@packages:paging=skip", None, Fault(paging="skip", action="SmsPackagesStatistics")),
        ("*@send:hang", None, Fault(hang=True, action="SendStatusStatistics")),
        (
            "*@send:repeat=FeeCount=7",
            None,
            Fault(repeated={"FeeCount": "7"}, action="SendStatusStatistics"),
        ),
    ],
)
def test_given_scoped_fault_spec_when_parsed_then_fault_for_that_action(
    spec: str, app_id: str | None, fault: Fault
) -> None:
    assert _parse_fault(spec) == (app_id, fault)


@pytest.mark.parametrize("spec", ["*@:InternalError", "*@SendSms:InternalError", "*:paging=x"])
def test_given_bad_scoped_fault_spec_when_parsed_then_usage_error_names_it(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=r"@|paging"):
        _parse_fault(spec)


def test_given_field_specs_for_two_actions_when_merged_then_one_fault_per_action() -> None:
    faults = [
        _parse_fault("*@callback:field=CallbackCount=1"),
        _parse_fault("*@callback:field=BlackListCount=2"),
        _parse_fault("*:field=RequestCount=3"),
    ]

    assert _merged(faults) == {
        (None, "CallbackStatusStatistics"): Fault(
            fields={"CallbackCount": "1", "BlackListCount": "2"}, action="CallbackStatusStatistics"
        ),
        None: Fault(fields={"RequestCount": "3"}),
    }


def test_given_field_and_repeat_specs_when_merged_then_one_answer_with_both() -> None:
    faults = [
        _parse_fault("*@send:field=RequestCount=3"),
        _parse_fault("*@send:repeat=RequestCount=4"),
        _parse_fault("*@send:repeat=FeeCount=5"),
    ]

    assert _merged(faults) == {
        (None, "SendStatusStatistics"): Fault(
            fields={"RequestCount": "3"},
            repeated={"RequestCount": "4", "FeeCount": "5"},
            action="SendStatusStatistics",
        )
    }


@pytest.mark.parametrize("spec", ["*:repeat=FeeCount", "*:repeat==1", "*:repeat=FeeCount=x"])
def test_given_bad_repeat_spec_when_parsed_then_usage_error_names_it(spec: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="repeat"):
        _parse_fault(spec)


def test_given_cli_with_packages_now_and_scoped_fault_when_called_then_all_three_apply(
    tmp_path: Path,
) -> None:
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sms_stats.emulator",
            "--port",
            "0",
            "--port-file",
            str(port_file),
            "--packages",
            f"{APP}:700",
            "--now",
            "2024-06-01T12:30:00Z",
            "--fault-app",
            "*@callback:UnauthorizedOperation.RequestPermissionDeny",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 15
        while not port_file.exists():
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "emulator never wrote its port file"
            time.sleep(0.02)
        client = sdk_client(int(port_file.read_text()))

        pages = all_pages(client, 500, EndTime="2024060120")
        denied = error_of(callback, client)
        sent = send(client)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert [p for page in pages for p in page] == Emulator.expected_packages(
        APP, now=NOW, count=700
    )
    assert denied == "UnauthorizedOperation.RequestPermissionDeny"
    assert sent["SendStatusStatistics"] == Emulator.expected(APP, "2021050113", "2021050118")


def test_given_help_when_asked_then_it_names_the_new_actions_and_options() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sms_stats.cli", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    text = " ".join(done.stdout.split())
    for word in (
        "CallbackStatusStatistics",
        "SmsPackagesStatistics",
        "--packages",
        "--now",
        "APPID[@ACTION]:CODE",
        "paging=repeat|skip|overlap",
    ):
        assert word in text
