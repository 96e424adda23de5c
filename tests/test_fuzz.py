"""Hostile input at every entry point: never an unhandled exception, never a 500 for bad input.

The default suite runs the hypothesis profile's few hundred examples per test; `make fuzz` runs
the same tests with the `fuzz` profile (10,000 examples each).
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index import main_handler

from sms_stats.core.errors import SmsStatsError

from .conftest import API_TOKEN, APP_A, APP_B

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "\x00",
        "\u202e1400006874",
        "１４００００６８７４",
        "1400006874\n",
        "😀" * 50,
        "x" * 100_000,
        "'; DROP TABLE--",
        "<script>",
        "%00",
        "\ud7ff",
        "NaN",
        "1e309",
    ]
)
TEXT = st.one_of(st.text(max_size=40), ODD_TEXT)
HOURS = st.one_of(
    st.sampled_from(
        [
            "2021050113",
            "2021022913",
            "2020022913",
            "2021050124",
            "2021123123",
            "1999123123",
            "2021050113.0",
            " 2021050113",
            "2021-05-01",
            "0000000000",
            "9999123123",
        ]
    ),
    st.from_regex(r"\A[0-9]{10}\Z"),
    TEXT,
)
APP_IDS = st.one_of(st.sampled_from([APP_A, APP_B, "1400000000", "14000068741", "1400"]), TEXT)
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), TEXT
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(TEXT, inner, max_size=4),
    max_leaves=12,
)
SEED_KEYS = ["SmsSdkAppId", "BeginTime", "EndTime", "Limit", "Offset"]
SEED_LIKE = st.fixed_dictionaries(
    {},
    optional={
        "SmsSdkAppId": st.one_of(APP_IDS, JSON),
        "BeginTime": st.one_of(HOURS, JSON),
        "EndTime": st.one_of(HOURS, JSON),
        "Limit": st.one_of(st.sampled_from([0, 1, -1, "0", 0.0, True]), JSON),
        "Offset": st.one_of(st.sampled_from([0, 1, "0", False]), JSON),
        "app_ids": st.one_of(st.lists(APP_IDS, max_size=30), TEXT, JSON),
        "window": st.one_of(st.sampled_from(["hour", "day", "week", "HOUR"]), JSON),
        "lookback": st.one_of(st.integers(-5, 4), st.integers(745, 10_000), JSON),
    },
)
FUZZ = settings(suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _fast_upstream(monkeypatch: pytest.MonkeyPatch) -> None:
    """Valid jobs do reach the stand-in: no rate limit to wait on, so examples stay quick."""
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")
    monkeypatch.setenv("SMS_STATS_CONCURRENCY", "8")


def call(event: Any, context: dict[str, Any]) -> Any:
    """Direct and timer entries: a result, or one of our errors; anything else fails the test."""
    try:
        return main_handler(event, context)
    except SmsStatsError as exc:
        assert exc.code
        assert exc.message
        assert len(exc.message) < 5000
        return exc


@FUZZ
@given(st.one_of(JSON, SEED_LIKE))
def test_property_direct_invoke_any_json_gives_result_or_our_error(
    scf_env: dict[str, str], context: dict[str, Any], event: Any
) -> None:
    call(event, context)


@FUZZ
@given(
    time=st.one_of(
        st.sampled_from(
            [
                "2021-05-01T05:05:00Z",
                "2021-02-29T00:00:00Z",
                "2021-05-01T24:00:00Z",
                "yesterday",
                "",
                "2021-05-01T05:05:00+08:00",
                "9999-12-31T23:59:59Z",
            ]
        ),
        JSON,
    ),
    message=st.one_of(st.builds(json.dumps, SEED_LIKE), TEXT, st.builds(json.dumps, JSON), JSON),
    extra=st.dictionaries(TEXT, JSON, max_size=2),
)
def test_property_timer_any_time_and_message_gives_result_or_our_error(
    scf_env: dict[str, str], context: dict[str, Any], time: Any, message: Any, extra: Any
) -> None:
    call(
        {**extra, "Type": "Timer", "TriggerName": "fuzz", "Time": time, "Message": message}, context
    )


def header_case(name: str) -> Any:
    return st.sampled_from([name, name.upper(), name.title(), name.lower()])


QUERY_VALUE = st.one_of(
    HOURS,
    APP_IDS,
    st.booleans(),
    st.lists(st.one_of(HOURS, APP_IDS, st.booleans()), max_size=4),
    st.integers(),
)
BODIES = st.one_of(
    st.none(),
    TEXT,
    st.builds(json.dumps, SEED_LIKE),
    st.builds(json.dumps, JSON),
    st.builds(lambda d: base64.b64encode(json.dumps(d).encode()).decode(), SEED_LIKE),
    st.sampled_from(["%%%", "e30=", "not base64!", "{", "[]", "null", '"str"', "{}"]),
)


@FUZZ
@given(
    method=st.one_of(
        st.sampled_from(["GET", "POST", "get", "Post", "PUT", "DELETE", "HEAD", "ANY"]), TEXT
    ),
    path=st.one_of(
        st.sampled_from(["/stats", "/stats/", "/release/stats", "/healthz", "/", ""]), TEXT
    ),
    auth_name=header_case("authorization"),
    auth=st.one_of(
        st.sampled_from([f"Bearer {API_TOKEN}", f"bearer {API_TOKEN}", "Bearer", "Basic x", ""]),
        TEXT,
        st.lists(st.just(f"Bearer {API_TOKEN}"), max_size=2),
    ),
    query=st.dictionaries(
        st.one_of(
            st.sampled_from(
                ["app_id", "begin", "end", "Limit", "Offset", "BeginTime", "SmsSdkAppId", "EndTime"]
            ),
            TEXT,
        ),
        QUERY_VALUE,
        max_size=5,
    ),
    body=BODIES,
    encoded=st.one_of(
        st.booleans(), st.sampled_from(["true", "false", "TRUE", "1", ""]), st.none()
    ),
    headers_extra=st.dictionaries(TEXT, st.one_of(TEXT, st.lists(TEXT, max_size=2)), max_size=3),
)
def test_property_http_any_request_gets_contract_answer_never_500(
    scf_env: dict[str, str],
    context: dict[str, Any],
    method: str,
    path: str,
    auth_name: str,
    auth: Any,
    query: dict[str, Any],
    body: Any,
    encoded: Any,
    headers_extra: dict[str, Any],
) -> None:
    event = {
        "httpMethod": method,
        "path": path,
        "headers": {**headers_extra, auth_name: auth},
        "queryString": query,
        "body": body,
        "isBase64Encoded": encoded,
        "requestContext": {"httpMethod": "ANY"},
    }
    answer = main_handler(event, context)
    assert set(answer) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert answer["isBase64Encoded"] is False
    assert answer["statusCode"] < 500, answer["body"]
    parsed = json.loads(answer["body"])
    if answer["statusCode"] >= 400:
        assert set(parsed) >= {"error", "request_id"}
        assert parsed["error"]["code"]
        assert parsed["error"]["message"]
    assert "Traceback" not in answer["body"]


@FUZZ
@given(
    st.one_of(
        JSON,
        st.dictionaries(
            st.sampled_from(["httpMethod", "path", "headers", "queryString", "body"]), JSON
        ),
    )
)
def test_property_http_shaped_garbage_gets_an_http_answer(
    scf_env: dict[str, str], context: dict[str, Any], event: Any
) -> None:
    if isinstance(event, dict):
        event = {**event, "httpMethod": event.get("httpMethod", "GET")}
        answer = main_handler(event, context)
        assert answer["statusCode"] < 500, answer["body"]
    else:
        call(event, context)
