"""`GET /metrics`: the newest stored hour per app, in Prometheus' text format.

The store is written as on SCF: timer runs through `main_handler` against a stand-in whose clock
is pinned (the handler's too), collecting all three kinds. The output is read back with the
official parser (prometheus-client) and, when the Debian package is installed, `promtool`.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from prometheus_client.parser import text_string_to_metric_families
from pytest_mock import MockerFixture

from sms_stats.core.records import Counts, Record, store_key
from sms_stats.core.windows import Window, last_full, zone
from sms_stats.emulator import Emulator
from sms_stats.store.reading import Newest, Reading
from sms_stats.web.exposition import GAUGES, render

from .conftest import (
    API_TOKEN,
    APP_A,
    APP_B,
    SECRET_ID,
    SECRET_KEY,
    SESSION_TOKEN,
    Clock,
    pin_clock,
)
from .probe import run_fresh
from .serving import serving
from .standins.cos import CosFault, CosStandIn

NOW = datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)  # 13:05 in Shanghai: hour 12 is stored
BUCKET = "sms-stats-1250000000"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@pytest.fixture
def clock(mocker: MockerFixture) -> Clock:
    return pin_clock(mocker, NOW)


@pytest.fixture
def stand_in(clock: Clock) -> Iterator[Emulator]:
    with Emulator(credentials={SECRET_ID: SECRET_KEY}, clock=clock) as emulator:
        yield emulator


@pytest.fixture
def env(
    scf_env: dict[str, str], stand_in: Emulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("SMS_STATS_ENDPOINT", stand_in.endpoint)
    monkeypatch.delenv("SMS_STATS_COLLECT")  # the default: all three kinds
    return scf_env


def timer(at: datetime) -> dict[str, Any]:
    return {
        "Type": "Timer",
        "TriggerName": "hourly",
        "Time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Message": "",
    }


def collect(clock: Clock, at: datetime, context: dict[str, Any]) -> None:
    """The timer at `at`, with every clock there."""
    clock.now = at
    assert main_handler(timer(at), context)["ok"] is True


def get(
    path: str, query: dict[str, Any] | None = None, token: str | None = API_TOKEN
) -> dict[str, Any]:
    headers = {"accept": "*/*"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    event = {
        "httpMethod": "GET",
        "path": path,
        "headers": headers,
        "queryString": query or {},
        "body": "",
        "isBase64Encoded": False,
        "requestContext": {"sourceIp": "127.0.0.1"},
    }
    context = {"request_id": "metrics-test", "function_name": "sms-stats"}
    return main_handler(event, context)


def parse(text: str) -> Samples:
    """Every sample, through the official parser (which raises on anything malformed)."""
    found: Samples = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge", family.name
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            assert key not in found, f"{key} twice"
            found[key] = sample.value
    return found


def stored(store: Path, key: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((store / key).read_text(encoding="utf-8"))
    return data


def of(app_id: str, **more: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"app_id": app_id, **more}.items()))


class TestMetrics:
    def test_given_a_timer_run_when_scraped_then_every_gauge_equals_the_stored_records(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        answer = get("/metrics")

        assert answer["statusCode"] == 200
        assert answer["headers"]["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples = parse(answer["body"])
        for app in (APP_A, APP_B):
            send = stored(store, f"app={app}/dt=2021-05-01/2021050112-2021050112.json")
            receipts = stored(store, f"callback/app={app}/dt=2021-05-01/2021050112-2021050112.json")
            balance = stored(store, f"packages/app={app}/dt=2021-05-01/2021050113.json")
            labels = of(app)
            assert samples["sms_request_count", labels] == send["request_count"]
            assert samples["sms_request_success_count", labels] == send["request_success_count"]
            assert samples["sms_fee_count", labels] == send["fee_count"]
            assert samples["sms_success_rate", labels] == send["success_rate"]
            assert samples["sms_callback_count", labels] == receipts["callback_count"]
            assert (
                samples["sms_callback_success_count", labels]
                == (receipts["callback_success_count"])
            )
            assert samples["sms_delivery_rate", labels] == receipts["delivery_rate"]
            assert samples["sms_package_remaining", labels] == balance["remaining"]
            hour_end = datetime(2021, 5, 1, 5, tzinfo=timezone.utc).timestamp()
            assert samples["sms_window_end_timestamp_seconds", of(app, kind="send")] == hour_end
            assert samples["sms_window_end_timestamp_seconds", of(app, kind="callback")] == (
                hour_end
            )
            assert samples["sms_window_end_timestamp_seconds", of(app, kind="packages")] == (
                datetime(2021, 5, 1, 6, tzinfo=timezone.utc).timestamp()
            )
        assert samples["sms_store_unreadable_objects", ()] == 0
        assert len(samples) == 2 * 11 + 1

    def test_given_two_stored_hours_when_scraped_then_the_newer_one(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        collect(clock, NOW + timedelta(hours=1), context)
        samples = parse(get("/metrics")["body"])
        newer = stored(store, f"app={APP_A}/dt=2021-05-01/2021050113-2021050113.json")
        older = stored(store, f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json")
        assert newer["request_count"] != older["request_count"]
        assert samples["sms_request_count", of(APP_A)] == newer["request_count"]

    def test_given_only_yesterday_stored_when_scraped_after_midnight_then_yesterdays_hour(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any]
    ) -> None:
        # 00:05 on 2 May in Shanghai: the hour stored is 23:00 on 1 May, in dt=2021-05-01.
        collect(clock, datetime(2021, 5, 1, 16, 5, tzinfo=timezone.utc), context)
        clock.now = datetime(2021, 5, 1, 16, 40, tzinfo=timezone.utc)
        samples = parse(get("/metrics")["body"])
        send = stored(store, f"app={APP_A}/dt=2021-05-01/2021050123-2021050123.json")
        assert samples["sms_request_count", of(APP_A)] == send["request_count"]

    def test_given_a_corrupt_newest_object_then_the_older_hour_and_the_other_app_still_served(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        collect(clock, NOW + timedelta(hours=1), context)
        (store / f"app={APP_A}/dt=2021-05-01/2021050113-2021050113.json").write_bytes(b"{not json")
        answer = get("/metrics")
        assert answer["statusCode"] == 200
        samples = parse(answer["body"])
        older = stored(store, f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json")
        other = stored(store, f"app={APP_B}/dt=2021-05-01/2021050113-2021050113.json")
        assert samples["sms_request_count", of(APP_A)] == older["request_count"]
        assert samples["sms_request_count", of(APP_B)] == other["request_count"]
        assert samples["sms_store_unreadable_objects", ()] == 1

    def test_given_another_apps_record_under_an_apps_key_then_skipped_not_shown(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        hour = "dt=2021-05-01/2021050112-2021050112.json"
        (store / f"app={APP_A}/{hour}").write_bytes((store / f"app={APP_B}/{hour}").read_bytes())
        samples = parse(get("/metrics")["body"])
        assert ("sms_request_count", of(APP_A)) not in samples
        assert samples["sms_store_unreadable_objects", ()] == 1

    def test_given_an_app_query_then_that_app_only(
        self, env: dict[str, str], clock: Clock, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        samples = parse(get("/metrics", {"app_id": APP_B})["body"])
        apps = {dict(labels).get("app_id") for _, labels in samples}
        assert apps == {APP_B, None}  # None: the store gauge, which has no app

    def test_given_an_app_outside_the_allowlist_then_403(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("SMS_STATS_HTTP_APP_IDS", APP_A)
        answer = get("/metrics", {"app_id": APP_B})
        assert answer["statusCode"] == 403

    def test_given_an_allowlist_then_only_its_apps_are_shown(
        self, env: dict[str, str], clock: Clock, context: dict[str, Any], monkeypatch: Any
    ) -> None:
        collect(clock, NOW, context)
        monkeypatch.setenv("SMS_STATS_HTTP_APP_IDS", APP_A)
        samples = parse(get("/metrics")["body"])
        assert {dict(labels).get("app_id") for _, labels in samples} == {APP_A, None}

    def test_given_no_token_then_401_json(self, env: dict[str, str]) -> None:
        answer = get("/metrics", token=None)
        assert answer["statusCode"] == 401
        assert json.loads(answer["body"])["error"]["code"].startswith("AuthFailure")

    def test_given_no_store_configured_then_a_clear_503_json_error(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SMS_STATS_SINKS")
        answer = get("/metrics")
        assert answer["statusCode"] == 503
        error = json.loads(answer["body"])["error"]
        assert error["code"] == "ResourceUnavailable.NoStore"
        assert "SMS_STATS_SINKS" in error["message"]

    def test_given_a_store_that_refuses_then_503_json_not_a_traceback(
        self, env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}
        ) as cos:
            cos.set_fault(CosFault(403, "AccessDenied"))
            endpoint = cos.endpoint
            sink = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={endpoint}"
            monkeypatch.setenv("SMS_STATS_SINKS", sink)
            answer = get("/metrics")
        assert answer["statusCode"] == 503
        body = json.loads(answer["body"])
        assert body["error"]["code"] == "ResourceUnavailable.StoreUnreachable"
        assert (
            endpoint.split("//")[1] not in answer["body"]
        )  # the transport's detail stays in the log

    def test_given_a_cos_store_written_by_the_timer_then_the_same_figures(
        self,
        env: dict[str, str],
        clock: Clock,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}
        ) as cos:
            sink = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
            monkeypatch.setenv("SMS_STATS_SINKS", sink)
            collect(clock, NOW, context)
            answer = get("/metrics")
            objects = {key: json.loads(obj.body) for (_, key), obj in cos.objects.items()}
        samples = parse(answer["body"])
        for app in (APP_A, APP_B):
            send = objects[f"stats/app={app}/dt=2021-05-01/2021050112-2021050112.json"]
            balance = objects[f"stats/packages/app={app}/dt=2021-05-01/2021050113.json"]
            assert samples["sms_request_count", of(app)] == send["request_count"]
            assert samples["sms_package_remaining", of(app)] == balance["remaining"]

    def test_given_serve_when_scraped_over_http_then_the_exposition_content_type(
        self,
        env: dict[str, str],
        clock: Clock,
        store: Path,
        context: dict[str, Any],
        tmp_path: Path,
    ) -> None:
        # The console script reads this machine's clock: the timer runs at it too.
        at = datetime.now(timezone.utc)
        collect(clock, at, context)
        with serving(tmp_path) as served:
            request = urllib.request.Request(
                f"{served.url}/metrics", headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                content_type = answer.headers["Content-Type"]
                text = answer.read().decode("utf-8")
        assert content_type == "text/plain; version=0.0.4; charset=utf-8"
        (hour,) = last_full(at, zone("Asia/Shanghai"))
        send = stored(store, store_key(APP_A, hour))
        assert parse(text)["sms_request_count", of(APP_A)] == send["request_count"]

    def test_given_an_empty_store_then_help_and_type_only(self, env: dict[str, str]) -> None:
        answer = get("/metrics")
        assert answer["statusCode"] == 200
        assert parse(answer["body"]) == {("sms_store_unreadable_objects", ()): 0}
        for gauge in GAUGES:
            assert f"# TYPE {gauge.name} gauge\n" in answer["body"]

    def test_given_a_post_then_405(self, env: dict[str, str]) -> None:
        event_answer = main_handler(
            {
                "httpMethod": "POST",
                "path": "/metrics",
                "headers": {"authorization": f"Bearer {API_TOKEN}"},
                "queryString": {},
                "body": "",
            },
            {"request_id": "metrics-test"},
        )
        assert event_answer["statusCode"] == 405


def record(app_id: str, requests: int, successes: int) -> Record:
    window = Window.from_api("2021050112", "2021050112", zone("Asia/Shanghai"))
    counts = Counts(requests, successes, requests, "req-1")
    return Record(app_id, window, "Asia/Shanghai", counts, NOW)


class TestRender:
    def test_given_an_hour_without_messages_then_no_rate_sample_rather_than_zero(self) -> None:
        text = render(Reading([Newest(APP_A, send=record(APP_A, 0, 0))]))
        samples = parse(text)
        assert samples["sms_request_count", of(APP_A)] == 0
        assert ("sms_success_rate", of(APP_A)) not in samples
        assert "sms_success_rate{" not in text

    def test_given_a_rate_then_its_exact_value(self) -> None:
        samples = parse(render(Reading([Newest(APP_A, send=record(APP_A, 3, 2))])))
        assert samples["sms_success_rate", of(APP_A)] == 0.666667

    def test_given_a_label_needing_escapes_then_the_parser_reads_it_back(self) -> None:
        odd = 'a"b\\c\nd'
        samples = parse(render(Reading([Newest(odd, send=record(odd, 1, 1))])))
        assert samples["sms_request_count", of(odd)] == 1

    @pytest.mark.skipif(
        shutil.which("promtool") is None,
        reason="promtool not installed (Debian package `prometheus`; .ci/run installs it)",
    )
    def test_given_the_output_when_promtool_checks_it_then_only_the_contracts_names_are_noted(
        self,
    ) -> None:
        """promtool lints `_count` as a suffix reserved for histograms and summaries; the
        contract's names have it (`sms_request_count`), so that one note is expected, and any
        other (a malformed line, a bad name, a missing HELP) fails."""
        text = render(
            Reading(
                [Newest(APP_A, send=record(APP_A, 3, 2)), Newest(APP_B, send=record(APP_B, 0, 0))]
            )
        )
        result = subprocess.run(
            ["promtool", "check", "metrics"],
            input=text,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        notes = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        unexpected = [n for n in notes if 'should not have "_count" suffix' not in n]
        assert unexpected == []
        broken = text.replace("# TYPE sms_fee_count gauge\n", "# TYPE sms_fee_count gauge\n{\n")
        result = subprocess.run(
            ["promtool", "check", "metrics"],
            input=broken,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode != 0
        assert [n for n in result.stderr.splitlines() if "_count" not in n]


def test_given_a_timer_run_then_the_reading_modules_are_not_loaded(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A timer container pays nothing for /metrics or the read-through: run one for real in a
    fresh interpreter (the stand-in answers it) and look at what it imported."""
    monkeypatch.delenv("SMS_STATS_COLLECT")  # all three kinds
    code = (
        "import json, sys, index\n"
        "event = {'Type': 'Timer', 'TriggerName': 'hourly', 'Time': '2021-05-01T05:05:00Z', "
        "'Message': ''}\n"
        "index.main_handler(event, {'request_id': 'r', 'time_limit_in_ms': 60000})\n"
        "loaded = [m for m in ('sms_stats.web.exposition', 'sms_stats.store.reading', "
        "'sms_stats.web.readthrough', 'sms_stats.web.http', 'sms_stats.events.direct') "
        "if m in sys.modules]\n"
        "print(json.dumps(loaded))\n"
    )
    assert run_fresh(code) == []
