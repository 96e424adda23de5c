"""The SMS API emulator, driven by the official Tencent Cloud SDK as its client.

Raw requests (http.client plus a small TC3 signer written here, independently of both the SDK
and the emulator) cover what the SDK cannot be made to send: tampered bodies, odd headers.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import io
import json
import os
import re
import signal
import socket
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
from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from sms_stats.emulator import Emulator, Fault
from sms_stats.emulator.cli import _parse_fault

from .probe import run_fresh

SID = "AKIDEMULATOR"
SKEY = "emulator-secret-key"
APP = "1400006874"
VALID: dict[str, Any] = {
    "SmsSdkAppId": APP,
    "BeginTime": "2021050113",
    "EndTime": "2021050118",
    "Limit": 0,
    "Offset": 0,
}
DROP = object()
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


# -- helpers ------------------------------------------------------------------------------


def sdk_client(
    target: Emulator | int,
    *,
    secret_id: str = SID,
    secret_key: str = SKEY,
    token: str | None = None,
    region: str = "ap-guangzhou",
    timeout: int = 5,
    method: str = "POST",
) -> sms_client.SmsClient:
    port = target if isinstance(target, int) else target.port
    profile = HttpProfile(
        protocol="http", endpoint=f"127.0.0.1:{port}", reqTimeout=timeout, reqMethod=method
    )
    return sms_client.SmsClient(
        credential.Credential(secret_id, secret_key, token),
        region,
        ClientProfile(httpProfile=profile, language="en-US"),
    )


def params(**overrides: Any) -> dict[str, Any]:
    merged = {**VALID, **overrides}
    return {k: v for k, v in merged.items() if v is not DROP}


def send(client: sms_client.SmsClient, **overrides: Any) -> dict[str, Any]:
    request = models.SendStatusStatisticsRequest()
    request.from_json_string(json.dumps(params(**overrides)))
    response = client.SendStatusStatistics(request)
    return dict(json.loads(response.to_json_string()))


def sdk_error(client: sms_client.SmsClient, **overrides: Any) -> TencentCloudSDKException:
    with pytest.raises(TencentCloudSDKException) as info:
        send(client, **overrides)
    return info.value


def stats(response: dict[str, Any]) -> dict[str, int]:
    return dict(response["SendStatusStatistics"])


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()


def tc3_headers(
    host: str,
    body: bytes,
    *,
    secret_id: str = SID,
    secret_key: str = SKEY,
    timestamp: int | None = None,
    date: str | None = None,
    service: str = "sms",
    action: str = "SendStatusStatistics",
    version: str = "2021-01-11",
    region: str | None = "ap-guangzhou",
    content_type: str = "application/json",
    token: str | None = None,
) -> dict[str, str]:
    """Sign a POST / the way Tencent's TC3 guide describes, without the SDK."""
    stamp = int(time.time()) if timestamp is None else timestamp
    day = date or datetime.fromtimestamp(stamp, timezone.utc).strftime("%Y-%m-%d")
    canonical = "\n".join(
        [
            "POST",
            "/",
            "",
            f"content-type:{content_type}\nhost:{host}\n",
            "content-type;host",
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{day}/{service}/tc3_request"
    to_sign = "\n".join(
        ["TC3-HMAC-SHA256", str(stamp), scope, hashlib.sha256(canonical.encode()).hexdigest()]
    )
    key = _hmac(_hmac(_hmac(f"TC3{secret_key}".encode(), day), service), "tc3_request")
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers = {
        "Host": host,
        "Content-Type": content_type,
        "X-TC-Action": action,
        "X-TC-Version": version,
        "X-TC-Timestamp": str(stamp),
        "Authorization": (
            f"TC3-HMAC-SHA256 Credential={secret_id}/{scope}, "
            f"SignedHeaders=content-type;host, Signature={signature}"
        ),
    }
    if region is not None:
        headers["X-TC-Region"] = region
    if token is not None:
        headers["X-TC-Token"] = token
    return headers


def raw(
    emu: Emulator,
    body: bytes,
    headers: dict[str, str],
    *,
    method: str = "POST",
    path: str = "/",
) -> tuple[int, http.client.HTTPResponse, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response, response.read()
    finally:
        connection.close()


def raw_error_code(emu: Emulator, body: bytes, headers: dict[str, str], **kw: Any) -> str:
    status, _, payload = raw(emu, body, headers, **kw)
    assert status == 200
    return str(json.loads(payload)["Response"]["Error"]["Code"])


def host_of(emu: Emulator) -> str:
    return f"127.0.0.1:{emu.port}"


def body_of(**overrides: Any) -> bytes:
    return json.dumps(params(**overrides)).encode()


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def log_stream() -> io.StringIO:
    return io.StringIO()


@pytest.fixture
def make_emulator(log_stream: io.StringIO) -> Iterator[Callable[..., Emulator]]:
    started: list[Emulator] = []

    def _make(**kwargs: Any) -> Emulator:
        kwargs.setdefault("log_stream", log_stream)
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


# -- success ------------------------------------------------------------------------------


def test_given_valid_request_when_sdk_calls_then_counts_equal_expected(
    client: sms_client.SmsClient,
) -> None:
    response = send(client)

    assert stats(response) == Emulator.expected(APP, "2021050113", "2021050118")
    assert UUID4.match(response["RequestId"])


def test_given_range_when_sdk_calls_then_total_is_sum_of_single_hour_calls(
    client: sms_client.SmsClient,
) -> None:
    hours = [f"20210501{h:02d}" for h in range(20, 24)] + ["2021050200", "2021050201"]

    total = stats(send(client, BeginTime=hours[0], EndTime=hours[-1]))
    per_hour = [stats(send(client, BeginTime=h, EndTime=h)) for h in hours]

    for key in ("RequestCount", "RequestSuccessCount", "FeeCount"):
        assert total[key] == sum(hour[key] for hour in per_hour)


def test_given_begin_equals_end_when_sdk_calls_then_one_hour_is_counted(
    client: sms_client.SmsClient,
) -> None:
    response = send(client, BeginTime="2021050113", EndTime="2021050113")

    assert stats(response) == Emulator.counts(APP, "2021050113")


def test_given_get_method_when_sdk_calls_then_same_counts_as_post(emu: Emulator) -> None:
    response = send(sdk_client(emu, method="GET"))

    assert stats(response) == Emulator.expected(APP, "2021050113", "2021050118")
    assert emu.requests[-1]["method"] == "GET"


def test_given_unsigned_payload_profile_when_sdk_calls_then_accepted(emu: Emulator) -> None:
    client = sdk_client(emu)
    client.profile.unsignedPayload = True  # body excluded from the signature

    assert stats(send(client)) == Emulator.expected(APP, "2021050113", "2021050118")


def test_given_success_when_raw_post_then_headers_and_body_match_the_seed(emu: Emulator) -> None:
    body = body_of()

    status, response, payload = raw(emu, body, tc3_headers(host_of(emu), body))

    assert status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert int(response.getheader("Content-Length") or -1) == len(payload)
    document = json.loads(payload)
    assert list(document) == ["Response"]
    assert sorted(document["Response"]) == ["RequestId", "SendStatusStatistics"]
    assert sorted(document["Response"]["SendStatusStatistics"]) == [
        "FeeCount",
        "RequestCount",
        "RequestSuccessCount",
    ]


def test_given_one_client_when_calling_repeatedly_then_every_call_succeeds(
    client: sms_client.SmsClient,
) -> None:
    results = [stats(send(client)) for _ in range(3)]

    assert results == [Emulator.expected(APP, "2021050113", "2021050118")] * 3


# -- parameter validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "code"),
    [
        ({"SmsSdkAppId": DROP}, "MissingParameter"),
        ({"BeginTime": DROP}, "MissingParameter"),
        ({"EndTime": DROP}, "MissingParameter"),
        ({"Limit": DROP}, "MissingParameter"),
        ({"Offset": DROP}, "MissingParameter"),
        ({"BeginTime": "20210501"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"BeginTime": "2021-05-01"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"BeginTime": "2021050124"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"BeginTime": "2021022900"}, "InvalidParameterValue.BeginTimeVerifyFail"),
        ({"EndTime": "2021022923"}, "InvalidParameterValue.EndTimeVerifyFail"),
        ({"EndTime": "2021050112"}, "InvalidParameterValue.EndTimeVerifyFail"),
        (
            {"BeginTime": "2021050100", "EndTime": "2021060100"},
            "InvalidParameterValue.EndTimeVerifyFail",
        ),
        ({"Limit": 1}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Limit": "0"}, "InvalidParameterValue.LimitVerifyFail"),
        ({"Offset": 1}, "InvalidParameterValue.OffsetVerifyFail"),
        ({"SmsSdkAppId": "1500006874"}, "InvalidParameterValue.SdkAppIdNotExist"),
        ({"SmsSdkAppId": "140000687"}, "InvalidParameterValue.SdkAppIdNotExist"),
        ({"SmsSdkAppId": "1400000000"}, "UnauthorizedOperation.SmsSdkAppIdVerifyFail"),
    ],
)
def test_given_invalid_parameters_when_sdk_calls_then_seed_error_code(
    client: sms_client.SmsClient, overrides: dict[str, Any], code: str
) -> None:
    error = sdk_error(client, **overrides)

    assert error.code == code
    assert error.requestId
    assert UUID4.match(error.requestId)


def test_given_missing_parameter_when_sdk_calls_then_message_names_it(
    client: sms_client.SmsClient,
) -> None:
    error = sdk_error(client, BeginTime=DROP)

    assert "`BeginTime`" in error.message


def test_given_31_full_days_when_sdk_calls_then_range_is_accepted(
    client: sms_client.SmsClient,
) -> None:
    response = send(client, BeginTime="2021050100", EndTime="2021053123")

    assert stats(response) == Emulator.expected(APP, "2021050100", "2021053123")


def test_given_unknown_parameter_when_called_then_unknown_parameter(
    client: sms_client.SmsClient,
) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json("SendStatusStatistics", params(PhoneNumber="+8613800000000"))

    assert info.value.code == "UnknownParameter"


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe", b""])
def test_given_body_not_a_json_object_when_raw_post_then_json_parse_fail(
    emu: Emulator, body: bytes
) -> None:
    code = raw_error_code(emu, body, tc3_headers(host_of(emu), body))

    assert code == "FailedOperation.JsonParseFail"


def test_given_form_content_type_when_raw_post_then_invalid_parameter(emu: Emulator) -> None:
    body = b"SmsSdkAppId=1400006874"
    headers = tc3_headers(host_of(emu), body, content_type="application/x-www-form-urlencoded")

    assert raw_error_code(emu, body, headers) == "InvalidParameter"


# -- common parameters --------------------------------------------------------------------


def test_given_other_action_when_sdk_calls_then_invalid_action(
    client: sms_client.SmsClient,
) -> None:
    with pytest.raises(TencentCloudSDKException) as info:
        client.call_json("SendSms", {})

    assert info.value.code == "InvalidAction"


def test_given_other_version_when_raw_post_then_no_such_version(emu: Emulator) -> None:
    body = body_of()

    code = raw_error_code(emu, body, tc3_headers(host_of(emu), body, version="2019-07-11"))

    assert code == "NoSuchVersion"


def test_given_malformed_region_when_sdk_calls_then_unsupported_region(emu: Emulator) -> None:
    error = sdk_error(sdk_client(emu, region="Guangzhou"))

    assert error.code == "UnsupportedRegion"


def test_given_no_region_when_raw_post_then_missing_parameter(emu: Emulator) -> None:
    body = body_of()

    code = raw_error_code(emu, body, tc3_headers(host_of(emu), body, region=None))

    assert code == "MissingParameter"


def test_given_put_method_when_raw_request_then_unsupported_protocol(emu: Emulator) -> None:
    body = body_of()

    code = raw_error_code(emu, body, tc3_headers(host_of(emu), body), method="PUT")

    assert code == "UnsupportedProtocol"


def test_given_other_path_when_raw_post_then_404(emu: Emulator) -> None:
    body = body_of()

    status, _, _ = raw(emu, body, tc3_headers(host_of(emu), body), path="/v2")

    assert status == 404


# -- authentication -----------------------------------------------------------------------


def test_given_wrong_secret_key_when_sdk_calls_then_signature_failure(emu: Emulator) -> None:
    error = sdk_error(sdk_client(emu, secret_key="not-the-key"))

    assert error.code == "AuthFailure.SignatureFailure"


def test_given_unknown_secret_id_when_sdk_calls_then_secret_id_not_found(emu: Emulator) -> None:
    error = sdk_error(sdk_client(emu, secret_id="AKIDUNKNOWN"))

    assert error.code == "AuthFailure.SecretIdNotFound"


@pytest.mark.parametrize("offset_s", [-301 - 60, 301 + 60])
def test_given_clock_skew_beyond_limit_when_sdk_calls_then_signature_expire(
    client: sms_client.SmsClient, mocker: Any, offset_s: int
) -> None:
    clock = mocker.patch("tencentcloud.common.abstract_client.time")
    clock.time.return_value = time.time() + offset_s

    error = sdk_error(client)

    assert error.code == "AuthFailure.SignatureExpire"


def test_given_small_clock_skew_when_raw_post_then_accepted(emu: Emulator) -> None:
    body = body_of()

    status, _, payload = raw(
        emu, body, tc3_headers(host_of(emu), body, timestamp=int(time.time()) - 200)
    )

    assert status == 200
    assert "SendStatusStatistics" in json.loads(payload)["Response"]


def test_given_body_changed_after_signing_when_raw_post_then_signature_failure(
    emu: Emulator,
) -> None:
    signed = body_of()
    sent = body_of(SmsSdkAppId="1400009999")

    code = raw_error_code(emu, sent, tc3_headers(host_of(emu), signed))

    assert code == "AuthFailure.SignatureFailure"


def test_given_host_changed_after_signing_when_raw_post_then_signature_failure(
    emu: Emulator,
) -> None:
    body = body_of()
    headers = tc3_headers("sms.tencentcloudapi.com", body)
    headers["Host"] = host_of(emu)  # e.g. a proxy rewrote Host after the client signed

    assert raw_error_code(emu, body, headers) == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    ("date", "service"),
    [("2000-01-01", "sms"), (None, "cvm")],
    ids=["scope-date-not-utc-date-of-timestamp", "scope-service-not-sms"],
)
def test_given_wrong_credential_scope_when_raw_post_then_signature_failure(
    emu: Emulator, date: str | None, service: str
) -> None:
    body = body_of()

    code = raw_error_code(emu, body, tc3_headers(host_of(emu), body, date=date, service=service))

    assert code == "AuthFailure.SignatureFailure"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer abc",
        "TC3-HMAC-SHA256 Credential=AKIDEMULATOR/2021-05-01/sms/tc3_request",
        "TC3-HMAC-SHA256 Credential=AKIDEMULATOR/2021-05-01/sms, SignedHeaders=content-type;host, "
        "Signature=" + "0" * 64,
        "TC3-HMAC-SHA256 Credential=AKIDEMULATOR/2021-05-01/sms/tc3_request, "
        "SignedHeaders=content-type, Signature=" + "0" * 64,
        "TC3-HMAC-SHA256 Credential=AKIDEMULATOR/2021-05-01/sms/tc3_request, "
        "SignedHeaders=content-type;host, Signature=xyz",
    ],
    ids=["missing", "not-tc3", "no-signature", "short-scope", "host-unsigned", "non-hex"],
)
def test_given_garbled_authorization_when_raw_post_then_invalid_authorization(
    emu: Emulator, authorization: str | None
) -> None:
    body = body_of()
    headers = tc3_headers(host_of(emu), body)
    if authorization is None:
        del headers["Authorization"]
    else:
        headers["Authorization"] = authorization

    assert raw_error_code(emu, body, headers) == "AuthFailure.InvalidAuthorization"


def test_given_session_token_when_sdk_calls_then_log_says_token_without_its_value(
    emu: Emulator, log_stream: io.StringIO
) -> None:
    send(sdk_client(emu, token="SESSION-TOKEN-VALUE"))
    send(sdk_client(emu))

    assert [entry["token"] for entry in emu.requests] == [True, False]
    text = log_stream.getvalue()
    for secret in ("SESSION-TOKEN-VALUE", SKEY, "Signature"):
        assert secret not in text


def test_given_requests_when_served_then_each_is_one_json_log_line(
    client: sms_client.SmsClient, emu: Emulator, log_stream: io.StringIO
) -> None:
    send(client)
    sdk_error(client, Limit=1)

    lines = [json.loads(line) for line in log_stream.getvalue().splitlines()]
    assert [line["code"] for line in lines] == ["OK", "InvalidParameterValue.LimitVerifyFail"]
    assert set(lines[0]) == {
        "ts",
        "method",
        "path",
        "action",
        "region",
        "secret_id",
        "token",
        "app_id",
        "begin",
        "end",
        "status",
        "code",
        "request_id",
        "latency_ms",
    }
    assert lines[0]["secret_id"] == SID
    assert lines[0]["app_id"] == APP
    assert [entry["request_id"] for entry in emu.requests] == [x["request_id"] for x in lines]
    assert all(isinstance(entry["t"], float) for entry in emu.requests)


# -- rate limit ---------------------------------------------------------------------------


def test_given_rate_limit_when_four_threads_burst_then_excess_is_rejected_per_second(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(rate_limit=5)
    barrier = threading.Barrier(4)
    outcomes: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        client = sdk_client(emu)
        barrier.wait()
        for _ in range(5):
            try:
                send(client)
                outcome = "OK"
            except TencentCloudSDKException as error:
                outcome = str(error.code)
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    assert len(outcomes) == 20
    assert set(outcomes) <= {"OK", "RequestLimitExceeded"}
    assert emu.rejected_count == outcomes.count("RequestLimitExceeded") > 0
    accepted = sorted(entry["t"] for entry in emu.requests if entry["code"] == "OK")
    assert len(accepted) == outcomes.count("OK") >= 1
    for earlier, later in zip(accepted, accepted[5:], strict=False):
        assert later - earlier >= 1.0  # never six admissions inside one second


def test_given_rate_limit_when_other_region_or_secret_id_then_separate_budgets(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator(rate_limit=0.01, credentials={SID: SKEY, "AKIDOTHER": "other-key"})
    first = sdk_client(emu)
    send(first)

    assert sdk_error(first).code == "RequestLimitExceeded"
    send(sdk_client(emu, region="ap-beijing"))
    send(sdk_client(emu, secret_id="AKIDOTHER", secret_key="other-key"))
    assert emu.rejected_count == 1


# -- faults -------------------------------------------------------------------------------


def test_given_global_error_fault_when_sdk_calls_then_that_code(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(error_code="InternalError.Timeout"))

    error = sdk_error(client)

    assert error.code == "InternalError.Timeout"
    assert error.requestId


def test_given_app_fault_when_other_app_calls_then_it_is_unaffected(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(error_code="RequestLimitExceeded"), app_id="1400000001")

    assert sdk_error(client, SmsSdkAppId="1400000001").code == "RequestLimitExceeded"
    assert stats(send(client)) == Emulator.expected(APP, "2021050113", "2021050118")
    assert emu.rejected_count == 0  # injected, not refused by the limiter


def test_given_http_502_fault_when_sdk_calls_then_server_network_error(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(http_status=502))

    error = sdk_error(client)

    assert error.code == "ServerNetworkError"
    assert isinstance(error.message, bytes)  # the SDK passes the raw body through
    assert b"502" in error.message


def test_given_html_fault_when_sdk_calls_then_json_decode_error(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(html=True))

    error = sdk_error(client)

    # The SDK skips its error check for text/html and then fails to parse the body.
    assert error.code == "JSONDecodeError"
    assert error.requestId is None


def test_given_no_response_key_fault_when_sdk_calls_then_key_error(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(no_response_key=True))

    error = sdk_error(client)

    assert error.code == "KeyError"
    assert "Response" in error.message


def test_given_fault_for_one_request_when_calling_twice_then_second_is_normal(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(error_code="InternalError.OtherError", times=1))

    assert sdk_error(client).code == "InternalError.OtherError"
    assert stats(send(client)) == Emulator.expected(APP, "2021050113", "2021050118")


def test_given_cleared_faults_when_sdk_calls_then_normal(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(http_status=503))
    emu.clear_faults()

    assert stats(send(client)) == Emulator.expected(APP, "2021050113", "2021050118")


def test_given_hang_fault_when_sdk_times_out_then_client_network_error_and_stop_is_prompt(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    emu.set_fault(Fault(hang=True))

    error = sdk_error(sdk_client(emu, timeout=1))
    started = time.monotonic()
    emu.stop()

    assert error.code == "ClientNetworkError"
    assert time.monotonic() - started < 1.0
    assert emu.requests[-1]["code"] == "Fault.Hang"
    assert emu.requests[-1]["status"] is None


def test_given_latency_fault_when_sdk_calls_then_answer_is_delayed(
    emu: Emulator, client: sms_client.SmsClient
) -> None:
    emu.set_fault(Fault(latency_s=0.2))
    started = time.monotonic()

    response = send(client)

    assert time.monotonic() - started >= 0.2
    assert stats(response) == Emulator.expected(APP, "2021050113", "2021050118")
    assert emu.requests[-1]["latency_ms"] >= 200


def test_given_unparseable_body_and_global_fault_when_raw_post_then_fault_wins(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(error_code="InternalError.UnknownError"))
    body = b"{"

    assert raw_error_code(emu, body, tc3_headers(host_of(emu), body)) == (
        "InternalError.UnknownError"
    )


@pytest.mark.parametrize("fault", [Fault(times=-1), Fault(latency_s=-1.0), Fault(http_status=1000)])
def test_given_nonsense_fault_when_set_then_value_error(emu: Emulator, fault: Fault) -> None:
    with pytest.raises(ValueError, match="Fault"):
        emu.set_fault(fault)


# -- lifecycle ----------------------------------------------------------------------------


def test_given_idle_keep_alive_connection_when_stop_then_returns_promptly_and_port_closes(
    make_emulator: Callable[..., Emulator],
) -> None:
    emu = make_emulator()
    port = emu.port
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    body = body_of()
    connection.request("POST", "/", body=body, headers=tc3_headers(host_of(emu), body))
    connection.getresponse().read()  # the connection now idles in keep-alive
    started = time.monotonic()

    emu.stop()

    assert time.monotonic() - started < 1.0
    with pytest.raises(ConnectionRefusedError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=1).request("GET", "/")
    connection.close()


def test_given_context_manager_when_used_then_serves_inside_and_stops_after() -> None:
    emulator = Emulator(log_stream=None)
    with pytest.raises(RuntimeError):
        _ = emulator.port

    with emulator as emu:
        assert emu.endpoint == f"http://127.0.0.1:{emu.port}"
        assert stats(send(sdk_client(emu))) == Emulator.expected(APP, "2021050113", "2021050118")

    with pytest.raises(RuntimeError):
        _ = emulator.port


def test_given_emulator_package_when_imported_then_no_pydantic_or_sdk_is_loaded() -> None:
    probe = (
        "import sys, sms_stats; before = set(sys.modules); import sms_stats.emulator; "
        "new = set(sys.modules) - before; "
        "import json; top = ('pydantic', 'tencentcloud'); "
        "print(json.dumps(sorted(m for m in new if m.split('.')[0] in top)))"
    )
    assert run_fresh(probe, timeout=30) == []


# -- deterministic counts -----------------------------------------------------------------


def test_given_many_hours_when_counting_then_invariants_hold_and_some_hours_are_silent() -> None:
    start = datetime(2021, 5, 1)
    hours = [(start + timedelta(hours=i)).strftime("%Y%m%d%H") for i in range(24 * 14)]

    figures = [Emulator.counts(APP, hour) for hour in hours]

    assert figures == [Emulator.counts(APP, hour) for hour in hours]  # deterministic
    for one in figures:
        assert 0 <= one["RequestSuccessCount"] <= one["RequestCount"] <= 2000
        assert one["FeeCount"] >= one["RequestSuccessCount"]
    silent = sum(1 for one in figures if one["RequestCount"] == 0)
    assert 0 < silent < len(figures) // 4
    assert Emulator.counts(APP, hours[0]) != Emulator.counts("1400006875", hours[0])


@pytest.mark.parametrize(
    ("begin", "end", "reason"),
    [
        ("2021050113", "2021050112", "before begin"),
        ("2021050124", "2021050124", "hour must be"),
        ("20210501", "2021050101", "10 digits"),
    ],
)
def test_given_invalid_range_when_expected_then_value_error(
    begin: str, end: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=reason):
        Emulator.expected(APP, begin, end)


@settings(max_examples=60, deadline=None)
@given(
    app_id=st.from_regex(r"\A1400[0-9]{6}\Z"),
    begin=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 29)),
    span=st.integers(min_value=0, max_value=47),
)
def test_given_any_app_and_range_within_48h_when_expected_then_equals_sum_of_hours(
    app_id: str, begin: datetime, span: int
) -> None:
    first = begin.replace(minute=0, second=0, microsecond=0)
    hours = [(first + timedelta(hours=i)).strftime("%Y%m%d%H") for i in range(span + 1)]

    total = Emulator.expected(app_id, hours[0], hours[-1])

    for key in ("RequestCount", "RequestSuccessCount", "FeeCount"):
        assert total[key] == sum(Emulator.counts(app_id, hour)[key] for hour in hours)


# -- command line -------------------------------------------------------------------------


def test_given_cli_with_port_file_when_called_and_terminated_then_serves_and_exits_zero(
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
            "--secret-id",
            "AKIDCLI",
            "--secret-key",
            "cli-key",
            "--fault-app",
            "1400000001:InternalError.Timeout",
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
        port = int(port_file.read_text())
        client = sdk_client(port, secret_id="AKIDCLI", secret_key="cli-key")

        response = send(client)
        faulted = sdk_error(client, SmsSdkAppId="1400000001")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)

    assert process.returncode == 0, stderr
    assert stats(response) == Emulator.expected(APP, "2021050113", "2021050118")
    assert faulted.code == "InternalError.Timeout"
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[0] == {
        "event": "listening",
        "endpoint": f"http://127.0.0.1:{port}",
        "port": port,
        "secret_ids": ["AKIDCLI"],
    }
    assert events[-1] == {"event": "stopped"}
    logged = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert [entry["code"] for entry in logged] == ["OK", "InternalError.Timeout"]
    assert "TENCENTCLOUD_SECRETID=AKIDCLI TENCENTCLOUD_SECRETKEY=cli-key" in stderr
    assert f"SMS_STATS_ENDPOINT=http://127.0.0.1:{port}" in stderr
    assert not port_file.exists()


def test_given_busy_port_when_cli_started_then_one_line_error_and_exit_1() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "sms_stats.emulator", "--port", str(port), "--quiet"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert "--port 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_given_help_when_asked_then_usage_names_the_cli_and_the_default_credentials() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "sms_stats.cli", "emulator", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.startswith("usage: sms-stats emulator")
    assert "AKIDEMULATOR" in done.stdout
    assert "emulator-secret-key" in done.stdout


def test_given_real_key_in_environment_when_cli_started_then_key_never_printed(
    tmp_path: Path,
) -> None:
    port_file = tmp_path / "port"
    env = {**os.environ, "TENCENTCLOUD_SECRETID": "AKIDreal", "TENCENTCLOUD_SECRETKEY": "REALKEY99"}
    process = subprocess.Popen(
        [sys.executable, "-m", "sms_stats.emulator", "--port", "0", "--port-file", str(port_file)],
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
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=10)
    assert "AKIDreal" in stderr
    assert "REALKEY99" not in stdout + stderr


@pytest.mark.parametrize(
    ("spec", "app_id", "fault"),
    [
        ("1400000001:InternalError", "1400000001", Fault(error_code="InternalError")),
        ("*:502", None, Fault(http_status=502)),
        ("1400000002:hang", "1400000002", Fault(hang=True)),
        ("1400000003:html", "1400000003", Fault(html=True)),
        ("1400000004:no-response", "1400000004", Fault(no_response_key=True)),
        ("*:raw=\udcff{}", None, Fault(raw_body=b"\xff{}")),  # argv's surrogateescape
        ("*:field=RequestCount=1e400", None, Fault(fields={"RequestCount": "1e400"})),
        ("*:field=RequestId={}", None, Fault(fields={"RequestId": "{}"})),
        ("*:drip=0.5", None, Fault(drip_s=0.5)),
        ("*:huge=2097152", None, Fault(huge_body=2097152)),
    ],
)
def test_given_fault_spec_when_parsed_then_fault(
    spec: str, app_id: str | None, fault: Fault
) -> None:
    assert _parse_fault(spec) == (app_id, fault)


@pytest.mark.parametrize(
    "spec",
    [
        "*:field=RequestCount",
        "*:field==1",
        "*:field=RequestCount=nope",
        "*:drip=0",
        "*:drip=x",
        "*:huge=-1",
        "*:weird=1",
    ],
)
def test_given_bad_answer_fault_spec_when_parsed_then_usage_error_names_it(spec: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match=re.escape(repr(spec))):
        _parse_fault(spec)


def test_given_field_specs_for_one_app_when_merged_then_one_answer_with_both() -> None:
    from sms_stats.emulator.cli import _merged

    faults = [_parse_fault("*:field=RequestCount=1"), _parse_fault("*:field=RequestSuccessCount=2")]

    assert _merged(faults) == {
        None: Fault(fields={"RequestCount": "1", "RequestSuccessCount": "2"})
    }


def test_given_field_that_is_not_json_when_set_then_refused(emu: Emulator) -> None:
    with pytest.raises(ValueError, match="RequestCount"):
        emu.set_fault(Fault(fields={"RequestCount": "1e400 nope"}))


def test_given_raw_body_fault_when_called_then_bytes_as_is_with_200_json(emu: Emulator) -> None:
    emu.set_fault(Fault(raw_body=b'\xff{"Response":'), APP)

    status, response, payload = raw(emu, body_of(), tc3_headers(host_of(emu), body_of()))

    assert status == 200
    assert response.getheader("Content-Type") == "application/json"
    assert payload == b'\xff{"Response":'


def test_given_fields_fault_when_called_then_those_json_texts_in_the_answer(emu: Emulator) -> None:
    emu.set_fault(Fault(fields={"RequestCount": "1e400", "RequestId": "{}", "New": "true"}), APP)

    _, _, payload = raw(emu, body_of(), tc3_headers(host_of(emu), body_of()))

    text = payload.decode()
    assert '"RequestCount":1e400' in text
    assert '"RequestId":{}' in text
    answer = json.loads(text)["Response"]
    expected = Emulator.expected(APP, "2021050113", "2021050118")
    assert answer["SendStatusStatistics"]["FeeCount"] == expected["FeeCount"]
    assert answer["SendStatusStatistics"]["New"] is True


def test_given_huge_body_fault_when_called_then_json_answer_of_exactly_that_size(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(huge_body=300_000), APP)

    status, response, payload = raw(emu, body_of(), tc3_headers(host_of(emu), body_of()))

    assert status == 200
    assert int(response.getheader("Content-Length")) == len(payload) == 300_000
    answer = json.loads(payload)["Response"]
    assert set(answer["Padding"]) == {"x"}
    assert answer["SendStatusStatistics"] == Emulator.expected(APP, "2021050113", "2021050118")


def test_given_drip_fault_when_called_then_the_answer_comes_a_byte_at_a_time(
    emu: Emulator,
) -> None:
    emu.set_fault(Fault(drip_s=0.002), APP)
    connection = http.client.HTTPConnection("127.0.0.1", emu.port, timeout=5)
    try:
        connection.request(
            "POST", "/", body=body_of(), headers=tc3_headers(host_of(emu), body_of())
        )
        response = connection.getresponse()
        pieces = []
        while piece := response.read1(4096):
            pieces.append(piece)
    finally:
        connection.close()

    assert len(pieces) > 50  # one byte per write: the reads see them one or a few at a time
    answer = json.loads(b"".join(pieces))["Response"]
    assert answer["SendStatusStatistics"] == Emulator.expected(APP, "2021050113", "2021050118")
