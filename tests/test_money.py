"""Money and fraud: the month to date exactly, a forecast that follows the app's own week, and a
surge rule the ordinary rhythm never fires. The figures are the local stand-in's: app
1400009042 sends with an office rhythm (business hours tenfold the night, weekends a third).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pytest_mock import MockerFixture

from sms_stats.alerts.engine import judge
from sms_stats.alerts.state import State
from sms_stats.core.records import Counts, Record
from sms_stats.core.rules import SURGE_MIN_VOLUME, SURGE_RATIO, rules_in_force
from sms_stats.core.windows import Window, zone
from sms_stats.core.windows import format_hour as label_of
from sms_stats.emulator import Emulator
from sms_stats.handler import main_handler
from sms_stats.money import history, summary
from sms_stats.money.forecast import month_forecast, usual, volume_ratio
from sms_stats.money.update import Money
from sms_stats.store.file import FileSink

from .conftest import API_TOKEN, SECRET_ID, SECRET_KEY

SHANGHAI = zone("Asia/Shanghai")
APP = "1400009042"  # a rhythm app of the stand-in
FETCHED = datetime(2026, 4, 2, tzinfo=timezone.utc)


def hour_counts(hour: datetime, surges: Any = ()) -> tuple[int, int]:
    counts = Emulator.counts(APP, label_of(hour), surges)
    return counts["RequestCount"], counts["FeeCount"]


def hours_of(first: datetime, last: datetime) -> Iterator[datetime]:
    hour = first
    while hour <= last:
        yield hour
        hour += timedelta(hours=1)


class TestForecast:
    """The forecast against the month's real total, at every hour from the 8th day on."""

    @pytest.mark.parametrize(
        ("month", "history_weeks"),
        [((2026, 3), 4), ((2026, 2), 4), ((2026, 3), 0)],
        ids=["31 days, 4 weeks known", "28 days, 4 weeks known", "31 days, deployed on the 1st"],
    )
    def test_given_an_office_rhythm_when_forecast_from_the_8th_day_then_within_5_percent(
        self, month: tuple[int, int], history_weeks: int
    ) -> None:
        first = datetime(month[0], month[1], 1)
        last = (first + timedelta(days=32)).replace(day=1) - timedelta(hours=1)
        known = {
            label_of(h): hour_counts(h)
            for h in hours_of(first - timedelta(weeks=history_weeks), last)
        }
        total = sum(known[label_of(h)][1] for h in hours_of(first, last))
        worst, naive_worst, to_date = 0.0, 0.0, 0
        hours = {k: v for k, v in known.items() if k < label_of(first)}
        for hour in hours_of(first, last):
            label = label_of(hour)
            hours[label] = known[label]
            to_date += known[label][1]
            if hour < first + timedelta(days=7):
                continue
            forecast = month_forecast(hours, label, to_date, label_of(last))
            worst = max(worst, abs(forecast - total) / total)
            elapsed = (hour - first) / timedelta(hours=1) + 1
            naive = to_date / elapsed * ((last - first) / timedelta(hours=1) + 1)
            naive_worst = max(naive_worst, abs(naive - total) / total)
        assert worst <= 0.05, f"worst error {worst:.2%}"
        assert naive_worst > worst  # the month's average, extrapolated, misses more

    def test_given_the_months_last_hour_then_the_forecast_is_the_month_to_date(self) -> None:
        assert month_forecast({}, "2026033123", 1234, "2026033123") == 1234


class TestVolumeRatio:
    def test_given_fewer_than_two_weeks_known_then_no_usual_volume(self) -> None:
        hour = datetime(2026, 3, 16, 9)
        one_week = {label_of(hour - timedelta(weeks=1)): (1000, 1100)}
        assert usual(one_week, label_of(hour)) is None
        assert volume_ratio(one_week, label_of(hour), 20_000) is None

    def test_given_four_weeks_with_one_surge_then_the_usual_range_ignores_it(self) -> None:
        hour = datetime(2026, 3, 30, 3)
        weeks = {
            label_of(hour - timedelta(weeks=w)): (v, v)
            for w, v in enumerate((100, 2000, 110, 90), 1)
        }
        # median 105, deviations 5, 1895, 5, 15 (their median 10): the top of the range 135
        assert usual(weeks, label_of(hour)) == 135
        assert volume_ratio(weeks, label_of(hour), 270) == 2.0

    def test_given_a_silent_slot_then_a_surge_into_it_is_still_a_multiple(self) -> None:
        hour = datetime(2026, 3, 30, 3)
        weeks = {label_of(hour - timedelta(weeks=w)): (0, 0) for w in (1, 2, 3)}
        assert volume_ratio(weeks, label_of(hour), 500) == 500.0


def send_record(hour: datetime, counts: tuple[int, int]) -> Record:
    start = hour.replace(tzinfo=SHANGHAI)
    requests, fee = counts
    return Record(
        APP,
        Window(start, start + timedelta(hours=1)),
        "Asia/Shanghai",
        Counts(requests, requests, max(fee, requests), "req"),
        FETCHED,
    )


class TestSurgeRule:
    """The default surge rule, judged hour by hour as the timer does, on 28 days of the office
    rhythm (a Monday 09:00 ramp tenfold over 08:00, three-fold over Sunday 09:00) and then a
    20-fold surge of two night hours."""

    def test_given_28_days_of_rhythm_then_a_20_fold_surge_fires_once_and_resolves_once(
        self,
    ) -> None:
        rules = [r for r in rules_in_force(None) if r.metric == "volume_ratio"]
        state = State()
        hours: dict[str, tuple[int, int]] = {}
        start = datetime(2026, 3, 2)  # a Monday
        surge_from = start + timedelta(days=30, hours=3)  # Wednesday 1 April, 03:00
        told: list[tuple[str, str]] = []
        for hour in hours_of(start, start + timedelta(days=31)):
            surged = surge_from <= hour < surge_from + timedelta(hours=2)
            counts = hour_counts(hour)
            if surged:
                counts = (counts[0] * 20, counts[1] * 20)
            label = label_of(hour)
            money = {APP: Money(None, dict(hours))}
            for notice in judge(rules, [send_record(hour, counts)], state, "Asia/Shanghai", money):
                told.append((label, notice.type))
            hours[label] = counts
            if hour < surge_from:
                assert not told, f"the ordinary rhythm fired at {label}"
        # Resolved at the first hour after it that is judged: the night's quiet hours (under
        # the rule's min_volume) change nothing, as for every rule.
        after = surge_from + timedelta(hours=2)
        while hour_counts(after)[0] < SURGE_MIN_VOLUME:
            after += timedelta(hours=1)
        assert told == [(label_of(surge_from), "alert.firing"), (label_of(after), "alert.resolved")]

    def test_given_the_rhythm_then_the_ordinary_ratio_stays_far_below_the_threshold(self) -> None:
        start = datetime(2026, 3, 2)
        known = {label_of(h): hour_counts(h) for h in hours_of(start, start + timedelta(days=56))}
        ratios = [
            ratio
            for h in hours_of(start + timedelta(days=14), start + timedelta(days=56))
            if (ratio := volume_ratio(known, label_of(h), known[label_of(h)][0])) is not None
        ]
        assert len(ratios) == 42 * 24 + 1
        assert max(ratios) < 1.5 < 4.0  # the default threshold: SURGE_RATIO

    def test_given_an_app_whose_hours_swing_widely_then_its_swings_are_no_surge(self) -> None:
        """The stand-in's uniform apps: 1 to 2,000 requests an hour at random, one hour in
        twelve silent. Against the median alone they "surged" 5 times a month."""
        app = "1400006874"
        start = datetime(2026, 3, 2)
        known = {}
        for h in hours_of(start, start + timedelta(days=56)):
            counts = Emulator.counts(app, label_of(h))
            known[label_of(h)] = (counts["RequestCount"], counts["FeeCount"])
        fired = [
            label
            for h in hours_of(start + timedelta(days=14), start + timedelta(days=56))
            if known[label := label_of(h)][0] >= SURGE_MIN_VOLUME
            and (volume_ratio(known, label, known[label][0]) or 0) > SURGE_RATIO
        ]
        assert fired == []


class TestHistory:
    def test_given_a_history_with_a_string_count_then_it_is_refused(self) -> None:
        bad = {"schema": history.SCHEMA, "sms_sdk_app_id": APP, "hours": {"2026030109": ["1", 2]}}
        with pytest.raises(ValueError, match="not a count"):
            history.parse(APP, json.dumps(bad).encode())

    def test_given_another_apps_history_then_it_is_refused(self) -> None:
        other = history.History("1400009001", {"2026030109": (1, 1)}).to_bytes()
        with pytest.raises(ValueError, match="another app"):
            history.parse(APP, other)


# -- through the handler, against the stand-in ----------------------------------------------


@pytest.fixture
def standin() -> Iterator[Emulator]:
    with Emulator(credentials={SECRET_ID: SECRET_KEY}) as emulator:
        yield emulator


@pytest.fixture
def env(
    scf_env: dict[str, str], standin: Emulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("SMS_STATS_ENDPOINT", standin.endpoint)
    monkeypatch.setenv("SMS_STATS_APP_IDS", APP)
    monkeypatch.delenv("SMS_STATS_ALERTS")  # the defaults: the money step runs with them
    monkeypatch.setenv("SMS_STATS_BUDGETS", json.dumps({APP: 900_000}))
    monkeypatch.setenv("SMS_STATS_PRICE_PER_PART", "0.045")
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")
    return scf_env


def timer(at: datetime, mocker: MockerFixture, context: dict[str, Any]) -> dict[str, Any]:
    mocker.patch("sms_stats.handler.utcnow", return_value=at)
    utc = at.astimezone(timezone.utc)
    event = {"Type": "Timer", "TriggerName": "t", "Time": utc.strftime("%Y-%m-%dT%H:%M:%SZ")}
    answer: dict[str, Any] = main_handler({**event, "Message": ""}, context)
    return answer


def month_calls(emulator: Emulator, since: int = 0) -> list[dict[str, Any]]:
    return [
        r
        for r in emulator.requests[since:]
        if r["action"] == "SendStatusStatistics" and r.get("begin", "").endswith("010100")
    ]


def read_summary(store: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((store / summary.KEY).read_text(encoding="utf-8"))
    return data


class TestThroughTheHandler:
    def test_given_timer_runs_then_month_to_date_is_the_sum_of_the_months_hours_exactly(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
    ) -> None:
        at = datetime(2026, 3, 18, 10, 5, tzinfo=SHANGHAI)  # the 10:00 run: 09:00 is its hour
        timer(at, mocker, context)
        entry = read_summary(store)["apps"][APP]
        exact = Emulator.expected(APP, "2026030100", "2026031809")["FeeCount"]
        assert (entry["month"], entry["through"]) == ("2026-03", "2026031809")
        assert entry["month_to_date_fee_count"] == exact
        assert entry["monthly_budget_fee_count"] == 900_000
        assert entry["month_forecast_fee_count"] > exact
        before = len(standin.requests)
        timer(at + timedelta(hours=1), mocker, context)  # the next hour: no range call again
        assert month_calls(standin, before) == []
        entry = read_summary(store)["apps"][APP]
        assert (
            entry["month_to_date_fee_count"]
            == exact + Emulator.counts(APP, "2026031810")["FeeCount"]
        )

    def test_given_a_summary_then_metrics_show_the_month_the_budget_and_the_cost(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
    ) -> None:
        timer(datetime(2026, 3, 18, 10, 5, tzinfo=SHANGHAI), mocker, context)
        entry = read_summary(store)["apps"][APP]
        answer = main_handler(
            {
                "httpMethod": "GET",
                "path": "/metrics",
                "headers": {"authorization": f"Bearer {API_TOKEN}"},
                "queryString": {},
            },
            context,
        )
        body = answer["body"]
        labels = f'app_id="{APP}",month="2026-03"'
        assert (
            f"sms_month_to_date_fee_count{{{labels}}} {entry['month_to_date_fee_count']}\n" in body
        )
        assert (
            f"sms_month_forecast_fee_count{{{labels}}} {entry['month_forecast_fee_count']}\n"
            in body
        )
        assert f'sms_monthly_budget_fee_count{{app_id="{APP}"}} 900000\n' in body
        cost = float(entry["month_to_date_fee_count"]) * 0.045
        line = next(x for x in body.splitlines() if x.startswith("sms_month_to_date_cost{"))
        assert 'currency="CNY"' in line
        assert float(line.rsplit(" ", 1)[1]) == pytest.approx(cost)

    def test_given_a_20_fold_night_surge_then_one_firing_then_its_resolve(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        surge = datetime(2026, 4, 1, 3)  # Wednesday, 03:00
        weeks = hours_of(surge - timedelta(weeks=4), surge - timedelta(hours=1))
        known = history.History(APP, {label_of(h): hour_counts(h) for h in weeks}, changed=True)
        history.save(FileSink(store, name="file:test"), known, None)
        standin.add_surge(APP, label_of(surge), 2, 20)
        (rule,) = [r for r in rules_in_force(None) if r.metric == "volume_ratio"]
        told = []
        after = 2  # the first hour after the surge that is judged (not a quiet night hour)
        while hour_counts(surge + timedelta(hours=after))[0] < SURGE_MIN_VOLUME:
            after += 1
        for step in range(after + 2):  # the run at 04:05 judges 03:00, and so on
            capsys.readouterr()
            at = (surge + timedelta(hours=step + 1, minutes=5)).replace(tzinfo=SHANGHAI)
            timer(at, mocker, context)
            lines = [json.loads(x) for x in capsys.readouterr().out.splitlines() if x[:1] == "{"]
            told += [
                (step, x["type"])
                for x in lines
                if x.get("event") == "alert.notice" and x["id"].startswith(f"alert_{rule.ident}_")
            ]
        assert told == [(0, "alert.firing"), (after, "alert.resolved")]


class TestUnusedAtExpiry:
    def test_given_a_package_that_expires_before_its_messages_are_used_then_the_rest_is_said(
        self,
    ) -> None:
        from sms_stats.core.records import BalanceRecord, Package
        from sms_stats.core.rules import Rule

        day = datetime(2026, 3, 1, tzinfo=SHANGHAI)
        state = State()
        for h in range(24):  # 1,200 billed parts a day
            judge([], [send_record(datetime(2026, 3, 1, h), (50, 50))], state, "Asia/Shanghai")
        as_of = day + timedelta(hours=24, minutes=5)
        soon = Package(1, True, 10_000, 4_000, day, day, as_of + timedelta(days=2))
        later = Package(2, True, 50_000, 0, day, day, as_of + timedelta(days=300))
        balance = BalanceRecord(APP, as_of, (soon, later), "rid", as_of)
        rule = Rule(metric="package_unused_at_expiry", above=0)
        (notice,) = judge([rule], [balance], state, "Asia/Shanghai")
        assert notice.data["value"] == 6_000 - 2 * 1_200  # what two days at this pace leave
        assert notice.type == "alert.firing"


class TestSettings:
    @pytest.mark.parametrize(
        ("name", "value", "says"),
        [
            ("SMS_STATS_BUDGETS", '{"14000": 100}', "'14000' is not an SmsSdkAppId"),
            ("SMS_STATS_BUDGETS", '{"1400006874": -5}', "whole number of billed parts"),
            ("SMS_STATS_BUDGETS", '{"1400006874": 1.5}', "whole number of billed parts"),
            ("SMS_STATS_BUDGETS", "[1, 2]", "must be an object of app id"),
            ("SMS_STATS_BUDGETS", "{", "is not JSON"),
            ("SMS_STATS_PRICE_PER_PART", "4.5 yuan", "must be a decimal number like 0.045"),
            ("SMS_STATS_PRICE_PER_PART", "450", "at most 100 a part"),
            ("SMS_STATS_PRICE_PER_PART", "NaN", "above 0"),
            ("SMS_STATS_CURRENCY", "yuan", "three-letter code"),
        ],
    )
    def test_given_a_bad_money_setting_then_it_is_named_with_the_rule(
        self, name: str, value: str, says: str
    ) -> None:
        from sms_stats.core.errors import ConfigError
        from sms_stats.core.settings import load_settings

        with pytest.raises(ConfigError) as caught:
            load_settings({name: value})
        assert f"{name}: " in caught.value.message
        assert says in caught.value.message

    def test_given_budgets_then_an_apps_own_wins_over_the_star(self) -> None:
        from sms_stats.core.settings import load_settings

        settings = load_settings(
            {
                "SMS_STATS_BUDGETS": '{"*": 1000, "1400006874": 5}',
                "SMS_STATS_PRICE_PER_PART": "0.045",
            }
        )
        assert (settings.budget_of("1400006874"), settings.budget_of("1400006875")) == (5, 1000)
        assert str(settings.price_per_part) == "0.045"
        assert hash(settings)  # still a cache key


class TestDigest:
    def test_given_the_digest_then_the_month_so_far_forecast_budget_and_cost(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        from .standins.webhook import WebhookReceiver

        with WebhookReceiver(secret="whsec_" + "A" * 32) as hook:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{hook.url}")
            monkeypatch.setenv("SMS_STATS_WEBHOOK_SECRET", "whsec_" + "A" * 32)
            timer(datetime(2026, 3, 18, 9, 5, tzinfo=SHANGHAI), mocker, context)
            (digest,) = [
                json.loads(r.body)
                for r in hook.received
                if json.loads(r.body).get("type") == "digest.daily"
            ]
        (app,) = digest["data"]["apps"]
        to_date = Emulator.expected(APP, "2026030100", "2026031723")["FeeCount"]
        assert app["month_to_date_fee_count"] == to_date
        assert app["monthly_budget_fee_count"] == 900_000
        assert app["month_forecast_fee_count"] >= to_date
        assert app["month_to_date_cost"] == round(to_date * 0.045, 2)
        assert app["currency"] == "CNY"

    def test_given_a_digest_with_money_then_the_chat_message_says_it(self) -> None:
        from sms_stats.deliver.chat.notices import digest

        app = {
            "app_id": APP,
            "request_count": 10,
            "month_to_date_fee_count": 123_456,
            "month_to_date_cost": 5555.52,
            "currency": "CNY",
            "month_forecast_fee_count": 400_000,
            "monthly_budget_fee_count": 350_000,
        }
        said = digest({"date": "2026-03-17", "apps": [app]}, "Asia/Shanghai")
        cells = said.rows[0].cells
        assert "month so far 123,456 (CNY 5,555.52)" in cells
        assert "month forecast 400,000" in cells
        assert "budget 350,000" in cells


class TestSeeding:
    def test_given_a_backfilled_month_when_the_first_timer_runs_then_its_history_holds_it(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A deployment that backfilled its last weeks judges surges by its week at once."""
        monkeypatch.setenv("SMS_STATS_ALERTS", "[]")  # a backfill by hand: no money step
        at = datetime(2026, 3, 18, 10, 0, tzinfo=SHANGHAI)
        mocker.patch("sms_stats.handler.utcnow", return_value=at)
        assert main_handler({"window": "hour", "lookback": 9 * 24}, context)["ok"]
        monkeypatch.delenv("SMS_STATS_ALERTS")
        timer(datetime(2026, 3, 18, 10, 5, tzinfo=SHANGHAI), mocker, context)
        held = history.parse(APP, (store / history.key(APP)).read_bytes())
        assert held.seeded
        assert len(held.hours) >= 9 * 24  # the backfilled hours, and the run's own
        assert held.hours["2026031109"] == hour_counts(datetime(2026, 3, 11, 9))

    def test_given_more_apps_than_a_run_seeds_then_the_next_runs_seed_the_rest(
        self,
        env: dict[str, str],
        standin: Emulator,
        store: Path,
        mocker: MockerFixture,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        other = "1400009043"
        monkeypatch.setenv("SMS_STATS_APP_IDS", f"{APP},{other}")
        monkeypatch.setattr("sms_stats.money.update.SEEDS_PER_RUN", 1)
        at = datetime(2026, 3, 18, 10, 5, tzinfo=SHANGHAI)
        timer(at, mocker, context)
        seeded = [
            history.parse(a, (store / history.key(a)).read_bytes()).seeded for a in (APP, other)
        ]
        assert sorted(seeded) == [False, True]
        timer(at + timedelta(hours=1), mocker, context)
        assert all(
            history.parse(a, (store / history.key(a)).read_bytes()).seeded for a in (APP, other)
        )


class TestDryRun:
    def test_given_stored_weeks_and_a_surge_when_replayed_then_the_surge_rule_fires_once(
        self,
    ) -> None:
        """`sms-stats alerts dry-run` judges the surge rule as the timer does: the weeks before
        the range are its history."""
        from sms_stats.alerts.replay import HISTORY_DAYS, replay

        start = datetime(2026, 4, 1)
        surge = start + timedelta(hours=3)
        records = []
        for hour in hours_of(start - timedelta(days=HISTORY_DAYS), start + timedelta(hours=23)):
            counts = hour_counts(hour)
            if surge <= hour < surge + timedelta(hours=2):
                counts = (counts[0] * 20, counts[1] * 20)
            records.append(send_record(hour, counts))
        rules = [r for r in rules_in_force(None) if r.metric == "volume_ratio"]
        notices = replay(rules, records, start.replace(tzinfo=SHANGHAI), "Asia/Shanghai")
        assert [n.type for n in notices] == ["alert.firing", "alert.resolved"]
        assert notices[0].data["window_start"].startswith("2026-04-01T03:00")
