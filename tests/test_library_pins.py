"""The private internals of libraries we lean on, pinned: an upgrade that changes one fails here
rather than in a deployment. Each reach is kept for what it buys, said where it is made:

- `os.environ._data` (handler.current_settings): the settings' fingerprint read from the raw
  mapping, 1.6 us instead of 49 us for 40 names on each warm call.
- the SDK's `request.conn._session` and `request._handle_host` (collect.client.sdk_client): our
  session is what bounds every API call (the whole-call deadline, a capped body, no per-call
  merging: ~0.2 ms of a 2.5 ms warm call); if the SDK stopped sending through it, nothing of
  that would hold, silently. Its `_call` and `_check_status` (collect.client.StatsClient): the
  raw body, validated by `answers.read`, where `call_json` let `int(Infinity)` end a run.
- requests' `Response._content` / `_content_consumed` (core.net.read_bounded): a body read by
  our capped loop is handed to the SDK as if requests had read it (`.content`, `.json()`).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
import requests
from pytest_mock import MockerFixture

from sms_stats.collect.client import sdk_client
from sms_stats.core import net
from sms_stats.core.settings import load_settings


@pytest.mark.skipif(os.name != "posix", reason="the raw mapping is POSIX's bytes")
def test_given_os_environ_when_changed_then_its_raw_mapping_follows(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = os.environ._data  # type: ignore[attr-defined]
    monkeypatch.setenv("SMS_STATS_PIN_PROBE", "first")
    assert raw.get(b"SMS_STATS_PIN_PROBE") == b"first"
    monkeypatch.setenv("SMS_STATS_PIN_PROBE", "second")
    assert raw.get(b"SMS_STATS_PIN_PROBE") == b"second"
    monkeypatch.delenv("SMS_STATS_PIN_PROBE")
    assert raw.get(b"SMS_STATS_PIN_PROBE") is None


def test_given_a_changed_environment_when_settings_are_read_then_the_cache_sees_it(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from sms_stats.handler import current_settings

    monkeypatch.setenv("SMS_STATS_TIMEZONE", "Asia/Tokyo")
    assert current_settings().timezone == "Asia/Tokyo"
    monkeypatch.setenv("SMS_STATS_TIMEZONE", "UTC")
    assert current_settings().timezone == "UTC"


def test_given_the_sdk_client_when_it_calls_then_it_sends_through_our_session(
    scf_env: dict[str, str], mocker: MockerFixture
) -> None:
    """`_call` signs and sends through `conn._session` and hands back the raw response;
    `_check_status` passes a 200 (collect.client reads the body itself)."""
    client = sdk_client(load_settings())
    assert isinstance(client.request.conn._session, net.ApiSession)
    assert client.request._handle_host(client.request.host).startswith("http")
    sent = mocker.spy(net.ApiSession, "request")
    params = {"SmsSdkAppId": "1400006874", "BeginTime": "2021050113", "EndTime": "2021050113"}
    response = client._call("SendStatusStatistics", {**params, "Limit": 0, "Offset": 0})
    client._check_status(response)
    assert "SendStatusStatistics" in json.loads(response.content)["Response"]
    assert sent.call_count == 1


def test_given_a_non_200_when_the_sdk_checks_it_then_it_raises_its_own_exception(
    scf_env: dict[str, str],
) -> None:
    from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
        TencentCloudSDKException,
    )

    response = requests.Response()
    response.status_code = 502
    response._content = b"bad gateway"
    with pytest.raises(TencentCloudSDKException):
        sdk_client(load_settings())._check_status(response)


class _Unreadable:
    """A raw stream that fails if anything reads it again."""

    def read(self, *args: Any, **kwargs: Any) -> bytes:
        raise AssertionError("read twice")

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read twice")


def test_given_a_body_set_as_consumed_when_requests_reads_it_then_it_is_ours() -> None:
    response = requests.Response()
    response.raw = _Unreadable()
    response.status_code = 200
    response.encoding = "utf-8"
    response._content = b'{"Response": {"RequestId": "x"}}'
    response._content_consumed = True  # type: ignore[attr-defined]
    assert response.content == b'{"Response": {"RequestId": "x"}}'
    assert response.json() == {"Response": {"RequestId": "x"}}
    assert response.text.startswith('{"Response"')
