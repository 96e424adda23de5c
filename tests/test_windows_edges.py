"""Windows that must not be stored as they are: unfinished hours, future timers.

Through the real handler, the SDK and the stand-in, with a real store and webhook receiver.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler

from sms_stats.core.errors import InputError, UpstreamError
from sms_stats.emulator import Emulator

from .conftest import API_TOKEN, APP_A, APP_B, load_event, record_files
from .standins.webhook import WebhookReceiver


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def files(store: Path) -> list[str]:
    return record_files(store)


class TestUnfinishedWindows:
    def test_given_query_for_today_when_answered_then_counts_returned_nothing_stored_or_sent(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        today = datetime.now(timezone(timedelta(hours=8))).strftime("%Y%m%d")
        event = {
            "httpMethod": "GET",
            "path": "/stats",
            "headers": {"authorization": f"Bearer {API_TOKEN}"},
            "queryString": {"app_id": APP_A, "begin": f"{today}00", "end": f"{today}23"},
        }
        answer = main_handler(event, context)
        body = json.loads(answer["body"])
        assert answer["statusCode"] == 200
        assert len(body["records"]) == 1
        assert body["incomplete_windows"] == [f"{today}00-{today}23"]
        assert "deliveries" not in body
        assert files(store) == []
        assert receiver.received == []

    def test_given_timer_time_ahead_of_the_clock_when_handled_then_refused_before_any_call(
        self, scf_env: dict[str, str], emulator: Emulator, store: Path, context: dict[str, Any]
    ) -> None:
        calls = len(emulator.requests)
        event = {**load_event("timer.json"), "Time": "2090-01-01T00:05:00Z"}
        with pytest.raises(InputError) as caught:
            main_handler(event, context)
        assert "ahead of this machine's clock" in caught.value.message
        assert "2090010107-2090010107 has not ended" in caught.value.message
        assert len(emulator.requests) == calls
        assert files(store) == []


class TestRunErrors:
    def test_given_every_fetch_out_of_time_when_run_then_says_so_with_its_code(
        self, scf_env: dict[str, str], emulator: Emulator
    ) -> None:
        job = {"app_ids": [APP_A, APP_B], "window": "hour", "lookback": 24}
        with pytest.raises(UpstreamError) as caught:
            main_handler(job, {"time_limit_in_ms": 1})
        assert caught.value.code == "FailedOperation.OutOfTime"
        assert caught.value.message.startswith("no time left for 48 of 48 fetches")
        assert "Partial" not in str(caught.value)

    def test_given_every_fetch_refused_alike_when_run_then_all_failed_with_that_code(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TENCENTCLOUD_SECRETID", "AKIDsomebodyelse000000000000000")
        with pytest.raises(UpstreamError) as caught:
            main_handler(load_event("timer.json"), None)
        assert caught.value.code == "AuthFailure.SecretIdNotFound"
        assert caught.value.message.startswith("all 2 fetches failed")

    @pytest.mark.parametrize("limit", [10**400, float("inf"), float("nan"), 10**12])
    def test_given_absurd_time_limit_when_handled_then_runs_as_without_one(
        self, scf_env: dict[str, str], limit: Any
    ) -> None:
        summary = main_handler(load_event("timer.json"), {"time_limit_in_ms": limit})
        assert summary["ok"] is True

    def test_given_hour_lookback_over_the_span_when_invoked_then_message_says_it_once(
        self, scf_env: dict[str, str]
    ) -> None:
        with pytest.raises(InputError) as caught:
            main_handler({"window": "hour", "lookback": 745}, None)
        assert caught.value.message == (
            "lookback: 745 hours; at most 744 hours (SMS_STATS_MAX_SPAN_HOURS)"
        )
        with pytest.raises(InputError) as caught:
            main_handler({"window": "day", "lookback": 32}, None)
        assert caught.value.message.startswith("lookback: 32 days, 768 hours; at most 744")


class TestPlatformDetails:
    def test_given_lower_case_timer_type_of_older_docs_when_handled_then_a_timer_run(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        summary = main_handler({**load_event("timer.json"), "Type": "timer"}, context)
        assert summary["ok"] is True
        assert len(files(store)) == 2

    def test_given_cache_buster_and_tracking_params_when_get_then_ignored_not_refused(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        event["queryString"] = {**event["queryString"], "_": "1712345678", "utm_source": "x"}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200, answer["body"]

    def test_given_unknown_field_in_post_body_when_handled_then_still_refused(
        self, scf_env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_post.json")
        body = {**json.loads(event["body"]), "utm_source": "x"}
        answer = main_handler({**event, "body": json.dumps(body)}, context)
        assert answer["statusCode"] == 400
        assert "body.utm_source is not a known field" in answer["body"]

    def test_given_unreachable_api_when_get_then_caller_gets_code_logs_get_the_detail(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        with socket.socket() as probe:  # a port nothing listens on
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        monkeypatch.setenv("SMS_STATS_ENDPOINT", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 504
        assert "ClientNetworkError" in answer["body"]
        assert str(port) not in answer["body"]
        assert "HTTPConnectionPool" not in answer["body"]
        refused = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if '"http.refused"' in line
        ]
        assert str(port) in refused[0]["message"]
