"""The real handler, the real SDK, real HTTP to the stand-in, real files in the store."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats import handler
from sms_stats.core.errors import ConfigError, InputError, SmsStatsError, UpstreamError
from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, APP_B, load_event, record_files


def stored(store: Path) -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((store / name).read_text(encoding="utf-8")) for name in record_files(store)
    }


def body(answer: dict[str, Any]) -> dict[str, Any]:
    assert answer["isBase64Encoded"] is False
    assert answer["headers"]["Content-Type"].startswith("application/json")
    parsed: dict[str, Any] = json.loads(answer["body"])
    return parsed


def assert_matches_emulator(record: dict[str, Any]) -> None:
    expected = Emulator.expected(record["sms_sdk_app_id"], record["begin_time"], record["end_time"])
    assert record["request_count"] == expected["RequestCount"]
    assert record["request_success_count"] == expected["RequestSuccessCount"]
    assert record["fee_count"] == expected["FeeCount"]


class TestTimer:
    def test_given_timer_event_when_handled_then_last_hour_of_each_app_is_in_the_store(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        summary = main_handler(load_event("timer.json"), context)

        files = stored(store)
        assert sorted(files) == [
            f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json",
            f"app={APP_B}/dt=2021-05-01/2021050112-2021050112.json",
        ]
        for record in files.values():
            assert_matches_emulator(record)
            assert record["schema"] == "sms-stats/v1"
            assert record["timezone"] == "Asia/Shanghai"
            assert record["window_start"] == "2021-05-01T12:00:00+08:00"
            assert record["window_end"] == "2021-05-01T13:00:00+08:00"
            assert record["fetched_at"].endswith("Z")
            assert record["request_id"]
        assert summary["ok"] is True
        assert [r["sms_sdk_app_id"] for r in summary["records"]] == [APP_A, APP_B]
        assert all(d["ok"] for d in summary["deliveries"])

    def test_given_timer_run_twice_when_handled_then_same_keys_are_overwritten(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        main_handler(load_event("timer.json"), context)
        first = stored(store)
        main_handler(load_event("timer.json"), context)
        assert stored(store).keys() == first.keys()

    def test_given_json_job_in_message_when_handled_then_its_lookback_is_collected(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        main_handler(load_event("timer_job_message.json"), context)
        names = sorted(Path(k).name for k in stored(store))
        assert names == sorted(
            2
            * [
                "2021050110-2021050110.json",
                "2021050111-2021050111.json",
                "2021050112-2021050112.json",
            ]
        )

    def test_given_plain_text_message_when_handled_then_settings_job_runs(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        event = {**load_event("timer.json"), "Message": "hourly run"}
        main_handler(event, context)
        assert len(stored(store)) == 2

    def test_given_invalid_job_in_message_when_handled_then_input_error_names_it(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = {**load_event("timer.json"), "Message": '{"window": "week"}'}
        with pytest.raises(InputError, match=r"Message\.window"):
            main_handler(event, context)

    @pytest.mark.parametrize("message", ['{"window": "hour"', "[1, 2]", '{"lookback": "3"}'])
    def test_given_broken_json_message_when_handled_then_error_not_the_default_job(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any], message: str
    ) -> None:
        with pytest.raises(InputError, match="Message"):
            main_handler({**load_event("timer.json"), "Message": message}, context)
        assert stored(store) == {}

    def test_given_timer_without_app_ids_when_handled_then_config_error_says_what_to_set(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
    ) -> None:
        monkeypatch.delenv("SMS_STATS_APP_IDS")
        with pytest.raises(ConfigError, match="SMS_STATS_APP_IDS"):
            main_handler(load_event("timer.json"), context)

    def test_given_one_app_refused_when_handled_then_other_is_stored_and_run_raises(
        self, scf_env: dict[str, str], emulator: Emulator, store: Path, context: dict[str, Any]
    ) -> None:
        emulator.set_fault(Fault(error_code="UnauthorizedOperation.SdkAppIdIsDisabled"), APP_B)
        with pytest.raises(UpstreamError) as caught:
            main_handler(load_event("timer.json"), context)
        assert caught.value.code == "UnauthorizedOperation.SdkAppIdIsDisabled"
        assert APP_B in caught.value.message
        assert list(stored(store)) == [f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json"]

    def test_given_one_app_answers_a_bad_count_when_timer_runs_then_other_is_stored_and_run_raises(
        self,
        scf_env: dict[str, str],
        emulator: Emulator,
        store: Path,
        context: dict[str, Any],
        mocker: MockerFixture,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """An answer Python cannot hold (1e400 overflowed `int()`) fails its own app only."""
        mocker.patch("sms_stats.collect.client.time.sleep")
        emulator.set_fault(Fault(fields={"RequestCount": "1e400"}), APP_A)

        with pytest.raises(SmsStatsError) as caught:
            main_handler(load_event("timer.json"), context)

        assert caught.value.code == "InternalError.BadUpstreamResponse"
        assert APP_A in caught.value.message
        files = stored(store)
        assert list(files) == [f"app={APP_B}/dt=2021-05-01/2021050112-2021050112.json"]
        assert_matches_emulator(next(iter(files.values())))
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        bad = [line for line in lines if line["event"] == "upstream.bad_answer"]
        assert [line["value"] for line in bad] == ["1e400"] * 3
        assert lines[-1]["event"] == "invocation.end"
        assert lines[-1]["level"] == "ERROR"
        assert lines[-1]["code"] == "InternalError.BadUpstreamResponse"


class TestDirect:
    def test_given_seed_request_when_invoked_then_one_record_for_the_inclusive_range(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        summary = main_handler(load_event("direct_seed.json"), context)
        (record,) = summary["records"]
        assert (record["begin_time"], record["end_time"]) == ("2021050113", "2021050118")
        assert record["window_end"] == "2021-05-01T19:00:00+08:00"
        assert_matches_emulator(record)
        # Six hours in one call: a range, in its own layout, never beside the hours.
        assert list(stored(store)) == [
            f"ranges/app={APP_A}/dt=2021-05-01/2021050113-2021050118.json"
        ]

    def test_given_day_job_when_invoked_then_yesterday_for_each_app(
        self, scf_env: dict[str, str], mocker: MockerFixture, context: dict[str, Any]
    ) -> None:

        mocker.patch(
            "sms_stats.handler.utcnow", return_value=datetime(2021, 5, 2, 1, tzinfo=timezone.utc)
        )
        summary = main_handler(load_event("direct_job.json"), context)
        assert [
            (r["sms_sdk_app_id"], r["begin_time"], r["end_time"]) for r in summary["records"]
        ] == [
            (APP_A, "2021050100", "2021050123"),
            (APP_B, "2021050100", "2021050123"),
        ]
        for record in summary["records"]:
            assert_matches_emulator(record)

    @pytest.mark.parametrize(
        ("change", "code"),
        [
            ({"BeginTime": "2021050124"}, "InvalidParameterValue.BeginTimeVerifyFail"),
            ({"EndTime": "20210501"}, "InvalidParameterValue.EndTimeVerifyFail"),
            ({"EndTime": "2021050112"}, "InvalidParameterValue.EndTimeVerifyFail"),
            ({"Limit": 10}, "InvalidParameterValue.LimitVerifyFail"),
            ({"Offset": 1}, "InvalidParameterValue.OffsetVerifyFail"),
            ({"SmsSdkAppId": "abc"}, "InvalidParameter"),
            ({"Extra": 1}, "InvalidParameter"),
        ],
    )
    def test_given_bad_seed_request_when_invoked_then_seed_code_and_no_call(
        self,
        scf_env: dict[str, str],
        emulator: Emulator,
        context: dict[str, Any],
        change: dict[str, Any],
        code: str,
    ) -> None:
        before = len(emulator.requests)
        with pytest.raises(InputError) as caught:
            main_handler({**load_event("direct_seed.json"), **change}, context)
        assert caught.value.code == code
        assert len(emulator.requests) == before

    def test_given_no_credentials_when_invoked_then_error_says_what_to_set(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
    ) -> None:
        monkeypatch.delenv("TENCENTCLOUD_SECRETID")
        monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
        with pytest.raises(ConfigError) as caught:
            main_handler(load_event("direct_seed.json"), context)
        assert "TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY" in caught.value.message
        assert "role" in caught.value.message


class TestHttp:
    @pytest.mark.parametrize("name", ["function_url_get.json", "apigw_get.json"])
    def test_given_get_event_when_handled_then_200_with_records(
        self, scf_env: dict[str, str], context: dict[str, Any], name: str
    ) -> None:
        event = load_event(name)
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200, answer["body"]
        records = body(answer)["records"]
        app_ids = event["queryString"]["app_id"]
        assert [r["sms_sdk_app_id"] for r in records] == (
            app_ids if isinstance(app_ids, list) else [app_ids]
        )
        for record in records:
            assert record["begin_time"] == event["queryString"]["begin"]
            assert_matches_emulator(record)

    @pytest.mark.parametrize("name", ["function_url_post.json", "apigw_post_base64.json"])
    def test_given_post_event_when_handled_then_200_with_the_record(
        self, scf_env: dict[str, str], context: dict[str, Any], name: str
    ) -> None:
        answer = main_handler(load_event(name), context)
        assert answer["statusCode"] == 200, answer["body"]
        (record,) = body(answer)["records"]
        assert (record["begin_time"], record["end_time"]) == ("2021050113", "2021050118")
        assert_matches_emulator(record)

    @pytest.mark.parametrize(
        ("query", "status", "code"),
        [
            ({"begin": "2021050113", "end": "2021050113"}, 400, "MissingParameter"),
            ({"app_id": APP_A, "end": "2021050113"}, 400, "MissingParameter"),
            (
                {"app_id": APP_A, "begin": "2021022913", "end": "2021022913"},
                400,
                "InvalidParameterValue.BeginTimeVerifyFail",
            ),
            (
                {"app_id": APP_A, "begin": "2021050113", "end": "2021050124"},
                400,
                "InvalidParameterValue.EndTimeVerifyFail",
            ),
            (
                {"app_id": APP_A, "begin": "2021050113", "end": "2021050112"},
                400,
                "InvalidParameterValue.EndTimeVerifyFail",
            ),
            (
                {"app_id": APP_A, "begin": True, "end": "2021050113"},
                400,
                "InvalidParameterValue.BeginTimeVerifyFail",
            ),
            (
                {"app_id": APP_A, "begin": "2021050113", "end": "2021050113", "Limit": "5"},
                400,
                "InvalidParameterValue.LimitVerifyFail",
            ),
            (
                {"app_id": APP_A, "begin": "2021050113", "end": "2021050113", "Offset": "5"},
                400,
                "InvalidParameterValue.OffsetVerifyFail",
            ),
            (
                {"app_id": "1400999999", "begin": "2021050113", "end": "2021050113"},
                403,
                "UnauthorizedOperation.RequestPermissionDeny",
            ),
            (
                {"app_id": "14000", "begin": "2021050113", "end": "2021050113"},
                400,
                "InvalidParameter",
            ),
        ],
    )
    def test_given_bad_query_when_handled_then_contract_error(
        self,
        scf_env: dict[str, str],
        context: dict[str, Any],
        query: dict[str, Any],
        status: int,
        code: str,
    ) -> None:
        event = {**load_event("function_url_get.json"), "queryString": query}
        answer = main_handler(event, context)
        assert answer["statusCode"] == status
        parsed = body(answer)
        assert parsed["error"]["code"] == code
        assert parsed["error"]["message"]
        assert parsed["request_id"] == context["request_id"]

    @pytest.mark.parametrize(
        ("post_body", "code"),
        [
            ("{not json", "FailedOperation.JsonParseFail"),
            ("", "MissingParameter"),
            ('{"SmsSdkAppId": "1400006874", "EndTime": "2021050113"}', "MissingParameter"),
            (
                '{"SmsSdkAppId": "1400006874", "BeginTime": "x", "EndTime": "2021050113"}',
                "InvalidParameterValue.BeginTimeVerifyFail",
            ),
            ("[1, 2]", "InvalidParameter"),
        ],
    )
    def test_given_bad_post_body_when_handled_then_400_with_seed_code(
        self, scf_env: dict[str, str], context: dict[str, Any], post_body: str, code: str
    ) -> None:
        event = {**load_event("function_url_post.json"), "body": post_body}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 400
        assert body(answer)["error"]["code"] == code

    @pytest.mark.parametrize(
        ("upstream", "status"),
        [
            ("InvalidParameterValue.SdkAppIdNotExist", 404),
            ("UnauthorizedOperation.SmsSdkAppIdVerifyFail", 403),
            ("UnauthorizedOperation.RequestPermissionDeny", 403),
            ("UnauthorizedOperation.ServiceSuspendDueToArrears", 403),
            ("RequestLimitExceeded", 429),
            ("InternalError.Timeout", 504),
            ("InternalError.SendAndRecvFail", 504),
            ("InternalError.OtherError", 502),
            ("AuthFailure.SignatureExpire", 502),
            ("FailedOperation.JsonParseFail", 400),
            ("InvalidParameter", 400),
        ],
    )
    def test_given_upstream_error_code_when_get_then_code_passes_through_with_status(
        self,
        scf_env: dict[str, str],
        emulator: Emulator,
        mocker: MockerFixture,
        context: dict[str, Any],
        upstream: str,
        status: int,
    ) -> None:
        mocker.patch(
            "sms_stats.collect.client.time.sleep"
        )  # retries of transient codes, without waiting
        emulator.set_fault(Fault(error_code=upstream), APP_A)
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == status
        parsed = body(answer)
        assert parsed["error"]["code"] == upstream
        assert parsed["records"] == []

    def test_given_no_token_configured_when_get_then_401(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
    ) -> None:
        monkeypatch.delenv("SMS_STATS_API_TOKEN")
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 401
        assert "SMS_STATS_API_TOKEN" in body(answer)["error"]["message"]

    def test_given_wrong_token_when_get_then_401_without_echoing_it(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        event["headers"]["authorization"] = "Bearer guessed-token-123"
        answer = main_handler(event, context)
        assert answer["statusCode"] == 401
        assert "guessed-token-123" not in answer["body"]

    def test_given_unknown_path_and_wrong_method_when_handled_then_404_and_405(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        assert main_handler({**event, "path": "/admin"}, context)["statusCode"] == 404
        answer = main_handler({**event, "httpMethod": "DELETE"}, context)
        assert answer["statusCode"] == 405
        assert answer["headers"]["Allow"] == "GET, POST"

    def test_given_healthz_when_get_then_200_and_no_upstream_call(
        self, scf_env: dict[str, str], emulator: Emulator, context: dict[str, Any]
    ) -> None:
        before = len(emulator.requests)
        event = {**load_event("function_url_get.json"), "path": "/healthz", "headers": {}}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200
        assert len(emulator.requests) == before

    def test_given_missing_credentials_when_get_then_500_and_the_log_says_what_to_set(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        context: dict[str, Any],
    ) -> None:
        monkeypatch.delenv("TENCENTCLOUD_SECRETKEY")
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 500
        error = body(answer)["error"]
        assert error["code"] == "InternalError.Configuration"
        assert "TENCENTCLOUD_SECRETKEY" not in error["message"]  # details are not public
        assert context["request_id"] in error["message"]
        logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        refused = [line for line in logs if line["event"] == "http.refused"]
        assert "TENCENTCLOUD_SECRETKEY" in refused[0]["message"]

    def test_given_bad_sink_setting_with_a_key_when_healthz_then_key_neither_answered_nor_logged(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        tmp_path: Path,
        context: dict[str, Any],
    ) -> None:
        config = tmp_path / "sms_stats.toml"
        config.write_text(
            'SMS_STATS_SINKS = ["https://oapi.dingtalk.com/robot/send?access_token=TOKEN123", 42]\n'
            'SMS_STATS_ENDPOINT = "https://user:PASS456@proxy.example.com:8443/x"\n',
            encoding="utf-8",
        )
        monkeypatch.delenv("SMS_STATS_SINKS")
        monkeypatch.delenv("SMS_STATS_ENDPOINT")
        monkeypatch.setenv("SMS_STATS_CONFIG", str(config))
        event = {**load_event("function_url_get.json"), "path": "/healthz", "headers": {}}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 500
        out = capsys.readouterr().out
        assert "SMS_STATS_SINKS" in out
        assert "SMS_STATS_ENDPOINT" in out
        for secret in ("TOKEN123", "PASS456"):
            assert secret not in answer["body"]
            assert secret not in out

    def test_given_session_token_when_called_then_it_reaches_the_api(
        self, scf_env: dict[str, str], emulator: Emulator, context: dict[str, Any]
    ) -> None:
        before = len(emulator.requests)
        main_handler(load_event("function_url_get.json"), context)
        assert all(entry["token"] for entry in emulator.requests[before:])


def test_given_unrecognised_event_when_invoked_then_error_lists_the_shapes(
    scf_env: dict[str, str], context: dict[str, Any]
) -> None:
    with pytest.raises(SmsStatsError, match="none of the known shapes"):
        main_handler({"key1": "value1", "key2": "value2"}, context)


class TestHandlerEdges:
    def test_given_bad_sink_url_when_healthz_then_500_configuration(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, context: dict[str, Any]
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", "ftp://nowhere.example.com/x")
        event = {**load_event("function_url_get.json"), "path": "/healthz", "headers": {}}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 500
        assert json.loads(answer["body"])["error"]["code"] == "InternalError.Configuration"

    def test_given_indented_json_message_when_handled_then_job_is_validated_not_defaulted(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        event = {**load_event("timer.json"), "Message": '\n  {"window": "week"}'}
        with pytest.raises(InputError, match=r"Message\.window"):
            main_handler(event, context)
        assert not list(store.rglob("*.json"))  # nothing ran, not even _store.json

    def test_given_log_level_in_bundled_file_when_handled_then_it_applies(
        self,
        scf_env: dict[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str],
        context: dict[str, Any],
    ) -> None:
        config = tmp_path / "sms_stats.toml"
        config.write_text('SMS_STATS_LOG_LEVEL = "ERROR"\n', encoding="utf-8")
        monkeypatch.setenv("SMS_STATS_CONFIG", str(config))
        main_handler(load_event("timer.json"), context)
        events = [json.loads(line)["event"] for line in capsys.readouterr().out.splitlines()]
        assert events == []  # invocation.end (with the job's figures) is INFO

    def test_given_environment_changes_when_handled_again_then_settings_and_sinks_follow(
        self,
        scf_env: dict[str, str],
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        """The per-container caches are keyed on everything that shapes the settings."""
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{tmp_path / 'one'}")
        main_handler(load_event("timer.json"), context)
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{tmp_path / 'two'}")
        main_handler(load_event("timer.json"), context)
        assert len(stored(tmp_path / "two")) == 2
        monkeypatch.setenv("TENCENTCLOUD_REGION", "ap-beijing")
        assert handler.current_settings().region == "ap-beijing"
        config = tmp_path / "sms_stats.toml"
        config.write_text('SMS_STATS_TIMEZONE = "UTC"\n', encoding="utf-8")
        monkeypatch.setenv("SMS_STATS_CONFIG", str(config))
        assert handler.current_settings().timezone == "UTC"
