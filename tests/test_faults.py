"""The README's fault table, row by row: the stand-in produces the fault, the real handler answers.

The rows are read from README.md itself, so the documented outcome and the tested one cannot
drift apart: a new row is a new test, a changed status fails until the code agrees.
"""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, load_event

README = Path(__file__).resolve().parents[1] / "README.md"
ROW = re.compile(
    r"^\| (?P<fault>[^|]+) \| `(?P<code>[^`]+)` \| (?P<status>\d+) \| (?P<attempts>\d+)"
)


def fault_rows() -> list[tuple[str, str, int, int, bool, bool]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("<!-- fault-table")[1].split("<!-- /fault-table -->")[0]
    rows = []
    for line in table.splitlines():
        match = ROW.match(line)
        if match:
            rows.append(
                (
                    match["fault"].strip(),
                    match["code"],
                    int(match["status"]),
                    int(match["attempts"]),
                    "check the clock" in line,
                    "upstream.bad_answer" in line,
                )
            )
    return rows


ROWS = fault_rows()


def test_given_readme_when_read_then_fault_table_covers_the_seed_and_common_codes() -> None:
    seed = Path(__file__).resolve().parents[2] / "shared/seed/SendStatusStatistics.txt"
    codes = {code for _, code, *_ in ROWS}
    if seed.exists():
        text = seed.read_text(encoding="utf-8")
        for code in re.findall(r"^    ([A-Z][A-Za-z]+\.?[A-Za-z]*\.?) ", text, re.MULTILINE):
            if "." in code or code in ("InvalidParameter", "MissingParameter"):
                assert code in codes, f"seed code {code} has no row"
    for common in (
        "AuthFailure.SignatureFailure",
        "RequestLimitExceeded",
        "InternalError",
        "ServerNetworkError",
        "ClientNetworkError",
    ):
        assert common in codes
    assert len(ROWS) >= 40


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# Answers no real API gives: the field of the normal answer written as this JSON text.
BAD_FIELDS: dict[str, dict[str, str]] = {
    "count `Infinity`": {"RequestCount": "Infinity"},
    "count `1e400`": {"RequestCount": "1e400"},
    "count above 2^63-1": {"RequestCount": "9223372036854775808"},
    "negative count": {"RequestCount": "-1"},
    "successes above requests": {"RequestCount": "1", "RequestSuccessCount": "2"},
    "count as a string": {"RequestCount": '"12"'},
    "count as a float": {"RequestCount": "1880.5"},
    "count as `true`": {"RequestCount": "true"},
    "`RequestId` an object": {"RequestId": "{}"},
}
# The normal answer with a field written a second time, after its own.
BAD_REPEATS: dict[str, dict[str, str]] = {
    'a key named twice (`"FeeCount": 1900, "FeeCount": 7`)': {"FeeCount": "7"},
}
BAD_BODIES: dict[str, bytes] = {
    "`RequestId` missing": (
        b'{"Response":{"SendStatusStatistics":'
        b'{"FeeCount":1,"RequestCount":1,"RequestSuccessCount":1}}}'
    ),
    "invalid UTF-8": (
        b'{"Response":{"SendStatusStatistics":'
        b'{"FeeCount":1,"RequestCount":1,"RequestSuccessCount":1},"RequestId":"\xff\xfe"}}'
    ),
    "JSON nested 100,000 deep": b'{"Response":' + b"[" * 100_000,
}


def inject(fault: str, emulator: Emulator, monkeypatch: pytest.MonkeyPatch) -> None:
    if fault in BAD_FIELDS:
        emulator.set_fault(Fault(fields=BAD_FIELDS[fault]), APP_A)
    elif fault in BAD_REPEATS:
        emulator.set_fault(Fault(repeated=BAD_REPEATS[fault]), APP_A)
    elif fault in BAD_BODIES:
        emulator.set_fault(Fault(raw_body=BAD_BODIES[fault]), APP_A)
    elif fault.startswith("huge answer"):
        emulator.set_fault(Fault(huge_body=2 * 1024 * 1024), APP_A)
    elif fault == "API drips one byte at a time":
        monkeypatch.setenv("SMS_STATS_TIMEOUT", "0.2")
        emulator.set_fault(Fault(drip_s=0.05), APP_A)
    elif fault.startswith("error `"):
        emulator.set_fault(Fault(error_code=fault.split("`")[1]), APP_A)
    elif fault.startswith("HTTP 200 with an HTML"):
        emulator.set_fault(Fault(html=True), APP_A)
    elif fault.startswith("HTTP 200 JSON without"):
        emulator.set_fault(Fault(no_response_key=True), APP_A)
    elif fault.startswith("HTTP "):
        emulator.set_fault(Fault(http_status=int(fault.split()[1])), APP_A)
    elif fault == "connection refused":
        monkeypatch.setenv("SMS_STATS_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    elif fault.startswith("no answer"):
        monkeypatch.setenv("SMS_STATS_TIMEOUT", "0.2")
        emulator.set_fault(Fault(hang=True), APP_A)
    else:  # pragma: no cover - a README row this test does not understand
        pytest.fail(f"unknown fault row: {fault}")


@pytest.mark.parametrize(
    ("fault", "code", "status", "attempts", "clock", "bad_answer"),
    ROWS,
    ids=[row[0] for row in ROWS],
)
def test_given_upstream_fault_when_http_get_then_documented_outcome(
    scf_env: dict[str, str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    mocker: MockerFixture,
    capsys: pytest.CaptureFixture[str],
    context: dict[str, Any],
    fault: str,
    code: str,
    status: int,
    attempts: int,
    clock: bool,
    bad_answer: bool,
) -> None:
    sleep = mocker.patch("sms_stats.collect.client.time.sleep")
    inject(fault, emulator, monkeypatch)

    answer = main_handler(load_event("function_url_get.json"), context)

    assert answer["statusCode"] == status
    body = json.loads(answer["body"])
    assert body["error"]["code"] == code
    assert body["request_id"] == context["request_id"]
    assert body["records"] == []
    assert "Traceback" not in answer["body"]
    if clock:
        assert "check the clock" in body["error"]["message"]
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    calls = [line for line in lines if line["event"] == "upstream.call"]
    assert len(calls) == attempts
    assert all(c["code"] == code and c["level"] == "WARNING" for c in calls)
    assert all(c["request_id"] == context["request_id"] and c["app_id"] == APP_A for c in calls)
    assert sleep.call_count == attempts - 1
    refused = [line for line in lines if line["event"] == "http.refused"]
    assert [r["code"] for r in refused] == [code]
    assert lines[-1]["event"] == "invocation.end"
    assert lines[-1]["status"] == status
    bad = [line for line in lines if line["event"] == "upstream.bad_answer"]
    assert len(bad) == (attempts if bad_answer else 0)
    for line in bad:
        assert line["level"] == "WARNING"
        assert line["app_id"] == APP_A
        assert line["field"]
        assert line["rule"]
        assert line["value"]
        for name, text in {**BAD_FIELDS, **BAD_REPEATS}.get(fault, {}).items():
            assert name in line["field"] or name in line["rule"]
            assert text in line["value"]


@pytest.mark.parametrize(
    ("fault", "code", "status", "attempts", "clock", "bad_answer"),
    [r for r in ROWS if r[0].startswith("error `")][:6]
    + [r for r in ROWS if r[0] in ("count `1e400`", "invalid UTF-8")],
)
def test_given_upstream_fault_when_timer_then_raises_with_the_code(
    scf_env: dict[str, str],
    emulator: Emulator,
    monkeypatch: pytest.MonkeyPatch,
    mocker: MockerFixture,
    context: dict[str, Any],
    fault: str,
    code: str,
    status: int,
    attempts: int,
    clock: bool,
    bad_answer: bool,
) -> None:
    from sms_stats.core.errors import SmsStatsError

    mocker.patch("sms_stats.collect.client.time.sleep")
    monkeypatch.setenv("SMS_STATS_APP_IDS", APP_A)
    inject(fault, emulator, monkeypatch)
    with pytest.raises(SmsStatsError) as caught:
        main_handler(load_event("timer.json"), context)
    assert caught.value.code == code
