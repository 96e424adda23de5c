from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from index import main_handler

from sms_stats.core.errors import InputError
from sms_stats.events.direct import JobRequest, StatsRequest
from sms_stats.events.http_event import HttpEvent
from sms_stats.events.parse import TimerEvent, parse_direct, parse_event

from .conftest import APP_A, APP_B, load_event, record_files


class TestShapes:
    @pytest.mark.parametrize(
        ("name", "model"),
        [
            ("timer.json", TimerEvent),
            ("timer_job_message.json", TimerEvent),
            ("apigw_get.json", HttpEvent),
            ("apigw_post_base64.json", HttpEvent),
            ("function_url_get.json", HttpEvent),
            ("function_url_post.json", HttpEvent),
            ("direct_seed.json", StatsRequest),
            ("direct_job.json", JobRequest),
        ],
    )
    def test_given_captured_event_when_parsed_then_its_model(self, name: str, model: type) -> None:
        assert isinstance(parse_event(load_event(name)), model)

    def test_given_timer_time_with_z_when_parsed_then_aware_utc(self) -> None:
        event = parse_event(load_event("timer.json"))
        assert isinstance(event, TimerEvent)
        assert event.Time == datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)

    def test_given_timer_time_without_offset_when_parsed_then_read_as_utc(self) -> None:
        event = parse_event({"Type": "Timer", "Time": "2021-05-01T05:05:00"})
        assert isinstance(event, TimerEvent)
        assert event.Time.tzinfo == timezone.utc

    def test_given_empty_event_when_parsed_then_default_job(self) -> None:
        assert parse_event({}) == JobRequest()

    def test_given_json_text_event_when_parsed_then_same_as_object(self) -> None:
        assert isinstance(
            parse_event('{"Type": "Timer", "Time": "2021-05-01T05:05:00Z"}'), TimerEvent
        )

    def test_given_comma_separated_app_ids_in_job_when_parsed_then_tuple(self) -> None:
        event = parse_event({"app_ids": "1400006874, 1400006875"})
        assert isinstance(event, JobRequest)
        assert event.app_ids == ("1400006874", "1400006875")


class TestErrors:
    @pytest.mark.parametrize(
        ("event", "code", "words"),
        [
            (
                {"SmsSdkAppId": "1400006874", "EndTime": "2021050113"},
                "MissingParameter",
                "BeginTime",
            ),
            (
                {"SmsSdkAppId": "1400006874", "BeginTime": 2021050113, "EndTime": "2021050113"},
                "InvalidParameterValue.BeginTimeVerifyFail",
                "2021050113",
            ),
            (
                {"SmsSdkAppId": "1400006874", "BeginTime": "2021050113", "EndTime": None},
                "InvalidParameterValue.EndTimeVerifyFail",
                "EndTime",
            ),
            (
                {"SmsSdkAppId": "1400006874", "BeginTime": "1", "EndTime": "1", "Limit": "0"},
                "InvalidParameterValue.LimitVerifyFail",
                "Limit",
            ),
            (
                {"SmsSdkAppId": "1400006874", "BeginTime": "1", "EndTime": "1", "Offset": True},
                "InvalidParameterValue.OffsetVerifyFail",
                "Offset",
            ),
            (
                {"SmsSdkAppId": 1400006874, "BeginTime": "1", "EndTime": "1"},
                "InvalidParameter",
                "SmsSdkAppId",
            ),
            ({"window": "week"}, "InvalidParameter", "window"),
            ({"lookback": 0}, "InvalidParameter", "lookback"),
            ({"Type": "Timer"}, "MissingParameter", "Time"),
            ({"Type": "Timer", "Time": "yesterday"}, "InvalidParameter", "Time"),
            ({"httpMethod": 5}, "InvalidParameter", "httpMethod"),
            ({"hello": "world"}, "InvalidParameter", "none of the known shapes"),
            ([1, 2], "InvalidParameter", "JSON object"),
            ("{oops", "FailedOperation.JsonParseFail", "not valid JSON"),
        ],
    )
    def test_given_bad_event_when_parsed_then_seed_code_and_field_named(
        self, event: Any, code: str, words: str
    ) -> None:
        with pytest.raises(InputError) as caught:
            parse_event(event)
        assert caught.value.code == code
        assert words in caught.value.message

    def test_given_huge_value_when_parsed_then_message_stays_short(self) -> None:
        with pytest.raises(InputError) as caught:
            parse_event({"SmsSdkAppId": "1400006874", "BeginTime": 7, "EndTime": "x" * 10_000})
        assert len(caught.value.message) < 300


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
known_keys = st.sampled_from(
    [
        "Type",
        "Time",
        "Message",
        "httpMethod",
        "path",
        "headers",
        "queryString",
        "body",
        "SmsSdkAppId",
        "BeginTime",
        "EndTime",
        "Limit",
        "Offset",
        "app_ids",
        "window",
        "lookback",
    ]
)


@given(st.dictionaries(known_keys, json_values, max_size=6) | json_values)
def test_property_any_json_event_parses_or_raises_input_error(event: Any) -> None:
    try:
        parse_event(event)
    except InputError as exc:
        assert exc.code
        assert exc.message


def stored(store: Path) -> list[str]:
    return record_files(store)


class TestEventEdges:
    def test_given_negative_limit_when_parsed_then_limit_verify_fail(self) -> None:
        seed = {"SmsSdkAppId": APP_A, "BeginTime": "2021050113", "EndTime": "2021050113"}
        with pytest.raises(InputError) as caught:
            parse_event({**seed, "Limit": -1})
        assert caught.value.code == "InvalidParameterValue.LimitVerifyFail"

    def test_given_trailing_commas_in_job_app_ids_when_parsed_then_no_empty_id(self) -> None:
        event = parse_event({"app_ids": f" {APP_A}, ,{APP_B},"})
        assert event.app_ids == (APP_A, APP_B)  # type: ignore[union-attr]

    def test_given_misspelt_job_field_when_parsed_then_error_names_it(self) -> None:
        """A typo must not silently run the default lookback of 1."""
        with pytest.raises(InputError) as caught:
            parse_event({"window": "day", "lookbak": 3})
        assert caught.value.code == "InvalidParameter"
        assert "lookbak" in caught.value.message

    @pytest.mark.parametrize(
        "payload", [{"Type": "Timer", "Time": "2021-05-01T05:05:00Z"}, {"httpMethod": "GET"}]
    )
    def test_given_timer_or_http_shape_as_message_when_parsed_then_input_error(
        self, payload: dict[str, Any]
    ) -> None:
        with pytest.raises(InputError, match="Message has none of the known shapes"):
            parse_direct(payload, "Message")

    def test_given_timer_event_as_message_when_handled_then_input_error_not_a_crash(
        self, scf_env: dict[str, str], context: dict[str, Any], store: Path
    ) -> None:
        message = json.dumps({"Type": "Timer", "Time": "2021-05-01T05:05:00Z"})
        with pytest.raises(InputError, match="Message"):
            main_handler({**load_event("timer.json"), "Message": message}, context)
        assert stored(store) == []

    def test_given_deeply_nested_json_when_parsed_then_json_parse_fail(self) -> None:
        with pytest.raises(InputError) as caught:
            parse_event("[" * 100_000)
        assert caught.value.code == "FailedOperation.JsonParseFail"
