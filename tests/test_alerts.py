"""Alerts and the digest through the real handler, the stand-in, a store and a signed webhook
receiver (verified with the `standardwebhooks` package): fire once, stay silent, resolve once,
retries add nothing, a low balance fires, a quiet hour does not, the digest equals day calls."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler

from sms_stats.core.errors import SmsStatsError
from sms_stats.emulator import Emulator, Fault
from sms_stats.emulator.counts import range_callback_counts, range_counts

from .conftest import APP_A, APP_B
from .standins.webhook import Fault as WebhookFault
from .standins.webhook import WebhookReceiver

SECRET = "whsec_" + base64.b64encode(b"alerts-test-secret-0123456789").decode()
DELIVERY_RULE = [
    {
        "name": "delivery low",
        "metric": "delivery_rate",
        "below": 0.9,
        "min_volume": 50,
        "app_ids": [APP_A],
    }
]


def receipts(total: int, ok: int) -> Fault:
    """Receipts of every hour asked, as given: `total` back, `ok` delivered."""
    fields = {
        "RequestSuccessCount": total,
        "CallbackCount": total,
        "CallbackSuccessCount": ok,
        "CallbackFailCount": total - ok,
        "InternalErrorCount": total - ok,
        "InvalidNumberCount": 0,
        "ShutdownErrorCount": 0,
        "BlackListCount": 0,
        "FrequencyLimitCount": 0,
    }
    return Fault(action="callback", fields={k: str(v) for k, v in fields.items()})


def timer(local_hour: int, day: int = 1) -> dict[str, Any]:
    """The timer of 2021-05-<day> <local_hour>:05 Beijing time (it collects the hour before)."""
    moment = datetime(2021, 5, day, local_hour, 5, tzinfo=timezone(timedelta(hours=8)))
    stamp = moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"Type": "Timer", "TriggerName": "hourly", "Time": stamp, "Message": ""}


@pytest.fixture
def receiver() -> Any:
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


@pytest.fixture
def alerts_env(
    scf_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    receiver: WebhookReceiver,
    store: Path,
) -> dict[str, str]:
    env = {
        "SMS_STATS_SINKS": f"file://{store},{receiver.url}",
        "SMS_STATS_WEBHOOK_SECRET": SECRET,
        "SMS_STATS_COLLECT": "send,callback",
        "SMS_STATS_SETTLE_HOURS": "0",
        "SMS_STATS_ALERTS": json.dumps(DELIVERY_RULE),
        "SMS_STATS_DIGEST_HOUR": "9",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def notices(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """What reached the receiver that is not a record, each checked as a receiver would."""
    found = []
    for message in receiver.received:
        body = message.json
        if "type" in body and message.status < 300:  # what the receiver took
            assert message.verified, "a notice failed Standard Webhooks verification"
            assert message.headers["webhook-id"].startswith(("alert_", "digest_"))
            found.append({**body, "id": message.headers["webhook-id"]})
    return found


def run_twice(event: dict[str, Any], context: dict[str, Any]) -> None:
    """A run and SCF's retry of it."""
    main_handler(event, context)
    main_handler(event, context)


class TestFireOnceResolveOnce:
    def test_given_receipts_failing_at_11_and_12_then_one_firing_one_resolved(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
    ) -> None:
        emulator.set_fault(receipts(200, 198), app_id=APP_A)
        run_twice(timer(11), context)  # 10:00-11:00 healthy
        emulator.set_fault(receipts(200, 100), app_id=APP_A)
        run_twice(timer(12), context)  # 11:00 bad: fires
        run_twice(timer(13), context)  # 12:00 bad: silent
        emulator.set_fault(receipts(200, 197), app_id=APP_A)
        run_twice(timer(14), context)  # 13:00 good: resolves
        run_twice(timer(15), context)  # 14:00 good: silent

        got = [n for n in notices(receiver) if n["type"].startswith("alert.")]
        assert [n["type"] for n in got] == ["alert.firing", "alert.resolved"]
        firing, resolved = got
        assert firing["data"]["app_id"] == APP_A
        assert firing["data"]["value"] == 0.5
        assert firing["data"]["threshold"] == 0.9
        assert firing["data"]["window_start"] == "2021-05-01T11:00:00+08:00"
        assert firing["data"]["since"] == "2021-05-01T11:00:00+08:00"
        assert resolved["data"]["since"] == "2021-05-01T11:00:00+08:00"
        assert resolved["data"]["window_start"] == "2021-05-01T13:00:00+08:00"
        assert resolved["data"]["value"] == 0.985
        assert set(firing["data"]) >= {
            "alert",
            "metric",
            "app_id",
            "value",
            "threshold",
            "window_start",
            "window_end",
            "since",
        }

    def test_given_a_quiet_hour_then_it_does_not_fire(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
    ) -> None:
        emulator.set_fault(receipts(3, 2), app_id=APP_A)  # 3 receipts, 1 failed: a quiet night
        run_twice(timer(4), context)
        assert [n for n in notices(receiver) if n["type"].startswith("alert.")] == []


class TestOnlyRecentHours:
    def test_given_a_direct_run_for_an_old_hour_then_no_alert_for_it(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_ALERTS", '[{"metric": "success_rate", "below": 0.95}]')
        half = {"RequestCount": "200", "RequestSuccessCount": "100", "FeeCount": "200"}
        emulator.set_fault(Fault(action="send", fields=half), app_id=APP_A)
        seed = {
            "SmsSdkAppId": APP_A,
            "BeginTime": "2021050111",
            "EndTime": "2021050111",
            "Limit": 0,
            "Offset": 0,
        }
        main_handler(seed, context)  # a fetch by hand of an hour long past: stored, not judged
        assert [n for n in notices(receiver) if n["type"].startswith("alert.")] == []
        main_handler(timer(12), context)  # the timer's own hour is judged
        alerts = [n for n in notices(receiver) if n["type"].startswith("alert.")]
        assert [(n["type"], n["data"]["app_id"]) for n in alerts] == [("alert.firing", APP_A)]


class TestNothingLost:
    def test_given_the_webhook_down_when_it_fires_then_the_retry_delivers_it_once(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_DIGEST_HOUR", "23")  # this test is about the alert
        monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
        emulator.set_fault(receipts(200, 100), app_id=APP_A)
        # Down for everything the first run sends: its records (2 apps x 2 kinds) and the alert.
        receiver.fault = WebhookFault(status=503, times=5)
        with pytest.raises(SmsStatsError, match="deliveries failed"):
            main_handler(timer(12), context)  # SCF retries a run that raised
        assert notices(receiver) == []
        main_handler(timer(12), context)  # the retry: owed notices are sent now
        main_handler(timer(12), context)  # and not again
        fired = [n for n in notices(receiver) if n["type"] == "alert.firing"]
        assert [n["data"]["app_id"] for n in fired] == [APP_A]


class TestDigest:
    def test_given_the_digest_hour_then_one_digest_whose_totals_equal_day_calls(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
    ) -> None:
        run_twice(timer(8), context)  # before 09:00: no digest yet
        assert [n for n in notices(receiver) if n["type"] == "digest.daily"] == []
        run_twice(timer(9), context)
        run_twice(timer(10), context)
        (digest,) = [n for n in notices(receiver) if n["type"] == "digest.daily"]
        assert digest["id"] == "digest_2021-04-30"
        assert digest["data"]["date"] == "2021-04-30"
        apps = {app["app_id"]: app for app in digest["data"]["apps"]}
        assert set(apps) == {APP_A, APP_B}
        for app_id, app in apps.items():
            # The stand-in's own figures for the API's hours of 2021-04-30 (Beijing time).
            sends = range_counts(app_id, "2021043000", "2021043023")
            backs = range_callback_counts(
                app_id, "2021043000", "2021043023", datetime.now(timezone.utc)
            )
            assert app["request_count"] == sends["RequestCount"]
            assert app["fee_count"] == sends["FeeCount"]
            assert app["callback_count"] == backs["CallbackCount"]
            assert app["callback_success_count"] == backs["CallbackSuccessCount"]
            assert app["alerts_fired"] == 0

    def test_given_runs_failing_from_the_digest_hour_to_midnight_then_sent_late_once(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
        run_twice(timer(9, day=1), context)  # 2021-04-30's, on time
        main_handler(timer(8, day=2), context)  # 2021-05-01's is due from 09:00
        emulator.set_fault(Fault(error_code="InternalError.Timeout"))  # the API down...
        for local_hour in (9, 23):  # ...from the digest hour to midnight (none ran between)
            with pytest.raises(SmsStatsError):
                main_handler(timer(local_hour, day=2), context)
        assert len([n for n in notices(receiver) if n["type"] == "digest.daily"]) == 1
        emulator.clear_faults()
        run_twice(timer(0, day=3), context)  # 00:05: 2021-05-01's, late, once
        run_twice(timer(8, day=3), context)
        run_twice(timer(9, day=3), context)  # 2021-05-02's as usual
        run_twice(timer(10, day=3), context)

        sent = [n for n in notices(receiver) if n["type"] == "digest.daily"]
        assert [(n["id"], n["data"]["late"]) for n in sent] == [
            ("digest_2021-04-30", False),
            ("digest_2021-05-01", True),
            ("digest_2021-05-02", False),
        ]
        late = sent[1]
        assert late["data"]["date"] == "2021-05-01"
        assert late["timestamp"] == "2021-05-01T16:00:00Z"  # the day's end, as on time
        for app in late["data"]["apps"]:  # the whole day's totals, from day calls
            sends = range_counts(app["app_id"], "2021050100", "2021050123")
            assert app["request_count"] == sends["RequestCount"]


class TestRunway:
    def test_given_a_day_of_usage_and_a_low_balance_then_the_runway_fires(
        self,
        alerts_env: dict[str, str],
        emulator: Emulator,
        receiver: WebhookReceiver,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_ALERTS", '[{"metric": "package_runway_days", "below": 7}]')
        monkeypatch.setenv("SMS_STATS_COLLECT", "send")
        for hour in range(24):  # a day of usage: the runway's history
            main_handler(timer(hour, day=2), context)
        # A balance is a snapshot of now (not of the timer's hour): packages around today.
        start = int((datetime.now(timezone.utc) - timedelta(days=10)).timestamp())
        emulator.set_packages(
            APP_A,
            [
                {
                    "PackageCreateTime": start,
                    "PackageEffectiveTime": start,
                    "PackageExpiredTime": start + 400 * 86400,
                    "PackageAmount": 1000,
                    "PackageType": 1,
                    "PackageId": 1,
                    "CurrentUsage": 990,
                }
            ],
        )
        monkeypatch.setenv("SMS_STATS_COLLECT", "send,packages")
        run_twice(timer(0, day=3), context)
        fired = [n for n in notices(receiver) if n["type"] == "alert.firing"]
        (mine,) = [n for n in fired if n["data"]["app_id"] == APP_A]
        assert mine["data"]["metric"] == "package_runway_days"
        assert mine["data"]["value"] < 7
