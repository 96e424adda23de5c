from __future__ import annotations

import json
import subprocess
import sys
import time
from typing import Any

import pytest
from pytest_mock import MockerFixture
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

from sms_stats.collect.client import (
    OUT_OF_TIME,
    RetryPolicy,
    StatsClient,
    is_transient,
    map_sdk_error,
)
from sms_stats.core.errors import UpstreamError
from sms_stats.core.settings import load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, FakeClock


def window() -> Window:
    return Window.from_api("2021050113", "2021050113", zone("Asia/Shanghai"))


class TestRetryPolicy:
    def test_given_attempts_when_delayed_then_exponential_capped_full_jitter(self) -> None:
        policy = RetryPolicy(base_delay=0.2, max_delay=1.0)
        assert [policy.delay(n, lambda: 1.0) for n in (1, 2, 3, 4, 5)] == [0.2, 0.4, 0.8, 1.0, 1.0]
        assert policy.delay(3, lambda: 0.0) == 0.0


class TestClassification:
    @pytest.mark.parametrize(
        "code",
        [
            "ClientNetworkError",
            "ServerNetworkError",
            "RequestLimitExceeded",
            "RequestLimitExceeded.UinLimitExceeded",
            "InternalError.Timeout",
            "InternalError.SendAndRecvFail",
        ],
    )
    def test_given_transient_code_then_retried(self, code: str) -> None:
        assert is_transient(code)

    @pytest.mark.parametrize(
        "code",
        [
            "AuthFailure.SignatureFailure",
            "InvalidParameter",
            "MissingParameter",
            "UnauthorizedOperation.RequestPermissionDeny",
            "InvalidParameterValue.SdkAppIdNotExist",
            "FailedOperation.JsonParseFail",
        ],
    )
    def test_given_permanent_code_then_not_retried(self, code: str) -> None:
        assert not is_transient(code)

    def test_given_server_network_error_with_bytes_when_mapped_then_readable_text(self) -> None:
        error = map_sdk_error(
            TencentCloudSDKException("ServerNetworkError", b"<h1>502 Bad Gateway</h1>")
        )
        assert error.code == "ServerNetworkError"
        assert "502 Bad Gateway" in error.message
        assert error.retryable
        assert error.status == 502

    def test_given_clock_skew_code_when_mapped_then_message_says_check_the_clock(self) -> None:
        error = map_sdk_error(
            TencentCloudSDKException("AuthFailure.SignatureExpire", "Signature expired", "rid-1")
        )
        assert "check the clock" in error.message
        assert error.request_id == "rid-1"
        assert not error.retryable

    def test_given_sdk_wrapped_python_error_when_mapped_then_bad_upstream_response(self) -> None:
        error = map_sdk_error(TencentCloudSDKException("JSONDecodeError", "Expecting value"))
        assert error.code == "InternalError.BadUpstreamResponse"
        assert error.retryable


@pytest.fixture
def stats_client(scf_env: dict[str, str], mocker: MockerFixture) -> tuple[StatsClient, list[Any]]:
    attempts: list[Any] = []
    sleep = mocker.Mock()
    client = StatsClient(load_settings(), sleep=sleep, rng=lambda: 0.5, on_attempt=attempts.append)
    return client, attempts


class TestStatsClientAgainstStandIn:
    def test_given_healthy_api_when_fetched_then_counts_equal_stand_in(
        self, stats_client: tuple[StatsClient, list[Any]]
    ) -> None:
        client, attempts = stats_client
        counts = client.fetch(APP_A, window())
        expected = Emulator.expected(APP_A, "2021050113", "2021050113")
        assert counts.request_count == expected["RequestCount"]
        assert counts.request_success_count == expected["RequestSuccessCount"]
        assert counts.fee_count == expected["FeeCount"]
        assert counts.request_id
        assert [a["code"] for a in attempts] == ["OK"]

    @pytest.mark.parametrize(
        "fault",
        [
            Fault(error_code="RequestLimitExceeded", times=2),
            Fault(error_code="InternalError.Timeout", times=2),
            Fault(http_status=502, times=2),
            Fault(html=True, times=2),
            Fault(no_response_key=True, times=2),
            Fault(fields={"RequestCount": "1e400"}, times=2),
            Fault(raw_body=b"[" * 100_000, times=2),
        ],
    )
    def test_given_two_transient_failures_when_fetched_then_third_attempt_succeeds(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator, fault: Fault
    ) -> None:
        client, attempts = stats_client
        emulator.set_fault(fault, APP_A)
        client.fetch(APP_A, window())
        assert len(attempts) == 3
        assert attempts[-1]["code"] == "OK"

    def test_given_permanent_error_when_fetched_then_one_attempt_and_code_passes(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        client, attempts = stats_client
        emulator.set_fault(Fault(error_code="UnauthorizedOperation.SmsSdkAppIdVerifyFail"), APP_A)
        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())
        assert caught.value.code == "UnauthorizedOperation.SmsSdkAppIdVerifyFail"
        assert caught.value.request_id
        assert len(attempts) == 1

    def test_given_always_failing_when_fetched_then_gives_up_after_max_attempts(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        client, attempts = stats_client
        emulator.set_fault(Fault(error_code="InternalError.SendAndRecvFail"), APP_A)
        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())
        assert caught.value.attempts == 3
        assert len(attempts) == 3

    def test_given_wrong_secret_key_when_fetched_then_signature_failure_not_retried(
        self, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("TENCENTCLOUD_SECRETKEY", "not-the-key")
        with pytest.raises(UpstreamError) as caught:
            StatsClient(load_settings()).fetch(APP_A, window())
        assert caught.value.code == "AuthFailure.SignatureFailure"
        assert caught.value.attempts == 1

    def test_given_hanging_api_when_fetched_then_client_network_error_after_timeout(
        self,
        stats_client: tuple[StatsClient, list[Any]],
        emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_TIMEOUT", "0.3")
        monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "2")
        emulator.set_fault(Fault(hang=True), APP_A)
        client = StatsClient(load_settings(), sleep=lambda s: None)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())
        assert caught.value.code == "ClientNetworkError"
        assert caught.value.status == 504
        assert caught.value.attempts == 2
        assert time.monotonic() - started < 5

    def test_given_deadline_too_close_when_fetched_then_no_call_and_left_for_next_run(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        client, attempts = stats_client
        before = len(emulator.requests)
        with pytest.raises(UpstreamError, match="next run"):
            client.fetch(APP_A, window(), deadline=time.monotonic() + 0.5)
        assert len(emulator.requests) == before
        assert attempts == []

    def test_given_retry_would_overrun_deadline_when_fetched_then_stops_early(
        self, scf_env: dict[str, str], emulator: Emulator
    ) -> None:
        emulator.set_fault(Fault(error_code="InternalError.Timeout"), APP_A)
        clock = FakeClock()
        settings = load_settings()
        client = StatsClient(settings, clock=clock, sleep=clock.sleep, rng=lambda: 1.0)
        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window(), deadline=clock.now + settings.timeout + 0.1)
        assert caught.value.attempts == 1
        assert clock.slept == []


SHANGHAI = zone("Asia/Shanghai")


class TestClientRateLimitAndDeadline:
    def test_given_next_slot_leaves_no_time_for_a_call_when_fetched_then_left_for_next_run(
        self, scf_env: dict[str, str], emulator: Emulator, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """At 1 call a second the next slot is ~1 s away; with 2.5 s left and a 2 s timeout a
        call started then could overrun the invocation, so none is started."""
        monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1")
        settings = load_settings()
        client = StatsClient(settings)
        window = Window.from_api("2021050113", "2021050113", SHANGHAI)
        client.fetch(APP_A, window)
        before = len(emulator.requests)
        started = time.monotonic()
        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window, deadline=started + settings.timeout + 0.5)
        assert caught.value.code == OUT_OF_TIME
        assert len(emulator.requests) == before
        assert time.monotonic() - started < 0.5


class TestAnswersReadByUs:
    """The SDK signs and sends; the answer's bytes are read and validated by answers.py."""

    def test_given_impossible_count_when_fetched_then_bad_upstream_response_logged_per_attempt(
        self,
        stats_client: tuple[StatsClient, list[Any]],
        emulator: Emulator,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        client, attempts = stats_client
        emulator.set_fault(Fault(fields={"RequestCount": "Infinity"}), APP_A)

        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())

        assert caught.value.code == "InternalError.BadUpstreamResponse"
        assert caught.value.attempts == 3
        assert "Response.SendStatusStatistics.RequestCount" in caught.value.message
        assert [a["code"] for a in attempts] == ["InternalError.BadUpstreamResponse"] * 3
        assert all(a["upstream_request_id"] for a in attempts)  # the answer's own RequestId
        lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        bad = [line for line in lines if line["event"] == "upstream.bad_answer"]
        assert len(bad) == 3
        assert bad[0]["level"] == "WARNING"
        assert bad[0]["field"] == "Response.SendStatusStatistics.RequestCount"
        assert bad[0]["value"] == "Infinity"
        assert bad[0]["app_id"] == APP_A
        assert bad[0]["window"] == str(window())

    def test_given_error_envelope_with_charset_when_fetched_then_its_code_passes_through(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        """The SDK's own error check knows only two exact Content-Types."""
        client, _ = stats_client
        body = b'{"Response":{"Error":{"Code":"UnauthorizedOperation.SdkAppIdIsDisabled",'
        body += b'"Message":"disabled"},"RequestId":"rid-7"}}'
        emulator.set_fault(
            Fault(raw_body=body, content_type="application/json; charset=utf-8"), APP_A
        )

        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())

        assert caught.value.code == "UnauthorizedOperation.SdkAppIdIsDisabled"
        assert caught.value.request_id == "rid-7"
        assert caught.value.attempts == 1

    def test_given_valid_answer_padded_past_the_body_cap_when_fetched_then_refused(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        """Cut at 1 MiB, trailing spaces would still parse: a cut answer is never used."""
        client, _ = stats_client
        answer = b'{"Response":{"SendStatusStatistics":{"FeeCount":1,"RequestCount":1,'
        answer += b'"RequestSuccessCount":1},"RequestId":"r"}}'
        emulator.set_fault(Fault(raw_body=answer + b" " * (2 * 1024 * 1024)), APP_A)

        with pytest.raises(UpstreamError) as caught:
            client.fetch(APP_A, window())

        assert caught.value.code == "InternalError.BadUpstreamResponse"
        assert "1 MiB" in caught.value.message

    def test_given_answer_just_under_the_cap_when_fetched_then_used(
        self, stats_client: tuple[StatsClient, list[Any]], emulator: Emulator
    ) -> None:
        client, _ = stats_client
        answer = b'{"Response":{"SendStatusStatistics":{"FeeCount":1,"RequestCount":1,'
        answer += b'"RequestSuccessCount":1},"RequestId":"r"}}'
        emulator.set_fault(Fault(raw_body=answer + b" " * (1024 * 1024 - 1 - len(answer))), APP_A)

        assert client.fetch(APP_A, window()).request_count == 1

    def test_given_a_fetch_when_made_then_the_sdk_product_package_is_not_imported(
        self, scf_env: dict[str, str]
    ) -> None:
        """Only tencentcloud-sdk-python-common runs: its generated models never see an answer."""
        probe = (
            "import sys\n"
            "from sms_stats.collect.client import StatsClient\n"
            "from sms_stats.core.settings import load_settings\n"
            "from sms_stats.core.windows import Window, zone\n"
            "w = Window.from_api('2021050113', '2021050113', zone('Asia/Shanghai'))\n"
            f"print(StatsClient(load_settings()).fetch('{APP_A}', w).request_count)\n"
            "print(sorted(m for m in sys.modules if m.startswith('tencentcloud.sms')))\n"
        )

        result = subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
        )

        count, modules = result.stdout.splitlines()
        expected = Emulator.expected(APP_A, "2021050113", "2021050113")
        assert int(count) == expected["RequestCount"]
        assert modules == "[]"

    def test_given_sdk_client_when_built_then_its_session_is_bounded(
        self, scf_env: dict[str, str]
    ) -> None:
        from sms_stats.collect.client import sdk_client
        from sms_stats.core import net

        session = sdk_client(load_settings()).request.conn._session

        for prefix in ("http://", "https://"):
            adapter = session.get_adapter(prefix)
            assert isinstance(adapter, net.BoundedAdapter)
            assert adapter.max_body == net.API_MAX_BODY


class _Proxy:
    """A forward HTTP proxy on loopback that counts what passes through it."""

    def __init__(self) -> None:
        import http.client
        import http.server
        import threading
        from urllib.parse import urlsplit

        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                target = urlsplit(self.path)  # a proxy is sent the absolute URL
                seen.append(self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "proxy-connection"}
                upstream.request("POST", target.path or "/", body, headers)
                answer = upstream.getresponse()
                data = answer.read()
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.getheader("Content-Type", ""))
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                upstream.close()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class TestProxyFromTheEnvironment:
    """The SDK's session reads the proxy settings once, when the client is made (a warm call
    no longer re-reads the environment), with requests' rules: ALL_PROXY and NO_PROXY too."""

    @pytest.fixture
    def proxy(self) -> Any:
        proxy = _Proxy()
        yield proxy
        proxy.close()

    @pytest.fixture(autouse=True)
    def fresh_clients(self, mocker: MockerFixture, monkeypatch: pytest.MonkeyPatch) -> None:
        mocker.patch.dict("sms_stats.collect.client._sdk_clients", clear=True)
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
            monkeypatch.delenv(name, raising=False)
            monkeypatch.delenv(name.lower(), raising=False)

    def test_given_all_proxy_when_fetched_then_the_call_goes_through_it(
        self, scf_env: dict[str, str], proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ALL_PROXY", proxy.url)  # honoured by requests, not by the SDK
        client = StatsClient(load_settings())
        monkeypatch.delenv("ALL_PROXY")  # read once: a later change does not apply
        client.fetch(APP_A, window())
        client.fetch(APP_A, window())
        assert len(proxy.seen) == 2
        assert client._client.request.conn._session.trust_env is False

    def test_given_no_proxy_naming_the_endpoint_when_fetched_then_the_proxy_is_bypassed(
        self, scf_env: dict[str, str], proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("ALL_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        counts = StatsClient(load_settings()).fetch(APP_A, window())
        assert (
            counts.request_count
            == Emulator.expected(APP_A, "2021050113", "2021050113")["RequestCount"]
        )
        assert proxy.seen == []

    def test_given_http_proxy_when_fetched_then_the_sdk_choice_is_kept(
        self, scf_env: dict[str, str], proxy: _Proxy, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)  # the SDK's own variable for http://
        StatsClient(load_settings()).fetch(APP_A, window())
        assert len(proxy.seen) == 1
