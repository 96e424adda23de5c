from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index import main_handler

from sms_stats.core.errors import (
    AccessError,
    ConfigError,
    InputError,
    MethodNotAllowedError,
    NotFoundError,
    PayloadTooLargeError,
    upstream_status,
)
from sms_stats.core.settings import load_settings
from sms_stats.emulator import Emulator
from sms_stats.events.http_event import HttpEvent, normalize
from sms_stats.web.http import authorize, route

from .conftest import APP_A, APP_B, load_event


def event(**fields: Any) -> HttpEvent:
    return HttpEvent.model_validate({"httpMethod": "GET", "path": "/stats", **fields})


class TestNormalize:
    def test_given_mixed_case_and_list_headers_when_normalized_then_lower_first_value(self) -> None:
        request = normalize(event(headers={"Authorization": ["Bearer a", "Bearer b"]}), 1024)
        assert request.headers == {"authorization": "Bearer a"}

    def test_given_repeated_and_bare_query_keys_when_normalized_then_lists(self) -> None:
        request = normalize(event(queryString={"app_id": ["1", "2"], "begin": True}), 1024)
        assert request.query == {"app_id": ["1", "2"], "begin": [True]}

    @pytest.mark.parametrize("flag", [True, "true", "TRUE", 1, "1", " True "])
    def test_given_base64_flag_when_normalized_then_body_decoded(self, flag: Any) -> None:
        encoded = base64.b64encode(b'{"a": 1}').decode()
        request = normalize(event(httpMethod="POST", body=encoded, isBase64Encoded=flag), 1024)
        assert request.body == b'{"a": 1}'

    @pytest.mark.parametrize("flag", [False, "false", None, 0, "0", ""])
    def test_given_no_base64_flag_when_normalized_then_body_as_is(self, flag: Any) -> None:
        request = normalize(
            event(httpMethod="POST", body="eyJhIjoxfQ==", isBase64Encoded=flag), 1024
        )
        assert request.body == b"eyJhIjoxfQ=="

    @pytest.mark.parametrize("flag", ["yes", 2, [True], {"a": 1}])
    def test_given_unclear_base64_flag_when_handled_then_400_names_the_field(
        self, flag: Any
    ) -> None:
        answer = main_handler(
            {"httpMethod": "POST", "path": "/stats", "body": "e30=", "isBase64Encoded": flag},
            {},
        )
        assert answer["statusCode"] == 400
        assert "isBase64Encoded" in json.loads(answer["body"])["error"]["message"]

    @pytest.mark.parametrize(
        "place",
        [
            lambda deep: {"headers": {"x-deep": deep}},
            lambda deep: {"headers": {"authorization": [deep]}},
            lambda deep: {"queryString": {"app_id": deep}},
            lambda deep: {"queryString": {"app_id": ["1400006874", deep]}},
            lambda deep: {"path": deep},
            lambda deep: {"body": deep},
        ],
    )
    def test_given_object_nested_5000_deep_anywhere_when_handled_then_400_not_500(
        self, place: Any
    ) -> None:
        deep: list[Any] = []
        inner = deep
        for _ in range(5000):
            inner.append([])
            inner = inner[0]
        answer = main_handler({"httpMethod": "GET", "path": "/stats", **place(deep)}, {})
        assert answer["statusCode"] == 400, answer["body"]

    @pytest.mark.parametrize(
        "headers",
        [
            [["authorization", "Bearer SECRET-TOKEN-0123456789"]],
            "authorization: Bearer SECRET-TOKEN-0123456789",
            {"authorization": {"value": "Bearer SECRET-TOKEN-0123456789"}},
        ],
    )
    def test_given_headers_not_a_map_when_handled_then_400_never_quotes_them(
        self, headers: Any, capsys: pytest.CaptureFixture[str]
    ) -> None:
        answer = main_handler({"httpMethod": "GET", "path": "/stats", "headers": headers}, {})
        assert answer["statusCode"] == 400
        logs = capsys.readouterr().out
        for text in (answer["body"], logs):
            assert "SECRET-TOKEN" not in text
            assert "0123456789" not in text

    def test_given_broken_base64_when_normalized_then_json_parse_fail(self) -> None:
        with pytest.raises(InputError) as caught:
            normalize(event(body="%%%not-base64", isBase64Encoded=True), 1024)
        assert caught.value.code == "FailedOperation.JsonParseFail"

    def test_given_body_over_limit_when_normalized_then_413(self) -> None:
        with pytest.raises(PayloadTooLargeError) as caught:
            normalize(event(httpMethod="POST", body="x" * 2000), 1024)
        assert caught.value.status == 413


class TestRoute:
    @pytest.mark.parametrize("path", ["/stats", "/stats/", "stats"])
    def test_given_stats_path_when_routed_then_stats(self, path: str) -> None:
        assert route(normalize(event(path=path), 1024)) == "/stats"

    @pytest.mark.parametrize(
        "path", ["/foo/healthz", "/stats/../healthz", "/healthz/x", "/release/sms-stats/stats"]
    )
    def test_given_route_inside_another_path_when_routed_then_404(self, path: str) -> None:
        with pytest.raises(NotFoundError) as caught:
            route(normalize(event(path=path), 1024))
        if path.endswith(("/stats", "/healthz")):
            assert "SMS_STATS_HTTP_BASE_PATH" in caught.value.message

    def test_given_base_path_setting_when_routed_then_only_paths_under_it_match(self) -> None:
        base = load_settings({"SMS_STATS_HTTP_BASE_PATH": "/release/sms-stats/"}).http_base_path
        assert base == "/release/sms-stats"
        assert route(normalize(event(path="/release/sms-stats/stats"), 1024), base) == "/stats"
        for path in ("/stats", "/release/sms-statsx/stats", "/release/sms-stats"):
            with pytest.raises(NotFoundError):
                route(normalize(event(path=path), 1024), base)

    @pytest.mark.parametrize("value", ["sms-stats", "/a//b", "/a/../b", "/./a"])
    def test_given_bad_base_path_when_loaded_then_config_error_names_it(self, value: str) -> None:
        with pytest.raises(ConfigError) as caught:
            load_settings({"SMS_STATS_HTTP_BASE_PATH": value})
        assert "SMS_STATS_HTTP_BASE_PATH" in caught.value.message

    def test_given_put_when_routed_then_405_lists_allowed(self) -> None:
        with pytest.raises(MethodNotAllowedError) as caught:
            route(normalize(event(httpMethod="put"), 1024))
        assert caught.value.allow == ("GET", "POST")

    def test_given_other_path_when_routed_then_404(self) -> None:
        with pytest.raises(NotFoundError):
            route(normalize(event(path="/"), 1024))


OLD, NEW = "old-token-3f9a2c51e7", "new-token-8b0d4e62a1"  # tokens of 16+ characters


class TestAuthorize:
    def settings(self, **env: str) -> Any:
        return load_settings(env)

    def test_given_rotation_tokens_when_either_presented_then_allowed(self) -> None:
        settings = self.settings(SMS_STATS_API_TOKEN=f"{OLD},{NEW}")
        for token in (OLD, NEW):
            authorize(
                normalize(event(headers={"authorization": f"bearer {token}"}), 1024), settings
            )

    @pytest.mark.parametrize(
        "header", [None, "", "Bearer", "Bearer ", "Basic b2xkLXRva2Vu", f"Bearer {OLD}2", OLD[:-1]]
    )
    def test_given_bad_authorization_when_checked_then_401(self, header: str | None) -> None:
        headers = {} if header is None else {"Authorization": header}
        with pytest.raises(AccessError) as caught:
            authorize(
                normalize(event(headers=headers), 1024),
                self.settings(SMS_STATS_API_TOKEN=OLD),
            )
        assert caught.value.status == 401

    def test_given_no_token_and_anonymous_switched_on_when_checked_then_allowed(self) -> None:
        authorize(normalize(event(), 1024), self.settings(SMS_STATS_ALLOW_ANONYMOUS="true"))

    def test_given_no_token_when_checked_then_closed(self) -> None:
        with pytest.raises(AccessError, match="closed"):
            authorize(normalize(event(), 1024), self.settings())


query_values = st.one_of(
    st.text(max_size=20),
    st.booleans(),
    st.lists(st.text(max_size=12), max_size=3),
    st.sampled_from(["2021050113", "2021022913", "2021050124", "1400006874", "0"]),
)
http_events = st.fixed_dictionaries(
    {
        "httpMethod": st.sampled_from(["GET", "POST", "get", "PUT", "OPTIONS"]),
        "path": st.sampled_from(["/stats", "/healthz", "/", "/x/stats", "/%00"]),
        "headers": st.dictionaries(
            st.sampled_from(["Authorization", "authorization", "AUTHORIZATION", "x-other"]),
            st.sampled_from(["Bearer test-api-token-4c9e2f71", "Bearer nope", "", "Bearer"]),
        ),
        "queryString": st.dictionaries(
            st.sampled_from(["app_id", "begin", "end", "Limit", "Offset", "junk", "BeginTime"]),
            query_values,
            max_size=5,
        ),
        "body": st.one_of(st.none(), st.text(max_size=60), st.just('{"SmsSdkAppId": 1}')),
        "isBase64Encoded": st.one_of(st.booleans(), st.sampled_from(["true", "false", "yes"])),
    }
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(http_events)
def test_property_any_http_event_gets_a_contract_answer_never_a_500(
    scf_env: dict[str, str], context: dict[str, Any], http_event: dict[str, Any]
) -> None:
    answer = main_handler(http_event, context)
    assert answer["statusCode"] < 500
    body = json.loads(answer["body"])
    if answer["statusCode"] >= 400:
        assert body["error"]["code"]
        assert body["error"]["message"]
        assert body["request_id"] == context["request_id"]


def test_given_captured_event_with_junk_fields_when_handled_then_only_five_fields_read(
    scf_env: dict[str, str], context: dict[str, Any]
) -> None:
    captured = load_event("apigw_get.json")
    captured["requestContext"] = {"httpMethod": "ANY", "weird": [1, 2, 3]}
    captured["stageVariables"] = None
    captured["queryString"] = {**captured["queryString"]}
    assert main_handler(captured, context)["statusCode"] == 200


def test_given_post_job_over_http_when_handled_then_400_and_no_upstream_call(
    scf_env: dict[str, str], context: dict[str, Any], emulator: Emulator
) -> None:
    """A job (`lookback` of 744 hours x 20 apps) would be thousands of calls from one request:
    over HTTP, POST takes the API's own request shape only."""
    before = len(emulator.requests)
    event = {
        **load_event("function_url_post.json"),
        "body": json.dumps({"app_ids": [APP_A], "window": "hour", "lookback": 48}),
    }
    answer = main_handler(event, context)
    assert answer["statusCode"] == 400
    assert "SendStatusStatistics request shape" in json.loads(answer["body"])["error"]["message"]
    assert len(emulator.requests) == before


def test_given_no_credentials_when_healthz_then_500_like_stats(
    scf_env: dict[str, str], context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A health check that says ok while every /stats call fails would hide a missing role."""
    monkeypatch.delenv("TENCENTCLOUD_SECRETID")
    monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
    event = {**load_event("function_url_get.json"), "path": "/healthz", "headers": {}}
    answer = main_handler(event, context)
    assert answer["statusCode"] == 500
    assert json.loads(answer["body"])["error"]["code"] == "InternalError.Configuration"


OTHER_APP = "1400999999"  # a valid app id that is not in SMS_STATS_APP_IDS


def get(query: dict[str, Any]) -> dict[str, Any]:
    return {**load_event("function_url_get.json"), "queryString": query}


def post(payload: dict[str, Any]) -> dict[str, Any]:
    return {**load_event("function_url_post.json"), "body": json.dumps(payload)}


def answer_body(answer: dict[str, Any]) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


def http_event(**fields: Any) -> HttpEvent:
    return HttpEvent.model_validate({"httpMethod": "POST", "path": "/stats", **fields})


class TestHttpBodies:
    def test_given_base64_body_within_limit_once_decoded_when_normalized_then_accepted(
        self,
    ) -> None:
        raw = b"x" * 300  # 400 characters of base64: the limit is on the decoded body
        event = http_event(body=base64.b64encode(raw).decode(), isBase64Encoded=True)
        assert normalize(event, 300).body == raw

    def test_given_body_of_exactly_the_limit_when_normalized_then_accepted(self) -> None:
        assert len(normalize(http_event(body="x" * 1024), 1024).body) == 1024


class TestHttpQueries:
    def test_given_comma_separated_app_ids_when_get_then_one_record_each(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        query = {"app_id": f"{APP_A},{APP_B}", "begin": "2021050113", "end": "2021050113"}
        answer = main_handler(get(query), context)
        assert answer["statusCode"] == 200, answer["body"]
        assert [r["sms_sdk_app_id"] for r in answer_body(answer)["records"]] == [APP_A, APP_B]

    def test_given_same_app_id_twice_when_get_then_one_record(
        self, scf_env: dict[str, str], context: dict[str, Any], emulator: Emulator
    ) -> None:
        before = len(emulator.requests)
        query = {"app_id": [APP_A, APP_A], "begin": "2021050113", "end": "2021050113"}
        answer = main_handler(get(query), context)
        assert answer["statusCode"] == 200, answer["body"]
        assert len(answer_body(answer)["records"]) == 1
        assert len(emulator.requests) == before + 1

    def test_given_seed_parameter_names_when_get_then_same_as_short_names(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        query = {"SmsSdkAppId": APP_A, "BeginTime": "2021050113", "EndTime": "2021050115"}
        answer = main_handler(get(query), context)
        assert answer["statusCode"] == 200, answer["body"]
        (record,) = answer_body(answer)["records"]
        assert (record["begin_time"], record["end_time"]) == ("2021050113", "2021050115")


class TestHttpAllowlist:
    def test_given_star_allowlist_when_get_any_app_then_200(
        self, scf_env: dict[str, str], context: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SMS_STATS_HTTP_APP_IDS", "*")
        query = {"app_id": OTHER_APP, "begin": "2021050113", "end": "2021050113"}
        answer = main_handler(get(query), context)
        assert answer["statusCode"] == 200, answer["body"]

    def test_given_allowed_and_unallowed_app_when_get_then_403_and_no_upstream_call(
        self, scf_env: dict[str, str], context: dict[str, Any], emulator: Emulator
    ) -> None:
        before = len(emulator.requests)
        query = {"app_id": f"{APP_A},{OTHER_APP}", "begin": "2021050113", "end": "2021050113"}
        answer = main_handler(get(query), context)
        assert answer["statusCode"] == 403
        assert answer_body(answer)["error"]["code"] == "UnauthorizedOperation.RequestPermissionDeny"
        assert len(emulator.requests) == before

    def test_given_unallowed_app_when_post_then_403_and_no_upstream_call(
        self, scf_env: dict[str, str], context: dict[str, Any], emulator: Emulator
    ) -> None:
        before = len(emulator.requests)
        payload = {
            "SmsSdkAppId": OTHER_APP,
            "BeginTime": "2021050113",
            "EndTime": "2021050113",
            "Limit": 0,
            "Offset": 0,
        }
        answer = main_handler(post(payload), context)
        assert answer["statusCode"] == 403
        assert len(emulator.requests) == before


class TestErrorStatuses:
    @pytest.mark.parametrize(
        ("code", "status"),
        [
            ("MissingParameter.EmptyParam", 400),
            ("InvalidParameterValue.SdkAppIdNotExist", 404),
            ("UnauthorizedOperation.SdkAppIdIsDisabled", 403),
            ("RequestLimitExceeded.UinLimitExceeded", 429),
            ("AuthFailure.SignatureFailure", 502),
            ("InternalError.Timeout", 504),
        ],
    )
    def test_given_upstream_code_when_mapped_then_readme_status(
        self, code: str, status: int
    ) -> None:
        assert upstream_status(code) == status
