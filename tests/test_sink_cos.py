"""The COS sink: the real COS SDK on the wire, against the COS stand-in that verifies signatures.

Retries run with an injected sleep and rng (no waiting); only the hang test spends real time,
bounded by a small SMS_STATS_TIMEOUT. A small signer written here from the COS docs, apart
from both the SDK and the stand-in, checks the stand-in's verification independently.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import ConfigError, DeliveryError
from sms_stats.core.records import Counts, Record
from sms_stats.core.settings import Settings, load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import build_sinks
from sms_stats.deliver.transport import Transport
from sms_stats.emulator import Emulator
from sms_stats.run import backfill
from sms_stats.store.base import SinkError, Store
from sms_stats.store.cos import CosSink, build, parse_url
from sms_stats.store.file import encode

from .conftest import APP_A, APP_B, SECRET_ID, SECRET_KEY, SESSION_TOKEN, load_event, seed_record
from .probe import run_fresh
from .standins.cos import CosFault, CosStandIn, closed_port
from .standins.slow import FRAMINGS, SlowServer

BUCKET = "stats-1250000000"
HOST = f"{BUCKET}.cos.ap-guangzhou.myqcloud.com"
SECRETS = (SECRET_KEY, SESSION_TOKEN)


@pytest.fixture
def cos() -> Iterator[CosStandIn]:
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as s:
        yield s


def make_settings(**changes: Any) -> Settings:
    values: dict[str, Any] = {
        "secret_id": SECRET_ID,
        "secret_key": SECRET_KEY,
        "session_token": SESSION_TOKEN,
        "region": "ap-guangzhou",
        "timeout": 2,
        "max_attempts": 3,
    }
    values.update(changes)
    return Settings.model_validate({k: v for k, v in values.items() if v is not None})


def make_record(app_id: str = APP_A, hour: str = "2021050112") -> Record:
    window = Window.from_api(hour, hour, zone("Asia/Shanghai"))
    counts = Counts(1880, 1870, 1900, "req-0001")
    return Record(
        app_id, window, "Asia/Shanghai", counts, datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)
    )


class Pauses:
    """An injected sleep: records the delays asked for, waits for none."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


@pytest.fixture
def make_sink(cos: CosStandIn, pauses: Pauses) -> Callable[..., CosSink]:
    def make(
        settings: Settings | None = None,
        path: str = "/stats",
        endpoint: str | None = None,
        clock: Callable[[], float] | None = None,
    ) -> CosSink:
        url = f"cos://{BUCKET}{path}?region=ap-guangzhou&endpoint={endpoint or cos.endpoint}"
        return build(
            url,
            settings or make_settings(),
            Transport(),
            sleep=pauses,
            rng=lambda: 1.0,
            clock=clock,
        )

    return make


def assert_no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class TestUrl:
    @pytest.mark.parametrize(
        ("url", "bucket", "prefix", "region", "endpoint"),
        [
            (f"cos://{BUCKET}/stats?region=ap-guangzhou", BUCKET, "stats", "ap-guangzhou", None),
            (f"cos://{BUCKET}", BUCKET, "", "ap-shanghai", None),
            (f"cos://{BUCKET}/", BUCKET, "", "ap-shanghai", None),
            (
                f"cos://{BUCKET}//sms/stats/?region=ap-beijing",
                BUCKET,
                "sms/stats",
                "ap-beijing",
                None,
            ),
            (
                "cos://my-sms-stats-1250000000/s?region=ap-guangzhou&endpoint=http://127.0.0.1:9000",
                "my-sms-stats-1250000000",
                "s",
                "ap-guangzhou",
                ("http", "127.0.0.1", 9000),
            ),
            (
                f"cos://{BUCKET}/s?endpoint=https://localhost",
                BUCKET,
                "s",
                "ap-shanghai",
                ("https", "localhost", None),
            ),
        ],
    )
    def test_given_good_url_when_parsed_then_bucket_prefix_region_and_endpoint(
        self,
        url: str,
        bucket: str,
        prefix: str,
        region: str,
        endpoint: tuple[str, str, int | None] | None,
    ) -> None:
        target = parse_url(url, default_region="ap-shanghai")
        assert (target.bucket, target.prefix, target.region) == (bucket, prefix, region)
        got = target.endpoint
        assert (None if got is None else (got.scheme, got.host, got.port)) == endpoint
        assert target.name == f"cos:{bucket}/{prefix}"
        assert target.host == f"{bucket}.cos.{region}.myqcloud.com"

    def test_given_prefix_or_none_when_keyed_then_prefix_joins_the_file_sink_key(self) -> None:
        record = make_record()
        with_prefix = parse_url(f"cos://{BUCKET}/stats", "ap-guangzhou")
        without = parse_url(f"cos://{BUCKET}", "ap-guangzhou")
        assert with_prefix.key(record.key) == f"stats/{record.key}"
        assert without.key(record.key) == (f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json")

    @pytest.mark.parametrize(
        ("url", "rule"),
        [
            ("cos://Stats-1250000000/x", "is not <name>-<appid>"),
            ("cos://stats/x", "is not <name>-<appid>"),
            ("cos://-stats-1250000000/x", "is not <name>-<appid>"),
            ("cos://stats_1-1250000000/x", "is not <name>-<appid>"),
            (f"cos://{'a' * 60}-1250000000/x", "at most 63"),
            ("cos:///x", "names no bucket"),
            (f"cos://id:key@{BUCKET}/x", "must not carry user:password"),
            (f"cos://{BUCKET}/x?region=Guangzhou", "must be a region like ap-guangzhou"),
            (f"cos://{BUCKET}/x?region=", "is empty"),
            (f"cos://{BUCKET}/x?regoin=ap-guangzhou", "unknown query parameter 'regoin'"),
            (f"cos://{BUCKET}/x?region=ap-beijing&region=ap-guangzhou", "given twice"),
            (f"cos://{BUCKET}/x?endpoint=ftp://127.0.0.1:21", "endpoint must be http(s)"),
            (f"cos://{BUCKET}/x?endpoint=127.0.0.1:9000", "endpoint must be http(s)"),
            (f"cos://{BUCKET}/x?endpoint=http://127.0.0.1:99999", "invalid port"),
            (f"cos://{BUCKET}/x?endpoint=http://127.0.0.1:9000/api", "no path"),
            (f"cos://{BUCKET}/x?endpoint=http://[::1]:9000", "IPv4 address or a host name"),
            (f"cos://{BUCKET}/a/../b", "'..' segments"),
            (f"cos://{BUCKET}/a//b", "empty"),
            (f"cos://{BUCKET}/x#part", "no #fragment"),
        ],
    )
    def test_given_bad_url_when_parsed_then_value_error_names_the_rule(
        self, url: str, rule: str
    ) -> None:
        with pytest.raises(ValueError, match=re.escape(rule)):
            parse_url(url, "ap-guangzhou")

    def test_given_bad_cos_url_in_settings_when_sinks_built_then_config_error_names_the_item(
        self, tmp_path: Path
    ) -> None:
        settings = make_settings(sinks=f"file://{tmp_path},cos://{BUCKET}/x?regoin=ap-beijing")
        with pytest.raises(ConfigError) as caught:
            build_sinks(settings)
        message = caught.value.message
        assert message.startswith("SMS_STATS_SINKS item 2: unknown query parameter 'regoin'")
        assert_no_secret(message)

    def test_given_no_credentials_when_sink_built_then_config_error_at_start(self) -> None:
        settings = make_settings(secret_id=None, secret_key=None, sinks=f"cos://{BUCKET}/x")
        with pytest.raises(ConfigError, match="TENCENTCLOUD_SECRETID and TENCENTCLOUD_SECRETKEY"):
            build_sinks(settings)

    def test_given_cos_sink_when_built_then_name_holds_no_secret_and_region_defaults(self) -> None:
        (sink,) = build_sinks(make_settings(region="ap-chengdu", sinks=f"cos://{BUCKET}/stats"))
        assert isinstance(sink, CosSink)
        assert sink.name == f"cos:{BUCKET}/stats"
        assert sink.target.region == "ap-chengdu"
        assert_no_secret(repr(vars(sink.target)))


class TestWithoutSdk:
    def test_given_cos_sdk_not_installed_when_sinks_built_then_config_error_says_what_to_install(
        self, mocker: MockerFixture
    ) -> None:
        """Outside SCF, `pip install sms-stats` without the [cos] extra: say so, at start."""
        mocker.patch.dict(sys.modules, {"qcloud_cos": None, "qcloud_cos.cos_exception": None})
        settings = make_settings(sinks=f"cos://{BUCKET}/stats")
        with pytest.raises(ConfigError, match=r"SMS_STATS_SINKS item 1: .*sms-stats\[cos\]"):
            build_sinks(settings)


class TestDelivery:
    def test_given_record_when_delivered_then_file_sink_bytes_at_its_key_signed_with_token(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        record = make_record()
        make_sink().deliver([record])

        key = f"stats/app={APP_A}/dt=2021-05-01/2021050112-2021050112.json"
        stored = cos.objects[(BUCKET, key)]
        assert stored.body == encode(record)
        assert stored.content_type == "application/json"
        assert json.loads(stored.body)["request_count"] == 1880
        (request,) = cos.requests
        assert (request.method, request.status, request.host) == ("PUT", 200, HOST)
        assert request.token_sent is True
        assert {"host", "x-cos-security-token", "content-md5"} <= set(request.signed_headers)
        assert request.sdk_retry is False

    def test_given_no_prefix_when_delivered_then_key_starts_at_app(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        make_sink(path="").deliver([make_record()])
        assert list(cos.objects) == [
            (BUCKET, f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json")
        ]

    def test_given_rerun_when_delivered_twice_then_one_object_overwritten(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        sink = make_sink()
        sink.deliver([make_record()])
        later = Record(
            APP_A,
            make_record().window,
            "Asia/Shanghai",
            Counts(1881, 1871, 1901, "req-0002"),
            datetime(2021, 5, 1, 6, tzinfo=timezone.utc),
        )
        sink.deliver([later])
        assert len(cos.objects) == 1
        (stored,) = cos.objects.values()
        assert stored.body == encode(later)
        assert [r.method for r in cos.requests] == ["PUT", "PUT"]

    def test_given_wrong_secret_key_when_delivered_then_signature_mismatch_after_one_attempt(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        sink = make_sink(make_settings(secret_key="not-the-secret-key"))
        with pytest.raises(SinkError) as caught:
            sink.deliver([make_record()])
        message = str(caught.value)
        (request,) = cos.requests
        assert message.startswith(f"cos:{BUCKET}/stats: SignatureDoesNotMatch")
        assert f"(HTTP 403, request id {request.request_id})" in message
        assert message.endswith("after 1 attempt")
        assert "not-the-secret-key" not in message
        assert cos.objects == {}

    def test_given_unknown_secret_id_when_delivered_then_invalid_access_key_id(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        with pytest.raises(SinkError, match=r"InvalidAccessKeyId: .*after 1 attempt$"):
            make_sink(make_settings(secret_id="AKIDsomeoneelse")).deliver([make_record()])

    def test_given_role_credentials_without_token_when_delivered_then_refused(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        with pytest.raises(SinkError, match="InvalidAccessKeyId: The security token is missing"):
            make_sink(make_settings(session_token=None)).deliver([make_record()])
        assert cos.requests[0].token_sent is False

    def test_given_500_twice_when_delivered_then_third_attempt_stores_it(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], pauses: Pauses
    ) -> None:
        cos.set_fault(CosFault(500, "InternalError", times=2))
        make_sink().deliver([make_record()])
        assert [r.status for r in cos.requests] == [500, 500, 200]
        assert not any(r.sdk_retry for r in cos.requests)  # the SDK's own retry is off
        assert pauses.delays == [0.5, 1.0]  # full jitter at rng=1: base 0.5 s, doubling
        assert len(cos.objects) == 1

    @pytest.mark.parametrize(("status", "code"), [(503, "SlowDown"), (429, "TooManyRequests")])
    def test_given_throttling_when_delivered_then_retried(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], status: int, code: str
    ) -> None:
        cos.set_fault(CosFault(status, code, times=1))
        make_sink().deliver([make_record()])
        assert [r.status for r in cos.requests] == [status, 200]

    def test_given_request_timeout_code_as_400_when_delivered_then_retried(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        cos.set_fault(CosFault(400, "RequestTimeout", times=1))
        make_sink().deliver([make_record()])
        assert [r.status for r in cos.requests] == [400, 200]

    def test_given_500_always_when_delivered_then_error_after_max_attempts(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], pauses: Pauses
    ) -> None:
        cos.set_fault(CosFault(500, "InternalError"))
        with pytest.raises(SinkError, match=r"InternalError: .*\(HTTP 500, .*after 3 attempts$"):
            make_sink().deliver([make_record()])
        assert len(cos.requests) == 3
        assert len(pauses.delays) == 2  # no sleep after the last attempt

    @pytest.mark.parametrize(
        ("status", "code"),
        [(403, "AccessDenied"), (400, "ExpiredToken"), (404, "NoSuchBucket")],
    )
    def test_given_final_4xx_when_delivered_then_not_retried(
        self,
        cos: CosStandIn,
        make_sink: Callable[..., CosSink],
        pauses: Pauses,
        status: int,
        code: str,
    ) -> None:
        cos.set_fault(CosFault(status, code))
        with pytest.raises(SinkError) as caught:
            make_sink().deliver([make_record()])
        (request,) = cos.requests
        assert str(caught.value).startswith(f"cos:{BUCKET}/stats: {code}: ")
        assert f"(HTTP {status}, request id {request.request_id}) after 1 attempt" in str(
            caught.value
        )
        assert pauses.delays == []

    def test_given_bucket_missing_when_delivered_then_no_such_bucket(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        cos.buckets.clear()
        with pytest.raises(SinkError, match=r"NoSuchBucket: .*\(HTTP 404, .*after 1 attempt$"):
            make_sink().deliver([make_record()])

    def test_given_hanging_cos_when_delivered_then_times_out_per_attempt_bounded(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        cos.set_fault(CosFault(hang=True))
        sink = make_sink(make_settings(timeout=0.3, max_attempts=2))
        started = time.monotonic()
        with pytest.raises(SinkError, match=r"no answer within 0\.3 s after 2 attempts$"):
            sink.deliver([make_record()])
        assert time.monotonic() - started < 3.0
        assert len(cos.requests) == 2

    @pytest.mark.parametrize("framing", FRAMINGS)
    @pytest.mark.parametrize("mode", ["drip_body", "drip_headers"])
    def test_given_cos_dripping_when_delivered_then_each_attempt_ends_at_the_timeout(
        self, make_sink: Callable[..., CosSink], mode: str, framing: str
    ) -> None:
        """Per-read timeouts never trip on a byte every 0.1 s; the whole-call one does, however
        the answer is framed (80 bytes: a broken bound shows in 16 s, not minutes)."""
        with SlowServer(mode=mode, framing=framing, drip_s=0.1, body=b"x" * 80) as slow:
            sink = make_sink(make_settings(timeout=0.3, max_attempts=2), endpoint=slow.url)
            started = time.monotonic()
            with pytest.raises(SinkError, match=r"no answer within 0\.3 s after 2 attempts$"):
                sink.deliver([make_record()])
            assert time.monotonic() - started < 3.0
            assert slow.requests == 2

    def test_given_cos_object_of_400_mb_when_read_then_refused_after_reading_a_little(
        self, make_sink: Callable[..., CosSink]
    ) -> None:
        with SlowServer(mode="huge", huge_bytes=400 * 1024 * 1024) as slow:
            sink = make_sink(make_settings(max_attempts=1), endpoint=slow.url)
            with pytest.raises(SinkError, match="is over 8388608 bytes: not ours"):
                sink.get("app=1/dt=2021-05-01/2021050112.json")
        assert slow.sent < 100 * 1024 * 1024

    def test_given_connection_dropped_once_when_delivered_then_retried(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        cos.set_fault(CosFault(drop=True, times=1))
        make_sink().deliver([make_record()])
        assert [r.code for r in cos.requests] == ["Fault.Drop", "OK"]

    def test_given_nothing_listening_when_delivered_then_could_not_connect(
        self, make_sink: Callable[..., CosSink], pauses: Pauses
    ) -> None:
        sink = make_sink(endpoint=f"http://127.0.0.1:{closed_port()}")
        with pytest.raises(SinkError, match=r"could not connect \(\w+\) after 3 attempts$"):
            sink.deliver([make_record()])
        assert len(pauses.delays) == 2

    def test_given_deadline_too_close_for_a_retry_when_failing_then_stops_after_one(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], pauses: Pauses
    ) -> None:
        cos.set_fault(CosFault(503, "SlowDown"))
        now = 1000.0
        sink = make_sink(clock=lambda: now)
        # Room for one attempt (timeout 2 s), not for a 0.5 s pause plus another attempt.
        with pytest.raises(SinkError, match=r"SlowDown: .*after 1 attempt; no time left"):
            sink.deliver([make_record()], deadline=now + 2.2)
        assert len(cos.requests) == 1
        assert pauses.delays == []

    def test_given_deadline_passed_when_delivered_then_no_request_is_started(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        sink = make_sink(clock=lambda: 1000.0)
        with pytest.raises(SinkError, match=r"no time left .* \(after 0 attempts\)"):
            sink.deliver([make_record()], deadline=1001.0)
        assert cos.requests == []

    def test_given_object_absent_then_present_when_checked_then_exists_follows(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        sink = make_sink()
        record = make_record()
        assert isinstance(sink, Store)  # what a resumable backfill looks for
        assert sink.exists(record.key) is False
        sink.deliver([record])
        assert sink.exists(record.key) is True
        assert [(r.method, r.status) for r in cos.requests] == [
            ("HEAD", 404),
            ("PUT", 200),
            ("HEAD", 200),
        ]
        assert not [r for r in caplog.records if r.name.startswith("qcloud_cos")]

    def test_given_head_fails_when_checked_then_retried_or_refused(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink]
    ) -> None:
        sink = make_sink()
        cos.set_fault(CosFault(500, "InternalError", times=1))
        key = make_record().key
        assert sink.exists(key) is False
        cos.set_fault(CosFault(403, "AccessDenied"))
        with pytest.raises(SinkError, match=r": HTTP 403 \(request id \S+\) after 1 attempt$"):
            sink.exists(key)

    def test_given_debug_logging_when_delivering_then_sdk_logs_no_secret(
        self, cos: CosStandIn, make_sink: Callable[..., CosSink], caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        cos.set_fault(CosFault(500, "InternalError", times=1))
        make_sink().deliver([make_record()])
        assert logging.getLogger("qcloud_cos.cos_auth").getEffectiveLevel() == logging.WARNING
        assert all(r.levelno >= logging.WARNING for r in caplog.records if "qcloud_cos" in r.name)
        assert_no_secret(caplog.text)


class TestHandler:
    @pytest.fixture
    def cos_env(
        self, scf_env: dict[str, str], cos: CosStandIn, monkeypatch: pytest.MonkeyPatch
    ) -> str:
        url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        monkeypatch.setenv("SMS_STATS_SINKS", url)
        return url

    def test_given_timer_when_handled_then_each_apps_hour_is_an_object(
        self, cos_env: str, cos: CosStandIn, context: dict[str, Any]
    ) -> None:
        summary = main_handler(load_event("timer.json"), context)

        assert summary["ok"] is True
        names = {
            f"stats/app={app}/dt=2021-05-01/2021050112-2021050112.json": app
            for app in (APP_A, APP_B)
        }
        assert sorted(key for _, key in cos.objects) == sorted([*names, "stats/_store.json"])
        assert json.loads(cos.objects[(BUCKET, "stats/_store.json")].body)["timezone"] == (
            "Asia/Shanghai"
        )
        for (_, key), stored in cos.objects.items():
            if key not in names:
                continue
            record = json.loads(stored.body)
            expected = Emulator.expected(names[key], "2021050112", "2021050112")
            assert record["sms_sdk_app_id"] == names[key]
            assert record["request_count"] == expected["RequestCount"]
            assert record["request_success_count"] == expected["RequestSuccessCount"]
            assert record["fee_count"] == expected["FeeCount"]
            assert stored.content_type == "application/json"
        assert {d["sink"] for d in summary["deliveries"]} == {f"cos:{BUCKET}/stats"}

    def test_given_file_and_cos_sinks_when_handled_then_both_hold_the_same_bytes(
        self,
        cos_env: str,
        cos: CosStandIn,
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{cos_env}")
        main_handler(load_event("timer.json"), context)
        for (_, key), stored in cos.objects.items():
            assert (store / key.removeprefix("stats/")).read_bytes() == stored.body

    def test_given_cos_failing_for_one_app_when_timer_then_delivery_error_other_stored(
        self, cos_env: str, cos: CosStandIn, context: dict[str, Any]
    ) -> None:
        cos.set_fault(CosFault(403, "AccessDenied"), key_contains=f"app={APP_B}/")
        with pytest.raises(DeliveryError) as caught:
            main_handler(load_event("timer.json"), context)
        assert f"app {APP_B}" in caught.value.message
        assert "AccessDenied" in caught.value.message
        assert_no_secret(caught.value.message)
        records = [key for _, key in cos.objects if "/app=" in key]
        assert records == [f"stats/app={APP_A}/dt=2021-05-01/2021050112-2021050112.json"]
        # What COS refused is owed to it in the outbox, for the next run to put.
        (entry,) = [o for (_, key), o in cos.objects.items() if key.startswith("stats/_outbox/")]
        owed = json.loads(entry.body)["owed"]
        assert owed == {
            f"cos:{BUCKET}/stats": [f"app={APP_B}/dt=2021-05-01/2021050112-2021050112.json"]
        }

    def test_given_cos_failing_when_http_get_then_200_with_records_and_failed_delivery(
        self, cos_env: str, cos: CosStandIn, context: dict[str, Any]
    ) -> None:
        cos.set_fault(CosFault(403, "AccessDenied"))
        answer = main_handler(load_event("function_url_get.json"), context)

        assert answer["statusCode"] == 200, answer["body"]
        body = json.loads(answer["body"])
        assert [r["sms_sdk_app_id"] for r in body["records"]] == [APP_A]
        (delivery,) = body["deliveries"]
        assert delivery["ok"] is False
        assert delivery["sink"] == f"cos:{BUCKET}/stats"
        assert "AccessDenied" in delivery["error"]
        assert body["error"]["code"] == "FailedOperation.DeliveryFailed"
        assert_no_secret(answer["body"])

    def test_given_cos_as_only_store_when_backfilled_twice_then_second_run_skips_all(
        self, cos_env: str, cos: CosStandIn
    ) -> None:
        settings = load_settings()
        sinks = build_sinks(settings)
        now = datetime(2021, 5, 10, tzinfo=timezone.utc)
        first = backfill.plan(
            [APP_A, APP_B], "2021050100", "2021050102", "hour", settings, sinks, now
        )
        assert (first.todo, first.stored) == (6, 0)
        assert backfill.run(first, settings, sinks).ok
        assert len(cos.objects) == 6 + 1  # and _store.json
        again = backfill.plan(
            [APP_A, APP_B], "2021050100", "2021050102", "hour", settings, sinks, now
        )
        assert (again.todo, again.stored) == (0, 6)


class TestStandIn:
    """The stand-in checks what COS checks; probed with a signer written from the docs."""

    @staticmethod
    def signed(
        method: str,
        path: str,
        headers: dict[str, str],
        *,
        secret_key: str = SECRET_KEY,
        window: tuple[int, int] | None = None,
        params: dict[str, str] | None = None,
    ) -> dict[str, str]:
        now = int(time.time())
        start, end = window or (now - 60, now + 600)
        key_time = f"{start};{end}"
        enc = {quote(k, safe="-_.~").lower(): quote(v, safe="-_.~") for k, v in headers.items()}
        par = {
            quote(k, safe="-_.~").lower(): quote(v, safe="-_.~") for k, v in (params or {}).items()
        }
        http_string = "\n".join(
            [
                method.lower(),
                path,
                "&".join(f"{k}={par[k]}" for k in sorted(par)),
                "&".join(f"{k}={enc[k]}" for k in sorted(enc)),
                "",
            ]
        )
        sign_key = hmac.new(secret_key.encode(), key_time.encode(), hashlib.sha1).hexdigest()
        to_sign = f"sha1\n{key_time}\n{hashlib.sha1(http_string.encode()).hexdigest()}\n"
        signature = hmac.new(sign_key.encode(), to_sign.encode(), hashlib.sha1).hexdigest()
        authorization = (
            f"q-sign-algorithm=sha1&q-ak={SECRET_ID}&q-sign-time={key_time}&q-key-time={key_time}"
            f"&q-header-list={';'.join(sorted(enc))}&q-url-param-list={';'.join(sorted(par))}"
            f"&q-signature={signature}"
        )
        return {**headers, "Authorization": authorization}

    @staticmethod
    def send(
        cos: CosStandIn, method: str, target: str, headers: dict[str, str], body: bytes = b""
    ) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", cos.port, timeout=5)
        try:
            connection.request(method, target, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.read().decode()
        finally:
            connection.close()

    def base_headers(self, body: bytes = b"{}") -> dict[str, str]:
        return {
            "Host": HOST,
            "Content-Type": "application/json",
            "Content-Length": str(len(body)),
            "x-cos-security-token": SESSION_TOKEN,
        }

    def test_given_independently_signed_put_when_sent_then_stored_and_get_returns_it(
        self, cos: CosStandIn
    ) -> None:
        headers = self.signed("PUT", "/a b/x=1.json", self.base_headers())
        status, _ = self.send(cos, "PUT", "/a%20b/x%3D1.json", headers, b"{}")
        assert status == 200
        assert cos.objects[(BUCKET, "a b/x=1.json")].body == b"{}"
        get = self.signed(
            "GET", "/a b/x=1.json", {"Host": HOST, "x-cos-security-token": SESSION_TOKEN}
        )
        assert self.send(cos, "GET", "/a%20b/x%3D1.json", get) == (200, "{}")

    @pytest.mark.parametrize(
        ("tamper", "code"),
        [
            (lambda h: h.update({"Content-Type": "text/plain"}), "SignatureDoesNotMatch"),
            (
                lambda h: h.update({"Host": "other-1250000000.cos.ap-guangzhou.myqcloud.com"}),
                "NoSuchBucket",
            ),
            (lambda h: h.update({"Host": "127.0.0.1"}), "InvalidURI"),
            (lambda h: h.pop("x-cos-security-token"), "InvalidAccessKeyId"),
            (lambda h: h.update({"x-cos-security-token": "guessed"}), "InvalidAccessKeyId"),
            (lambda h: h.pop("Authorization"), "AccessDenied"),
            (lambda h: h.update({"Content-MD5": "1B2M2Y8AsgTpgAmY7PhCfg=="}), "BadDigest"),
        ],
    )
    def test_given_tampered_request_when_sent_then_cos_error_xml_and_nothing_stored(
        self, cos: CosStandIn, tamper: Callable[[dict[str, str]], Any], code: str
    ) -> None:
        headers = self.signed("PUT", "/k.json", self.base_headers())
        tamper(headers)
        status, body = self.send(cos, "PUT", "/k.json", headers, b"{}")
        assert status in (400, 403, 404)
        assert f"<Code>{code}</Code>" in body
        assert "<RequestId>" in body
        assert "<Resource>" in body
        assert "guessed" not in body
        assert SESSION_TOKEN not in body
        assert cos.objects == {}

    def test_given_signed_url_param_changed_when_sent_then_signature_mismatch(
        self, cos: CosStandIn
    ) -> None:
        headers = self.signed("GET", "/k.json", self.base_headers(b""), params={"versionId": "1"})
        status, body = self.send(cos, "GET", "/k.json?versionId=2", headers)
        assert (status, "<Code>SignatureDoesNotMatch</Code>" in body) == (403, True)

    @pytest.mark.parametrize(
        ("offsets", "code", "message"),
        [
            ((-900, -300), "AccessDenied", "Request has expired"),
            ((300, 900), "RequestTimeTooSkewed", ""),
        ],
    )
    def test_given_sign_time_not_covering_now_when_sent_then_refused(
        self, cos: CosStandIn, offsets: tuple[int, int], code: str, message: str
    ) -> None:
        now = int(time.time())
        window = (now + offsets[0], now + offsets[1])
        headers = self.signed("PUT", "/k.json", self.base_headers(), window=window)
        status, body = self.send(cos, "PUT", "/k.json", headers, b"{}")
        assert status == 403
        assert f"<Code>{code}</Code>" in body
        assert message in body

    def test_given_hanging_request_when_stopped_then_stop_is_prompt(self) -> None:
        stand_in = CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}
        )
        stand_in.start()
        stand_in.set_fault(CosFault(hang=True))
        outcome: list[BaseException | tuple[int, str]] = []

        def call() -> None:
            headers = self.signed("PUT", "/k.json", self.base_headers())
            try:
                outcome.append(self.send(stand_in, "PUT", "/k.json", headers, b"{}"))
            except Exception as exc:
                outcome.append(exc)

        client = threading.Thread(target=call)
        client.start()
        assert stand_in.wait_for_requests(1)
        started = time.monotonic()
        stand_in.stop()
        client.join(timeout=5)
        assert time.monotonic() - started < 2.0
        assert not client.is_alive()
        assert isinstance(outcome[0], Exception)  # the connection was cut, no answer


def test_given_cold_start_when_index_imported_then_cos_sdk_is_not_loaded() -> None:
    code = (
        "import index, sms_stats.deliver.sinks, sms_stats.store.cos, sys; "
        "assert 'qcloud_cos' not in sys.modules, 'qcloud_cos imported'"
    )
    run_fresh(code, timeout=60)


class TestCosEdges:
    @pytest.fixture
    def cos(self) -> Iterator[CosStandIn]:
        creds = {SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}
        with CosStandIn(credentials=creds, buckets={BUCKET}) as s:
            yield s

    @pytest.fixture
    def make_sink(self, cos: CosStandIn) -> Callable[..., tuple[CosSink, list[float]]]:
        def make(max_attempts: int = 3) -> tuple[CosSink, list[float]]:
            delays: list[float] = []
            settings = Settings(
                secret_id=SECRET_ID,
                secret_key=SECRET_KEY,
                session_token=SESSION_TOKEN,
                timeout=2,
                max_attempts=max_attempts,
            )
            url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
            sink = build(url, settings, Transport(), sleep=delays.append, rng=lambda: 1.0)
            return sink, delays

        return make

    def test_given_control_character_in_prefix_when_parsed_then_value_error(self) -> None:
        with pytest.raises(ValueError, match="control characters"):
            parse_url(f"cos://{BUCKET}/a%0Ab", "ap-guangzhou")

    def test_given_many_attempts_when_failing_then_pause_capped_at_8_seconds(
        self, cos: CosStandIn, make_sink: Callable[..., tuple[CosSink, list[float]]]
    ) -> None:
        cos.set_fault(CosFault(500, "InternalError"))
        sink, delays = make_sink(max_attempts=7)
        with pytest.raises(SinkError):
            sink.deliver([seed_record()])
        assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]

    def test_given_429_on_head_when_checked_then_retried(
        self, cos: CosStandIn, make_sink: Callable[..., tuple[CosSink, list[float]]]
    ) -> None:
        sink, _ = make_sink()
        cos.set_fault(CosFault(429, "TooManyRequests", times=1))
        assert sink.exists(seed_record().key) is False
        assert [r.status for r in cos.requests] == [429, 404]

    def test_given_cos_echoing_secrets_when_refused_then_error_holds_neither(
        self, cos: CosStandIn, make_sink: Callable[..., tuple[CosSink, list[float]]]
    ) -> None:
        sink, _ = make_sink()
        echo = f"key {SECRET_KEY} token {SESSION_TOKEN}"
        cos.set_fault(CosFault(403, "AccessDenied", message=echo))
        with pytest.raises(SinkError) as caught:
            sink.deliver([seed_record()])
        assert "AccessDenied" in str(caught.value)
        assert SECRET_KEY not in str(caught.value)
        assert SESSION_TOKEN not in str(caught.value)


class TestCosStore:
    """The object operations the outbox and resumes use, through the SDK and the stand-in."""

    @pytest.fixture
    def cos(self) -> Iterator[CosStandIn]:
        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets=[BUCKET]
        ) as server:
            yield server

    @pytest.fixture
    def sink(self, cos: CosStandIn) -> CosSink:
        url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        return build(url, make_settings(), Transport(), sleep=lambda _: None, rng=lambda: 1.0)

    def test_given_objects_when_put_listed_read_deleted_then_round_trip_under_the_prefix(
        self, cos: CosStandIn, sink: CosSink
    ) -> None:
        sink.list_page = 2  # three pages for five keys: the paging is exercised
        for name in ("a", "b", "c", "d", "e"):
            sink.put(f"_outbox/{name}.json", name.encode())
        sink.put("app=1/x.json", b"x")
        assert {key for _, key in cos.objects} >= {"stats/_outbox/a.json", "stats/app=1/x.json"}
        assert sink.keys("_outbox/") == [f"_outbox/{n}.json" for n in "abcde"]
        lists = [r for r in cos.requests if r.method == "GET" and r.key == ""]
        assert len(lists) == 3
        assert sink.get("_outbox/c.json") == b"c"
        assert sink.get("_outbox/none.json") is None
        sink.delete("_outbox/c.json")
        sink.delete("_outbox/c.json")
        assert not sink.exists("_outbox/c.json")
        assert sink.keys("_outbox/") == [f"_outbox/{n}.json" for n in "abde"]

    def test_given_an_object_written_again_when_listed_then_its_version_is_the_new_etag(
        self, cos: CosStandIn, sink: CosSink
    ) -> None:
        sink.put("app=1/x.json", b"one")
        before = sink.listing("app=1/")
        sink.put("app=1/x.json", b"two")
        after = sink.listing("app=1/")
        assert list(after) == ["app=1/x.json"]
        assert after["app=1/x.json"] != before["app=1/x.json"]
        assert before["app=1/x.json"]  # an ETag, not empty

    def test_given_list_refused_when_listed_then_sink_error_names_cos_code(
        self, cos: CosStandIn, sink: CosSink
    ) -> None:
        cos.set_fault(CosFault(403, "AccessDenied"))
        with pytest.raises(SinkError, match="AccessDenied"):
            sink.keys("_outbox/")
