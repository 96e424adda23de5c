"""The stand-in's rhythm apps (1400009000-1400009099: an office week) and its surges.

Rhythm apps exist so alerts and charts can be tested against traffic that looks like a real
week; surges so a campaign or a runaway loop can be staged for some hours. Every other app must
keep the exact figures it always had: many tests pin them.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from tencentcloud.common import credential
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from sms_stats.emulator import Emulator, Fault
from sms_stats.emulator import counts as emulator_counts
from sms_stats.emulator.cli import _parse_surge
from sms_stats.emulator.counts import Surge

from .conftest import SECRET_ID, SECRET_KEY

RHYTHM_APP = "1400009007"
MONDAYS = ["20210503", "20240108", "20240304", "20240603", "20251229", "20260105"]
"""Mondays across years, months and a year's turn (2025-12-29 is a Monday, its Sunday too)."""

SETTLED = datetime(2030, 1, 1, tzinfo=timezone.utc)
"""A clock long after every hour used here: all receipts have arrived."""

KEYS = ("RequestCount", "RequestSuccessCount", "FeeCount")


# -- helpers ------------------------------------------------------------------------------


def sdk_client(port: int, secret_id: str, secret_key: str) -> sms_client.SmsClient:
    profile = HttpProfile(protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=5)
    return sms_client.SmsClient(
        credential.Credential(secret_id, secret_key),
        "ap-guangzhou",
        ClientProfile(httpProfile=profile, language="en-US"),
    )


def _call(client: sms_client.SmsClient, action: str, app_id: str, begin: str, end: str) -> Any:
    request = getattr(models, f"{action}Request")()
    body = {"SmsSdkAppId": app_id, "BeginTime": begin, "EndTime": end, "Limit": 0, "Offset": 0}
    request.from_json_string(json.dumps(body))
    response = getattr(client, action)(request)
    return json.loads(response.to_json_string())[action]


def sent(client: sms_client.SmsClient, app_id: str, begin: str, end: str) -> dict[str, int]:
    """SendStatusStatistics through the official SDK, over HTTP."""
    return dict(_call(client, "SendStatusStatistics", app_id, begin, end))


def receipts(client: sms_client.SmsClient, app_id: str, begin: str, end: str) -> dict[str, int]:
    """CallbackStatusStatistics through the official SDK, over HTTP."""
    return dict(_call(client, "CallbackStatusStatistics", app_id, begin, end))


def week_hours(monday: str) -> list[str]:
    first = datetime.strptime(monday, "%Y%m%d")
    return [(first + timedelta(hours=i)).strftime("%Y%m%d%H") for i in range(7 * 24)]


def day_before(day: str) -> str:
    return (datetime.strptime(day, "%Y%m%d") - timedelta(days=1)).strftime("%Y%m%d")


def scaled(figures: dict[str, int], factor: float) -> dict[str, int]:
    return {name: round(value * factor) for name, value in figures.items()}


@pytest.fixture
def own_emulator() -> Iterator[Emulator]:
    """A stand-in of this test's own: surges stay until cleared, so none may leak into the
    session's shared one."""
    emu = Emulator(clock=lambda: SETTLED, log_stream=None).start()
    yield emu
    emu.stop()


@pytest.fixture
def own_client(own_emulator: Emulator) -> sms_client.SmsClient:
    return sdk_client(own_emulator.port, "AKIDEMULATOR", "emulator-secret-key")


# -- rhythm apps --------------------------------------------------------------------------


@pytest.mark.parametrize("app_id", ["1400009000", RHYTHM_APP, "1400009050", "1400009099"])
@pytest.mark.parametrize("monday", MONDAYS)
def test_given_rhythm_app_when_monday_morning_then_tenfold_the_hour_before_and_thrice_sunday(
    app_id: str, monday: str
) -> None:
    assert datetime.strptime(monday, "%Y%m%d").weekday() == 0
    sunday = day_before(monday)

    nine = Emulator.counts(app_id, f"{monday}09")["RequestCount"]
    eight = Emulator.counts(app_id, f"{monday}08")["RequestCount"]
    sunday_nine = Emulator.counts(app_id, f"{sunday}09")["RequestCount"]

    assert nine >= 8 * eight
    assert nine >= 2.5 * sunday_nine


@pytest.mark.parametrize("app_id", ["1400009000", "1400009099"])
def test_given_rhythm_app_when_counting_four_weeks_then_never_silent_and_invariants_hold(
    app_id: str,
) -> None:
    hours = [hour for monday in MONDAYS[:4] for hour in week_hours(monday)]
    base = emulator_counts.rhythm_base(app_id)

    for hour in hours:
        figures = Emulator.counts(app_id, hour)
        requests = figures["RequestCount"]
        success = figures["RequestSuccessCount"]
        expected = base * emulator_counts.rhythm_weight(hour)
        assert 0.92 * expected - 1 <= requests <= 1.08 * expected + 1, hour
        assert requests > 0, hour
        assert requests * 97 // 100 - 1 <= success <= requests * 99 // 100, hour
        assert success * 105 // 100 <= figures["FeeCount"] <= success * 115 // 100 + 1, hour
        assert all(type(value) is int for value in figures.values())


def test_given_rhythm_apps_when_compared_then_bases_differ_and_weekends_are_a_third() -> None:
    monday_nine, saturday_nine = "2024010809", "2024011309"

    peaks = {Emulator.counts(f"14000090{n:02d}", monday_nine)["RequestCount"] for n in range(100)}

    assert len(peaks) > 90  # 2000 + 37 x the last two digits, noise aside
    assert emulator_counts.rhythm_weight(saturday_nine) == pytest.approx(1 / 3)
    assert emulator_counts.rhythm_weight("2024011409") == pytest.approx(1 / 3)  # Sunday
    assert emulator_counts.rhythm_weight(monday_nine) == 1.0
    assert emulator_counts.rhythm_weight("2024011208") == pytest.approx(0.10)  # Friday


def test_given_rhythm_app_when_receipts_settle_then_they_follow_its_sends() -> None:
    for hour in week_hours("20240108")[::7]:
        send = Emulator.counts(RHYTHM_APP, hour)
        final = Emulator.callback_counts(RHYTHM_APP, hour, now=SETTLED)

        assert final["RequestSuccessCount"] == send["RequestSuccessCount"]
        assert final["RequestSuccessCount"] * 49 // 50 <= final["CallbackCount"]
        assert final["CallbackCount"] <= final["RequestSuccessCount"]


def test_given_rhythm_app_when_a_week_is_asked_in_one_call_then_it_is_the_sum_of_its_hours(
    emulator: Emulator,
) -> None:
    client = sdk_client(emulator.port, SECRET_ID, SECRET_KEY)
    hours = week_hours("20240108")

    whole = sent(client, RHYTHM_APP, hours[0], hours[-1])
    monday = [sent(client, RHYTHM_APP, hour, hour) for hour in hours[:24]]

    for key in KEYS:
        assert whole[key] == sum(Emulator.counts(RHYTHM_APP, hour)[key] for hour in hours)
    assert monday == [Emulator.counts(RHYTHM_APP, hour) for hour in hours[:24]]
    assert whole == Emulator.expected(RHYTHM_APP, hours[0], hours[-1])


# -- every other app unchanged ------------------------------------------------------------

PINNED: dict[tuple[str, str], tuple[int, int, int]] = {
    # (app, hour): (RequestCount, RequestSuccessCount, FeeCount), recorded before rhythm apps
    ("1400006874", "2021050113"): (741, 710, 777),
    ("1400006874", "2024010800"): (1367, 1336, 1652),
    ("1400006874", "2024061509"): (489, 473, 513),
    ("1400006875", "2021050113"): (786, 768, 905),
    ("1400006875", "2024010800"): (589, 567, 683),
    ("1400006875", "2024061509"): (1888, 1869, 2030),
    ("1400008999", "2021050113"): (697, 689, 762),
    ("1400008999", "2024010800"): (1418, 1351, 1589),
    ("1400008999", "2024061509"): (647, 620, 756),
    ("1400009100", "2021050113"): (1987, 1941, 2080),
    ("1400009100", "2024010800"): (0, 0, 0),
    ("1400009100", "2024061509"): (171, 166, 205),
    ("1400009999", "2021050113"): (140, 136, 170),
    ("1400009999", "2024010800"): (1186, 1150, 1409),
    ("1400009999", "2024061509"): (0, 0, 0),
}

FINGERPRINT = "bade1591d8b169757d919bfb2fd36ce48c379bc0fb30ff397beb312a2c6cd7b5"
"""sha256 of the send and final receipt figures of six uniform apps over two weeks, recorded
before rhythm apps existed (the same computation as below)."""


@pytest.mark.parametrize(("app_id", "hour"), sorted(PINNED))
def test_given_uniform_app_when_counted_then_the_figures_recorded_before_rhythm_apps(
    app_id: str, hour: str
) -> None:
    figures = Emulator.counts(app_id, hour)

    assert (figures["RequestCount"], figures["RequestSuccessCount"], figures["FeeCount"]) == (
        PINNED[(app_id, hour)]
    )
    assert not emulator_counts.is_rhythm_app(app_id)


def test_given_uniform_apps_when_two_weeks_are_counted_then_byte_identical_to_before() -> None:
    apps = ["1400006874", "1400000001", "1400008999", "1400009100", "1400009999", "1400123456"]
    start = datetime(2024, 1, 1)
    hours = [(start + timedelta(hours=i)).strftime("%Y%m%d%H") for i in range(24 * 14)]

    figures = [
        [emulator_counts.hour_counts(a, h), emulator_counts.final_callback_counts(a, h)]
        for a in apps
        for h in hours
    ]

    digest = hashlib.sha256(json.dumps(figures, sort_keys=True).encode()).hexdigest()
    assert digest == FINGERPRINT
    assert Emulator.expected("1400006874", "2021050113", "2021050118") == {
        "RequestCount": 6025,
        "RequestSuccessCount": 5854,
        "FeeCount": 6491,
    }


@pytest.mark.parametrize(
    ("app_id", "rhythm"),
    [
        ("1400008999", False),
        ("1400009000", True),
        ("1400009099", True),
        ("1400009100", False),
        ("140000900", False),
        ("１400009000", False),
    ],
)
def test_given_app_id_when_asked_then_only_the_reserved_range_has_a_rhythm(
    app_id: str, rhythm: bool
) -> None:
    assert emulator_counts.is_rhythm_app(app_id) is rhythm


# -- surges -------------------------------------------------------------------------------


def test_given_surge_of_20x_for_2_hours_when_asked_then_hours_and_range_show_it(
    own_emulator: Emulator, own_client: sms_client.SmsClient
) -> None:
    before = {h: Emulator.counts(RHYTHM_APP, h) for h in ("2024010808", "2024010809", "2024010810")}

    surge = own_emulator.add_surge(RHYTHM_APP, "2024010809", 2, 20)

    hours = ["2024010808", "2024010809", "2024010810", "2024010811"]
    answers = {hour: sent(own_client, RHYTHM_APP, hour, hour) for hour in hours}
    assert answers["2024010808"] == before["2024010808"]
    assert answers["2024010809"] == scaled(before["2024010809"], 20)
    assert answers["2024010810"] == scaled(before["2024010810"], 20)
    assert answers["2024010811"] == Emulator.counts(RHYTHM_APP, "2024010811")
    whole = sent(own_client, RHYTHM_APP, hours[0], hours[-1])
    assert whole == {key: sum(answer[key] for answer in answers.values()) for key in KEYS}
    assert whole == Emulator.expected(RHYTHM_APP, hours[0], hours[-1], surges=[surge])
    assert whole == Emulator.expected(RHYTHM_APP, hours[0], hours[-1], surges=own_emulator.surges)
    usual = Emulator.expected(RHYTHM_APP, hours[0], hours[-1])
    assert whole["RequestCount"] > 5 * usual["RequestCount"]
    assert own_emulator.surges == (Surge(RHYTHM_APP, "2024010809", 2, 20.0),)


def test_given_surge_when_receipts_asked_then_they_follow_the_surged_sends(
    own_emulator: Emulator, own_client: sms_client.SmsClient
) -> None:
    own_emulator.add_surge(RHYTHM_APP, "2024010809", 2, 20)

    answer = receipts(own_client, RHYTHM_APP, "2024010809", "2024010809")

    surged = sent(own_client, RHYTHM_APP, "2024010809", "2024010809")
    assert answer["RequestSuccessCount"] == surged["RequestSuccessCount"]
    assert answer == own_emulator.receipts_of(RHYTHM_APP, "2024010809", "2024010809")
    assert answer == Emulator.expected_callback(
        RHYTHM_APP, "2024010809", "2024010809", now=SETTLED, surges=own_emulator.surges
    )
    assert (
        answer["CallbackCount"]
        > 10 * Emulator.callback_counts(RHYTHM_APP, "2024010809", now=SETTLED)["CallbackCount"]
    )


def test_given_surge_when_faults_cleared_then_it_stays_until_surges_are_cleared(
    own_emulator: Emulator, own_client: sms_client.SmsClient
) -> None:
    own_emulator.add_surge(RHYTHM_APP, "2024010809", 2, 20)
    own_emulator.set_fault(Fault(error_code="InternalError"), app_id="1400000001")
    surged = Emulator.expected(RHYTHM_APP, "2024010809", "2024010810", own_emulator.surges)

    own_emulator.clear_faults()
    after_faults = sent(own_client, RHYTHM_APP, "2024010809", "2024010810")
    own_emulator.clear_surges()
    after_surges = sent(own_client, RHYTHM_APP, "2024010809", "2024010810")

    assert after_faults == surged
    assert after_surges == Emulator.expected(RHYTHM_APP, "2024010809", "2024010810")
    assert own_emulator.surges == ()


def test_given_surge_of_one_app_when_another_app_asked_then_unchanged(
    own_emulator: Emulator, own_client: sms_client.SmsClient
) -> None:
    own_emulator.add_surge("1400006874", "2021050100", 48, 20)

    other = sent(own_client, "1400006875", "2021050113", "2021050118")
    surged = sent(own_client, "1400006874", "2021050113", "2021050118")

    assert other == Emulator.expected("1400006875", "2021050113", "2021050118")
    assert surged == Emulator.expected(
        "1400006874", "2021050113", "2021050118", surges=own_emulator.surges
    )
    for hour in ("2021050113", "2021050114"):
        plain = Emulator.counts("1400006874", hour)
        assert Emulator.counts("1400006874", hour, own_emulator.surges) == scaled(plain, 20)


def test_given_overlapping_surges_when_counted_then_they_multiply_and_invariants_hold() -> None:
    surges = [Surge(RHYTHM_APP, "2024010800", 24, 3), Surge(RHYTHM_APP, "2024010812", 2, 0.5)]

    for hour in week_hours("20240108")[:30]:
        figures = Emulator.counts(RHYTHM_APP, hour, surges)
        plain = Emulator.counts(RHYTHM_APP, hour)
        factor = {"2024010812": 1.5, "2024010813": 1.5}.get(hour, 3 if hour < "2024010900" else 1)
        assert figures == scaled(plain, factor), hour
        assert figures["RequestSuccessCount"] <= figures["RequestCount"]
        assert figures["FeeCount"] >= figures["RequestSuccessCount"]


@pytest.mark.parametrize(
    ("app_id", "begin", "hours", "factor", "message"),
    [
        ("140000900", "2024010809", 2, 20.0, "10 digits"),
        (RHYTHM_APP, "2024013209", 2, 20.0, "day is out of range"),
        (RHYTHM_APP, "20240108", 2, 20.0, "10 digits"),
        (RHYTHM_APP, "2024010809", 0, 20.0, "hours must be"),
        (RHYTHM_APP, "2024010809", 2, -1.0, "factor must be"),
        (RHYTHM_APP, "2024010809", 2, float("inf"), "factor must be"),
        (RHYTHM_APP, "9999123109", 100, 2.0, "past the year 9999"),
    ],
)
def test_given_bad_surge_when_added_then_value_error_and_nothing_added(
    own_emulator: Emulator, app_id: str, begin: str, hours: int, factor: float, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        own_emulator.add_surge(app_id, begin, hours, factor)

    assert own_emulator.surges == ()


def test_given_threads_adding_surges_when_served_meanwhile_then_none_is_lost(
    own_emulator: Emulator, own_client: sms_client.SmsClient
) -> None:
    def add(n: int) -> None:
        for i in range(50):
            own_emulator.add_surge(f"14000070{n:02d}", "2024010809", 1 + i, 1.5)

    threads = [threading.Thread(target=add, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    answer = sent(own_client, RHYTHM_APP, "2024010809", "2024010810")
    for thread in threads:
        thread.join()

    assert len(own_emulator.surges) == 400
    assert answer == Emulator.expected(RHYTHM_APP, "2024010809", "2024010810")


# -- command line -------------------------------------------------------------------------


def test_given_surge_flag_when_parsed_then_a_surge() -> None:
    assert _parse_surge("1400009000:2024010809:2:20") == Surge("1400009000", "2024010809", 2, 20)
    assert _parse_surge("1400006874:2021050100:48:0.5").factor == 0.5


@pytest.mark.parametrize(
    ("value", "says"),
    [
        ("bad", "expected APP:BEGIN:HOURS:FACTOR"),
        ("1400009000:2024010809:2", "expected APP:BEGIN:HOURS:FACTOR"),
        ("14000090:2024010809:2:20", "APP must be"),
        ("1400009000:2024013209:2:20", "BEGIN must be"),
        ("1400009000:2024010809:0:20", "HOURS must be"),
        ("1400009000:2024010809:two:20", "HOURS must be"),
        ("1400009000:2024010809:2:x", "FACTOR must be"),
        ("1400009000:2024010809:2:nan", "FACTOR must be"),
        ("1400009000:2024010809:2:-3", "FACTOR must be"),
    ],
)
def test_given_bad_surge_flag_when_cli_started_then_one_line_error_and_exit_2(
    value: str, says: str
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sms_stats.emulator", "--port", "0", "--quiet", "--surge", value],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )

    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, done.stderr
    assert "argument --surge" in errors[0]
    assert repr(value) in errors[0]
    assert says in errors[0]
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_given_surge_flag_when_cli_serves_then_the_answers_are_surged(tmp_path: Path) -> None:
    port_file = tmp_path / "port"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TENCENTCLOUD_")}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "sms_stats.emulator",
            *("--port", "0", "--port-file", str(port_file), "--quiet"),
            *("--surge", f"{RHYTHM_APP}:2024010809:2:20"),
            *("--surge", f"{RHYTHM_APP}:2024010810:1:0.5"),
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
        client = sdk_client(int(port_file.read_text()), "AKIDEMULATOR", "emulator-secret-key")

        answer = sent(client, RHYTHM_APP, "2024010808", "2024010811")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    surges = [Surge(RHYTHM_APP, "2024010809", 2, 20), Surge(RHYTHM_APP, "2024010810", 1, 0.5)]
    assert answer == Emulator.expected(RHYTHM_APP, "2024010808", "2024010811", surges=surges)
    assert answer != Emulator.expected(RHYTHM_APP, "2024010808", "2024010811")
