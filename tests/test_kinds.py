"""All three statistics APIs through the real handler and the stand-in: what issue 9 promised.

Each test runs the default collection (send, receipts, balance) against its own stand-in whose
clock is pinned, with the handler's clock pinned to the same moment, so that settling receipts
and package expiry are deterministic.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.core.errors import ConfigError, SmsStatsError
from sms_stats.core.records import BalanceRecord, CallbackRecord, Package, Receipts, from_dict
from sms_stats.core.settings import load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import build_sinks
from sms_stats.deliver.webhook import message_id
from sms_stats.emulator import Emulator, Fault
from sms_stats.run.pipeline import Courier

from .conftest import (
    API_TOKEN,
    APP_A,
    APP_B,
    SECRET_ID,
    SECRET_KEY,
    Clock,
    load_event,
    pin_clock,
    record_files,
)
from .standins.bots import BotFault, BotReceiver
from .standins.webhook import Fault as HookFault
from .standins.webhook import WebhookReceiver

NOW = datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)  # 13:05 in Shanghai
TIMER = {"Type": "Timer", "TriggerName": "hourly", "Time": "2021-05-01T05:05:00Z", "Message": ""}


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
    # The six hours before the timer's are healed (72 by default: tests/test_heal.py), and the
    # stand-in sets no rate limit of its own here.
    monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "6")
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")
    return scf_env


def read(store: Path, prefix: str) -> dict[str, dict[str, Any]]:
    return {
        name: json.loads((store / name).read_text(encoding="utf-8"))
        for name in record_files(store)
        if name.startswith(prefix)
    }


def timer(at: datetime) -> dict[str, Any]:
    return {**TIMER, "Time": at.strftime("%Y-%m-%dT%H:%M:%SZ")}


class TestTimer:
    def test_given_the_default_job_when_the_timer_runs_then_three_kinds_for_every_app(
        self, env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        summary = main_handler(TIMER, context)
        assert summary["ok"] is True

        sends = read(store, "app=")
        # The last full hour and the six before it, healed over an empty store.
        hours = [f"20210501{hour:02d}" for hour in range(6, 13)]
        assert sorted(sends) == [
            f"app={app}/dt=2021-05-01/{hour}-{hour}.json"
            for app in (APP_A, APP_B)
            for hour in hours
        ]
        for record in sends.values():
            expected = Emulator.expected(
                record["sms_sdk_app_id"], record["begin_time"], record["end_time"]
            )
            assert record["request_count"] == expected["RequestCount"]
            assert record["fee_count"] == expected["FeeCount"]
        receipts = read(store, "callback/")
        assert len(receipts) == 2 * 7
        for record in receipts.values():
            expected = Emulator.expected_callback(
                record["sms_sdk_app_id"], record["begin_time"], record["end_time"], NOW
            )
            assert record["schema"] == "sms-stats-callback/v1"
            assert record["callback_count"] == expected["CallbackCount"]
            assert record["callback_success_count"] == expected["CallbackSuccessCount"]
            assert record["black_list_count"] == expected["BlackListCount"]
            assert record["pending_count"] == (
                expected["RequestSuccessCount"] - expected["CallbackCount"]
            )
            total = expected["CallbackCount"]
            rate = None if total == 0 else expected["CallbackSuccessCount"] / total
            assert record["delivery_rate"] == (
                None if rate is None else pytest.approx(rate, abs=1e-6)
            )
        balances = read(store, "packages/")
        assert sorted(balances) == [
            f"packages/app={app}/dt=2021-05-01/2021050113.json" for app in (APP_A, APP_B)
        ]
        for record in balances.values():
            packages = Emulator.expected_packages(record["sms_sdk_app_id"], NOW)
            assert record["schema"] == "sms-stats-packages/v1"
            assert record["as_of"] == "2021-05-01T13:05:00+08:00"
            assert record["remaining"] == Emulator.remaining(packages, NOW)
            assert len(record["packages"]) == len(packages)

    def test_given_an_expired_package_with_messages_left_when_balanced_then_not_counted(
        self, env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        main_handler(TIMER, context)
        (record,) = read(store, f"packages/app={APP_A}/").values()
        as_of = datetime.fromisoformat(record["as_of"])
        expired = [
            p
            for p in record["packages"]
            if datetime.fromisoformat(p["expires_at"]) <= as_of and p["remaining"] > 0
        ]
        assert expired  # the stand-in's default packages hold one
        live = [
            p
            for p in record["packages"]
            if datetime.fromisoformat(p["effective_at"])
            <= as_of
            < datetime.fromisoformat(p["expires_at"])
        ]
        assert record["remaining"] == sum(p["remaining"] for p in live)
        holding = [p for p in live if p["remaining"] > 0]
        soonest = min(holding, key=lambda p: p["expires_at"])
        assert record["next_expiry"] == soonest["expires_at"]
        assert record["next_expiry_remaining"] == soonest["remaining"]

    def test_given_1234_packages_when_balanced_then_every_page_read_once(
        self, env: dict[str, str], stand_in: Emulator, store: Path, context: dict[str, Any]
    ) -> None:
        stand_in.set_packages(APP_A, 1234)
        main_handler(TIMER, context)
        (record,) = read(store, f"packages/app={APP_A}/").values()
        packages = Emulator.expected_packages(APP_A, NOW, count=1234)
        assert len(record["packages"]) == 1234
        assert len({p["package_id"] for p in record["packages"]}) == 1234
        assert record["remaining"] == Emulator.remaining(packages, NOW)
        calls = [r for r in stand_in.requests if r["action"] == "SmsPackagesStatistics"]
        assert len([r for r in calls if r.get("app_id", APP_A) == APP_A]) >= 3

    def test_given_a_kind_the_role_may_not_call_when_run_then_the_others_still_land(
        self, env: dict[str, str], stand_in: Emulator, store: Path, context: dict[str, Any]
    ) -> None:
        denied = "UnauthorizedOperation.RequestPermissionDeny"
        stand_in.set_fault(Fault(error_code=denied, action="callback"))
        with pytest.raises(SmsStatsError) as caught:
            main_handler(TIMER, context)
        assert caught.value.code == denied  # one cause: its own code, for SCF's retry log
        assert len(read(store, "app=")) == 2 * 7  # the hour and the six healed before it
        denials = [r for r in stand_in.requests if r["code"] == denied]
        assert len(denials) == 2 * 2  # the hour, and one try at healing, per app: not 14
        assert len(read(store, "packages/")) == 2
        assert read(store, "callback/") == {}

    @pytest.mark.parametrize("paging", ["repeat", "skip", "overlap"])
    def test_given_paging_that_repeats_or_skips_when_balanced_then_no_balance_and_others_land(
        self,
        env: dict[str, str],
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
        paging: str,
    ) -> None:
        stand_in.set_packages(APP_A, 1234)
        stand_in.set_fault(Fault(paging=paging, action="packages"), APP_A)
        with pytest.raises(SmsStatsError) as caught:
            main_handler(TIMER, context)
        assert "InternalError.BadUpstreamResponse" in str(caught.value)
        assert list(read(store, "packages/")) == [
            f"packages/app={APP_B}/dt=2021-05-01/2021050113.json"
        ]
        assert len(read(store, "app=")) == 2 * 7

    @pytest.mark.parametrize(
        ("fault", "folder", "field", "rule"),
        [
            (
                Fault(
                    action="callback",
                    fields={
                        "CallbackFailCount": "0",
                        **dict.fromkeys(
                            (
                                "InternalErrorCount",
                                "InvalidNumberCount",
                                "ShutdownErrorCount",
                                "BlackListCount",
                                "FrequencyLimitCount",
                            ),
                            "1",
                        ),
                    },
                ),
                "callback/",
                "Response.CallbackStatusStatistics",
                "= 5) must not exceed CallbackFailCount (0)",
            ),
            (
                Fault(action="packages", fields={"PackageExpiredTime": "0"}),
                "packages/",
                "Response.SmsPackagesStatisticsSet.0.PackageExpiredTime",
                "must be above 0",
            ),
            (
                Fault(action="packages", fields={"PackageExpiredTime": "1000000000"}),  # 2001
                "packages/",
                "Response.SmsPackagesStatisticsSet.0.PackageExpiredTime",
                "must be after PackageEffectiveTime",
            ),
            (
                Fault(action="send", repeated={"FeeCount": "7"}),
                "",
                "Response.SendStatusStatistics.FeeCount",
                "must appear once in its object",
            ),
        ],
        ids=["reasons above failures", "expiry 0", "expiry before effect", "key twice"],
    )
    def test_given_an_answer_that_contradicts_itself_when_run_then_that_app_fails_alone(
        self,
        env: dict[str, str],
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
        fault: Fault,
        folder: str,
        field: str,
        rule: str,
    ) -> None:
        """Issue 23, item 7: each of these was stored as if true. Through the real SDK's
        signing and transport and the stand-in, the (app, kind) whose answer contradicts
        itself fails with the field, the rule, the value and the RequestId said; nothing of it
        is stored, and everything else lands."""
        stand_in.set_fault(fault, APP_A)

        with pytest.raises(SmsStatsError) as caught:
            main_handler(TIMER, context)

        assert "InternalError.BadUpstreamResponse" in str(caught.value)
        assert read(store, f"{folder}app={APP_A}/") == {}
        assert read(store, f"{folder}app={APP_B}/")
        for other in {"", "callback/", "packages/"} - {folder}:
            assert read(store, f"{other}app={APP_A}/")
        logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        bad = [line for line in logged if line.get("event") == "upstream.bad_answer"]
        assert bad
        assert {(line["app_id"], line["field"]) for line in bad} == {(APP_A, field)}
        assert all(rule in line["rule"] for line in bad)
        served = {r["request_id"] for r in stand_in.requests if r["app_id"] == APP_A}
        assert {line["upstream_request_id"] for line in bad} <= served

    def test_given_usage_above_amount_and_receipts_above_sends_when_run_then_kept_and_said(
        self,
        env: dict[str, str],
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        stand_in.set_fault(Fault(overuse=True, action="packages"), APP_A)
        stand_in.set_fault(Fault(overcount=True, action="callback"), APP_B)
        assert main_handler(TIMER, context)["ok"] is True
        odd = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if '"upstream.odd_answer"' in line
        ]
        assert {line["action"] for line in odd} == {
            "SmsPackagesStatistics",
            "CallbackStatusStatistics",
        }
        (balance,) = read(store, f"packages/app={APP_A}/").values()
        over = [p for p in balance["packages"] if p["used"] > p["amount"]]
        assert over
        assert all(p["remaining"] == 0 for p in over)
        for record in read(store, f"callback/app={APP_B}/").values():
            assert record["pending_count"] == 0


class TestSettling:
    def test_given_unchanged_receipts_when_fetched_again_then_nothing_is_sent_again(
        self,
        env: dict[str, str],
        store: Path,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with WebhookReceiver() as receiver:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            main_handler(TIMER, context)
            first = {m.headers["webhook-id"] for m in receiver.accepted}
            assert sum(m.json["kind"] == "callback" for m in receiver.accepted) == 14
            receiver.received.clear()
            main_handler(TIMER, context)  # SCF's retry, or the same hour again: same counts
            kinds = [m.json["kind"] for m in receiver.accepted]
        assert "callback" not in kinds
        # Sends and balances come again under the same ids: receivers drop them as repeats.
        assert all(
            m.headers["webhook-id"] in first for m in receiver.accepted if m.json["kind"] == "send"
        )

    def test_given_receipts_that_settled_when_the_next_hour_runs_then_a_correction_with_new_ids(
        self,
        env: dict[str, str],
        clock: Clock,
        store: Path,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with WebhookReceiver() as receiver:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            main_handler(TIMER, context)
            before = {
                m.json["records"][0]["begin_time"]: m.headers["webhook-id"]
                for m in receiver.accepted
                if m.json["kind"] == "callback" and m.json["records"][0]["sms_sdk_app_id"] == APP_A
            }
            receiver.received.clear()
            clock.now = NOW + timedelta(hours=1)
            main_handler(timer(clock.now), context)
            after = {
                m.json["records"][0]["begin_time"]: m.headers["webhook-id"]
                for m in receiver.accepted
                if m.json["kind"] == "callback" and m.json["records"][0]["sms_sdk_app_id"] == APP_A
            }
        again = set(before) & set(after)
        assert again  # hours still settling were told again...
        assert all(before[hour] != after[hour] for hour in again)  # ...as corrections
        for hour in set(before) - set(after) - {min(before)}:  # settled: not told again
            stored = read(store, f"callback/app={APP_A}/dt=2021-05-01/{hour}-{hour}")
            assert len(stored) == 1


class TestHttp:
    def test_given_kind_callback_when_queried_then_receipts_answered(
        self, env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        event["queryString"] = {**event["queryString"], "kind": "callback"}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200, answer["body"]
        (record,) = json.loads(answer["body"])["records"]
        assert record["schema"] == "sms-stats-callback/v1"
        assert record["begin_time"] == "2021050113"

    def test_given_a_kind_that_is_not_a_query_when_queried_then_400_naming_it(
        self, env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        event["queryString"] = {**event["queryString"], "kind": "packages"}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 400
        assert "GET /balance" in json.loads(answer["body"])["error"]["message"]

    def test_given_receipts_over_33_days_when_queried_then_refused_before_any_call(
        self,
        env: dict[str, str],
        stand_in: Emulator,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setenv("SMS_STATS_MAX_SPAN_HOURS", str(50 * 24))
        event = load_event("function_url_get.json")
        event["queryString"] = {
            "app_id": APP_A,
            "begin": "2021032000",
            "end": "2021042923",
            "kind": "callback",
        }
        answer = main_handler(event, context)
        assert answer["statusCode"] == 400
        assert "32 days" in json.loads(answer["body"])["error"]["message"]
        assert stand_in.requests == []

    def test_given_balance_path_when_queried_then_a_snapshot_per_app(
        self, env: dict[str, str], context: dict[str, Any]
    ) -> None:
        event = {
            "httpMethod": "GET",
            "path": "/balance",
            "headers": {"authorization": f"Bearer {API_TOKEN}"},
            "queryString": {"app_id": f"{APP_A},{APP_B}"},
            "body": "",
        }
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200, answer["body"]
        records = json.loads(answer["body"])["records"]
        assert [r["sms_sdk_app_id"] for r in records] == [APP_A, APP_B]
        assert records[0]["remaining"] == Emulator.remaining(
            Emulator.expected_packages(APP_A, NOW), NOW
        )

    def test_given_balance_without_a_token_when_queried_then_401_as_stats(
        self, env: dict[str, str], stand_in: Emulator, context: dict[str, Any]
    ) -> None:
        event = {
            "httpMethod": "GET",
            "path": "/balance",
            "headers": {},
            "queryString": {"app_id": APP_A},
        }
        assert main_handler(event, context)["statusCode"] == 401
        assert stand_in.requests == []


def test_given_each_kind_layout_when_read_by_duckdb_then_hive_partitions_without_glue(
    env: dict[str, str], store: Path, context: dict[str, Any]
) -> None:
    main_handler(TIMER, context)
    receipts = duckdb.sql(
        f"SELECT app, count(*), sum(callback_count) FROM read_json_auto("
        f"'{store}/callback/app=*/dt=*/*.json', hive_partitioning = true) GROUP BY app ORDER BY app"
    ).fetchall()
    assert [(str(app), n) for app, n, _ in receipts] == [(APP_A, 7), (APP_B, 7)]
    balance = duckdb.sql(
        f"SELECT app, remaining FROM read_json_auto('{store}/packages/app=*/dt=*/*.json', "
        "hive_partitioning = true) ORDER BY app"
    ).fetchall()
    assert [str(app) for app, _ in balance] == [APP_A, APP_B]


def test_given_a_chat_bot_when_the_timer_runs_then_the_hour_sends_and_receipts_only(
    env: dict[str, str],
    store: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quiet until it matters: settling corrections and an hourly balance stay out of the chat
    (stores and webhooks get them); a person reads two messages an hour."""
    with BotReceiver() as bots:
        bot = bots.url("wecom", notify="records,alerts,digest")  # the old default: every hour
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{bot}")
        assert main_handler(TIMER, context)["ok"] is True
        texts = [m.payload["markdown"]["content"] for m in bots.messages("wecom")]
    assert sorted(text.split("\n")[0] for text in texts) == [
        "**SMS delivery receipts**",  # batches go out as they complete: either may come first
        "**SMS delivery stats**",
    ]
    assert all("2021-05-01 12:00\u201313:00" in text for text in texts)
    assert len(read(store, "callback/")) == 14  # the corrections are stored all the same


def test_given_receipts_backfilled_when_gaps_checked_per_kind_then_each_layout_counts_alone(
    env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from sms_stats.cli import main

    args = ["--app-id", APP_A, "--from", "2021042900", "--to", "2021042923"]
    assert main(["backfill", *args, "--kind", "callback", "--by", "day"]) == 0
    assert main(["backfill", *args, "--kind", "callback"]) == 0
    capsys.readouterr()
    assert main(["gaps", *args, "--kind", "callback"]) == 0
    assert main(["gaps", *args, "--kind", "callback", "--by", "day"]) == 0
    assert main(["gaps", *args]) == 1  # no sends were backfilled
    assert "24 hour(s) missing" in capsys.readouterr().err
    assert len(read(store, f"callback/app={APP_A}/")) == 24
    assert len(read(store, f"daily/callback/app={APP_A}/")) == 1


def test_given_no_packages_when_balanced_then_nothing_left_and_no_expiry(
    env: dict[str, str], stand_in: Emulator, store: Path, context: dict[str, Any]
) -> None:
    stand_in.set_packages(APP_A, [])
    assert main_handler(TIMER, context)["ok"] is True
    (record,) = read(store, f"packages/app={APP_A}/").values()
    assert record["packages"] == []
    assert (record["remaining"], record["next_expiry"], record["next_expiry_remaining"]) == (
        0,
        None,
        None,
    )


def test_given_an_app_outside_the_allowlist_when_its_balance_is_asked_then_403_before_a_call(
    env: dict[str, str], stand_in: Emulator, context: dict[str, Any]
) -> None:
    event = {
        "httpMethod": "GET",
        "path": "/balance",
        "headers": {"authorization": f"Bearer {API_TOKEN}"},
        "queryString": {"app_id": "1400009999"},
    }
    answer = main_handler(event, context)
    assert answer["statusCode"] == 403
    assert stand_in.requests == []


# Found by a review of the receipts and balance work, each with the failure it reproduced.

HOUR = Window.from_api("2021050110", "2021050110", zone("Asia/Shanghai"))
T0 = int(datetime(2021, 1, 1, tzinfo=timezone.utc).timestamp())


def receipts(app: str, received: int, fetched_hour: int) -> CallbackRecord:
    counts = Receipts(100, received, received, 0, 0, 0, 0, 0, 0, f"rid-{app}-{received}")
    fetched = datetime(2021, 5, 1, fetched_hour, 5, tzinfo=timezone.utc)
    return CallbackRecord(app, HOUR, "Asia/Shanghai", counts, fetched)


@pytest.fixture(autouse=True)
def _no_backoff(mocker: MockerFixture) -> None:
    mocker.patch("sms_stats.deliver.transport.time.sleep")


class TestOutbox:
    def test_given_an_older_fetch_still_owed_when_a_newer_one_came_then_never_sent_after_it(
        self, scf_env: dict[str, str], store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with WebhookReceiver() as receiver:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            sinks = build_sinks(load_settings())
            receiver.fault = HookFault(status=503)  # 11:05: the webhook is down
            Courier(sinks, None).deliver([receipts(APP_A, 50, 3), receipts(APP_B, 50, 3)])
            receiver.fault = None
            receiver.received.clear()
            courier = Courier(sinks, None)  # 12:05: A settled further, B did not
            courier.deliver([receipts(APP_A, 80, 4), receipts(APP_B, 50, 4)], chat=False)
            courier.drain([])
            told = [
                (m.json["records"][0]["sms_sdk_app_id"], m.json["records"][0]["callback_count"])
                for m in receiver.accepted
            ]
        assert [count for app, count in told if app == APP_A] == [80]  # the stale 50 never
        assert (APP_B, 50) in told  # B's first (and only) counts are still owed, and sent
        assert json.loads((store / receipts(APP_A, 80, 4).key).read_text())["callback_count"] == 80
        assert not list(store.glob("_outbox/*.json"))

    def test_given_a_chat_owed_receipts_when_they_settle_then_it_gets_the_newer_ones(
        self, scf_env: dict[str, str], store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        with BotReceiver() as bots:
            bot = bots.url("wecom", notify="records")
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{bot}")
            sinks = build_sinks(load_settings())
            bots.set_fault("wecom", BotFault(http_status=503))
            Courier(sinks, None).deliver([receipts(APP_A, 50, 3), receipts(APP_B, 50, 3)])
            bots.clear_faults()
            courier = Courier(sinks, None)
            courier.deliver([receipts(APP_A, 80, 4), receipts(APP_B, 60, 4)], chat=False)
            courier.drain([])
            (message,) = bots.messages("wecom")
        text = message.payload["markdown"]["content"]
        assert "receipts 80" in text
        assert "receipts 60" in text

    def test_given_a_chat_owed_receipts_when_only_some_apps_changed_then_one_message_with_all(
        self, scf_env: dict[str, str], store: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Issue 23, item 7: the re-fetch told only A (B had not changed), and the chat that
        was down then got a message with B alone; A was lost from that hour's message."""
        with BotReceiver() as bots:
            bot = bots.url("wecom", notify="records")
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{bot}")
            sinks = build_sinks(load_settings())
            bots.set_fault("wecom", BotFault(http_status=503))
            Courier(sinks, None).deliver([receipts(APP_A, 50, 3), receipts(APP_B, 50, 3)])
            bots.clear_faults()
            courier = Courier(sinks, None)
            courier.deliver([receipts(APP_A, 80, 4), receipts(APP_B, 50, 4)], chat=False)
            courier.drain([])
            (message,) = bots.messages("wecom")
        text = message.payload["markdown"]["content"]
        assert APP_A in text
        assert APP_B in text
        assert "receipts 80" in text  # A's newest counts, never the stale 50
        assert "receipts 50" in text  # B's, unchanged
        assert not list(store.glob("_outbox/*.json"))


class TestBalance:
    def test_given_a_package_expiring_at_the_end_of_time_when_balanced_then_refused_alone(
        self, env: dict[str, str], store: Path, context: dict[str, Any], stand_in: Emulator
    ) -> None:
        end_of_time = 253402300799  # 9999-12-31T23:59:59Z: past the year 9999 at +08:00
        package = {
            "PackageId": 1,
            "PackageType": 1,
            "PackageAmount": 100,
            "CurrentUsage": 1,
            "PackageCreateTime": T0,
            "PackageEffectiveTime": T0,
            "PackageExpiredTime": end_of_time,
        }
        stand_in.set_packages(APP_A, [package])
        with pytest.raises(SmsStatsError) as caught:
            main_handler(TIMER, context)
        assert "InternalError.BadUpstreamResponse" in str(caught.value)
        assert "PackageExpiredTime" in str(caught.value)
        assert list(read(store, "packages/")) == [
            f"packages/app={APP_B}/dt=2021-05-01/2021050113.json"
        ]

    def test_given_an_scf_retry_a_minute_later_when_balanced_then_the_same_ids(
        self,
        env: dict[str, str],
        store: Path,
        context: dict[str, Any],
        clock: Clock,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with WebhookReceiver() as receiver:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            main_handler(TIMER, context)
            first = {
                m.headers["webhook-id"] for m in receiver.accepted if m.json["kind"] == "packages"
            }
            receiver.received.clear()
            clock.now = NOW + timedelta(minutes=1)
            main_handler(TIMER, context)
            again = {
                m.headers["webhook-id"] for m in receiver.accepted if m.json["kind"] == "packages"
            }
        assert len(first) == 2
        assert again == first

    def test_given_a_balance_query_when_answered_then_nothing_posted_or_stored(
        self,
        env: dict[str, str],
        store: Path,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        with BotReceiver() as bots:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{bots.url('wecom')}")
            event = {
                "httpMethod": "GET",
                "path": "/balance",
                "headers": {"authorization": f"Bearer {API_TOKEN}"},
                "queryString": {"app_id": APP_A},
            }
            assert main_handler(event, context)["statusCode"] == 200
            assert bots.messages("wecom") == []
        assert record_files(store) == []

    def test_given_a_dst_zone_when_a_balance_reads_back_then_the_same_text_and_id(self) -> None:
        utc = timezone.utc
        winter = datetime(2021, 1, 10, tzinfo=utc)
        summer = datetime(2021, 7, 10, tzinfo=utc)
        as_of = datetime(2021, 7, 1, 9, 5, tzinfo=zone("America/New_York"))
        record = BalanceRecord(
            APP_A, as_of, (Package(1, True, 10, 1, winter, winter, summer),), "r", as_of
        )
        again = from_dict(json.loads(json.dumps(record.to_dict())))
        assert again.to_dict() == record.to_dict()
        assert message_id(again) == message_id(record)


def test_given_a_kind_the_role_may_not_call_when_refused_then_the_message_names_the_action(
    env: dict[str, str], context: dict[str, Any], stand_in: Emulator
) -> None:
    stand_in.set_fault(
        Fault(error_code="UnauthorizedOperation.RequestPermissionDeny", action="packages")
    )
    with pytest.raises(SmsStatsError) as caught:
        main_handler(TIMER, context)
    assert "SmsPackagesStatistics: " in caught.value.message
    assert "needs sms:SmsPackagesStatistics" in caught.value.message
    assert "SMS_STATS_COLLECT" in caught.value.message


def test_given_two_stores_when_a_run_comes_in_another_zone_then_each_store_is_checked(
    scf_env: dict[str, str],
    tmp_path: Path,
    context: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first, second = tmp_path / "one", tmp_path / "two"
    second.mkdir()
    (second / "_store.json").write_text('{"timezone": "UTC", "layout": 2}')
    monkeypatch.setenv("SMS_STATS_SINKS", f"file://{first},file://{second}")
    with pytest.raises(ConfigError, match="holds hours named in UTC"):
        main_handler(TIMER, context)
