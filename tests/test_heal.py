"""The 72 hours before a timer's hour, whole and settled (issue 23, items 2, 3 and 5a).

Every test drives the real handler against its own stand-in, on loopback, with the stand-in's
clock and the handler's pinned to the same moment: receipts settle by the clock, so what
changed between two runs is exactly what a test made change. The cost of healing is read from
the stand-in's request log, as the API would bill it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.cli import main as cli
from sms_stats.core.errors import SmsStatsError
from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, APP_B, SECRET_ID, SECRET_KEY, Clock, pin_clock, record_files
from .standins.webhook import WebhookReceiver

START = datetime(2021, 5, 10, 5, 5, tzinfo=timezone.utc)  # 13:05 in Shanghai
SHANGHAI = timezone(timedelta(hours=8))


@pytest.fixture
def clock(mocker: MockerFixture) -> Clock:
    return pin_clock(mocker, START)


@pytest.fixture
def steady(clock: Clock) -> Iterator[Emulator]:
    """An account whose receipts all arrive when their hour ends: stored hours never change
    unless a test adds receipts to them."""
    with Emulator(
        credentials={SECRET_ID: SECRET_KEY}, clock=clock, settle_after=timedelta(0)
    ) as emulator:
        yield emulator


@pytest.fixture
def env(
    scf_env: dict[str, str], steady: Emulator, monkeypatch: pytest.MonkeyPatch
) -> dict[str, str]:
    monkeypatch.setenv("SMS_STATS_ENDPOINT", steady.endpoint)
    monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback")
    monkeypatch.delenv("SMS_STATS_SETTLE_HOURS")  # the default: 72
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")  # the stand-in sets none of its own
    return scf_env


def timer(at: datetime) -> dict[str, Any]:
    return {
        "Type": "Timer",
        "TriggerName": "hourly",
        "Time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "Message": "",
    }


def run(clock: Clock, context: dict[str, Any], at: datetime | None = None) -> dict[str, Any]:
    if at is not None:
        clock.now = at
    summary: dict[str, Any] = main_handler(timer(clock.now), context)
    return summary


def calls(emulator: Emulator, action: str, app_id: str, since: int = 0) -> list[dict[str, Any]]:
    return [
        r
        for r in emulator.requests[since:]
        if r["action"] == action and r["app_id"] == app_id and r["code"] == "OK"
    ]


def api_hour(moment: datetime) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y%m%d%H")


def hours_before(at: datetime, count: int) -> list[str]:
    """The `count` API hours before the last full hour at `at`, oldest first."""
    last = at.astimezone(SHANGHAI).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return [api_hour(last - timedelta(hours=n)) for n in range(count, 0, -1)]


def stored(store: Path, kind: str, app_id: str) -> dict[str, dict[str, Any]]:
    folder = "" if kind == "send" else f"{kind}/"
    return {
        json.loads((store / name).read_text())["begin_time"]: json.loads((store / name).read_text())
        for name in record_files(store)
        if name.startswith(f"{folder}app={app_id}/")
    }


def changeable(emulator: Emulator, app_id: str, window: list[str], position: int) -> str:
    """The hour at `position`, or the nearest after it (then before it) whose receipts are
    not all in: only those can still change."""
    order = [*window[position:], *reversed(window[:position])]
    for hour in order:
        counts = emulator.receipts_of(app_id, hour, hour)
        if counts["RequestSuccessCount"] > counts["CallbackCount"]:
            return hour
    raise AssertionError("no hour of the window can change")


def key(kind: str, app_id: str, hour: str) -> str:
    folder = "" if kind == "send" else f"{kind}/"
    day = f"{hour[:4]}-{hour[4:6]}-{hour[6:8]}"
    return f"{folder}app={app_id}/dt={day}/{hour}-{hour}.json"


class TestSteady:
    def test_given_an_empty_store_when_the_timer_runs_then_the_72_hours_before_are_filled(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        summary = run(clock, context)
        assert summary["ok"] is True
        hours = hours_before(START, 72)
        for app in (APP_A, APP_B):
            sends, receipts = stored(store, "send", app), stored(store, "callback", app)
            assert sorted(sends) == [*hours, api_hour(START - timedelta(hours=1))]
            assert sorted(receipts) == sorted(sends)
            for hour, record in sends.items():
                expected = Emulator.expected(app, hour, hour)
                assert record["request_count"] == expected["RequestCount"]
                assert record["fee_count"] == expected["FeeCount"]
        # The whole window sums to one API call over it, field by field.
        total = sum(r["callback_count"] for r in stored(store, "callback", APP_A).values())
        last = api_hour(START - timedelta(hours=1))
        assert total == steady.receipts_of(APP_A, hours[0], last)["CallbackCount"]
        assert summary["heal"]["apps"] == 2
        assert summary["heal"]["hours_left"] == 0

    def test_given_a_steady_account_when_the_next_hour_runs_then_at_most_3_receipt_calls(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        run(clock, context)
        for n in range(1, 4):  # three more hours, each healing the 72 before it
            seen = len(steady.requests)
            summary = run(clock, context, START + timedelta(hours=n))
            assert summary["ok"] is True
            for app in (APP_A, APP_B):
                receipts = calls(steady, "CallbackStatusStatistics", app, seen)
                sends = calls(steady, "SendStatusStatistics", app, seen)
                assert len(receipts) <= 3, receipts
                assert len(receipts) == 2  # the new hour, one range call over the 72 before
                assert len(sends) == 1  # the new hour: nothing was missing
                (ranged,) = [r for r in receipts if r["begin"] != r["end"]]
                assert (ranged["begin"], ranged["end"]) == (
                    hours_before(clock.now, 72)[0],
                    hours_before(clock.now, 1)[0],
                )
            assert summary["heal"]["records"] == 0

    def test_given_a_steady_account_when_healed_then_objects_are_read_only_once(
        self,
        env: dict[str, str],
        clock: Clock,
        store: Path,
        context: dict[str, Any],
        mocker: MockerFixture,
    ) -> None:
        """The ledger: a run reads the objects the last run wrote, not 144 of them an app."""
        from sms_stats.store.file import FileSink

        run(clock, context)
        run(clock, context, START + timedelta(hours=1))  # reads what the first run wrote
        reads = mocker.spy(FileSink, "get")
        run(clock, context, START + timedelta(hours=2))
        record_reads = [
            c.args[1]
            for c in reads.call_args_list
            if c.args[1].endswith(".json") and "=" in c.args[1] and "_heal/" not in c.args[1]
        ]
        # Per app and kind: the hour written last run (read to verify it) and this run's own
        # hour (compared before it is written); not the window's 72.
        assert len(record_reads) <= 2 * 2 * 3, record_reads


class TestChanged:
    def test_given_two_changed_hours_among_72_when_healed_then_only_they_are_rewritten(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        run(clock, context)
        later = START + timedelta(hours=1)
        window = hours_before(later, 72)
        changed = [window[9], window[50]]
        for hour in changed:
            steady.add_receipts(APP_A, hour, 3)
        before = stored(store, "callback", APP_A)
        with WebhookReceiver() as receiver:
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            seen = len(steady.requests)
            summary = run(clock, context, later)
            told = [m.json["records"][0] for m in receiver.accepted]
        assert summary["ok"] is True
        receipts_a = calls(steady, "CallbackStatusStatistics", APP_A, seen)
        receipts_b = calls(steady, "CallbackStatusStatistics", APP_B, seen)
        assert len(receipts_a) < 24
        assert len(receipts_b) == 2
        after = stored(store, "callback", APP_A)
        rewritten = sorted(h for h in window if after[h] != before[h])
        assert rewritten == sorted(changed)
        for hour in changed:
            assert after[hour]["callback_count"] == before[hour]["callback_count"] + 3
            assert after[hour]["callback_success_count"] == (
                before[hour]["callback_success_count"] + 3
            )
            assert (
                after[hour]["callback_count"]
                == (steady.receipts_of(APP_A, hour, hour)["CallbackCount"])
            )
            # The record holds one answer for exactly that hour, with that answer's RequestId.
            (asked,) = [r for r in receipts_a if r["begin"] == hour and r["end"] == hour]
            assert after[hour]["request_id"] == asked["request_id"]
        corrections = sorted(
            r["begin_time"]
            for r in told
            if r["schema"] == "sms-stats-callback/v1" and r["begin_time"] in window
        )
        assert corrections == sorted(changed)  # the receiver hears of the two, once each
        # The window still sums to one API call over it.
        total = sum(after[h]["callback_count"] for h in window)
        assert total == steady.receipts_of(APP_A, window[0], window[-1])["CallbackCount"]

    @pytest.mark.parametrize("positions", [(0,), (71,), (35, 36), (0, 71), (5, 6, 7, 60)])
    def test_given_changed_hours_anywhere_when_healed_then_exactly_those_rewritten(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
        positions: tuple[int, ...],
    ) -> None:
        run(clock, context)
        later = START + timedelta(hours=1)
        window = hours_before(later, 72)
        chosen = [changeable(steady, APP_B, window, position) for position in positions]
        for hour in chosen:
            steady.add_receipts(APP_B, hour, 1)
        before = stored(store, "callback", APP_B)
        seen = len(steady.requests)
        run(clock, context, later)
        after = stored(store, "callback", APP_B)
        assert sorted(h for h in window if after[h] != before[h]) == sorted(set(chosen))
        spent = len(calls(steady, "CallbackStatusStatistics", APP_B, seen))
        # The hour, the range, the newest-first search (at most 5 parts of 72) and then
        # about log2(72) a change.
        assert spent <= 7 + 8 * len(positions)

    @pytest.mark.parametrize(("newest", "most"), [(1, 4), (2, 7), (6, 12)])
    def test_given_receipts_arriving_for_the_newest_hours_when_healed_then_a_few_calls(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
        newest: int,
        most: int,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Where receipts really arrive late: in the last few hours. The search looks there
        first (the window less its newest 1, 3, 9... hours) instead of halving from the top."""
        app = "1400006876"  # its newest six hours still lack receipts, so they can change
        monkeypatch.setenv("SMS_STATS_APP_IDS", app)
        run(clock, context)
        later = START + timedelta(hours=1)
        window = hours_before(later, 72)
        for hour in window[-newest:]:
            steady.add_receipts(app, hour, 1)
        before = stored(store, "callback", app)
        seen = len(steady.requests)
        run(clock, context, later)
        after = stored(store, "callback", app)
        assert sorted(h for h in window if after[h] != before[h]) == window[-newest:]
        assert len(calls(steady, "CallbackStatusStatistics", app, seen)) <= most


class TestWhole:
    def test_given_an_hour_a_run_could_not_fetch_when_the_next_run_comes_then_it_is_fetched(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        run(clock, context)
        later = START + timedelta(hours=1)
        lost = api_hour(later - timedelta(hours=1))
        steady.set_fault(Fault(error_code="InternalError.Timeout", times=3, action="send"), APP_B)
        with pytest.raises(SmsStatsError):
            run(clock, context, later)  # B's hour failed through every attempt
        assert lost not in stored(store, "send", APP_B)
        steady.clear_faults()
        summary = run(clock, context, later + timedelta(hours=1))  # the next hourly run
        assert summary["ok"] is True
        record = stored(store, "send", APP_B)[lost]
        assert record["request_count"] == Emulator.expected(APP_B, lost, lost)["RequestCount"]
        assert lost in stored(store, "callback", APP_B)

    def test_given_a_run_out_of_time_when_the_next_runs_come_then_they_fill_what_it_left(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A first run over an empty store with little time: it fetches its own hour and
        heals what it can; the next runs fill the rest, and say how much is left."""
        monkeypatch.setenv("SMS_STATS_TIMEOUT", "1")
        monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "40")  # 144 calls an app: ~4 s of calls
        # Calls start until ~5 s (8 s less the 2 s margin and a second), healing until ~2 s
        # (it leaves 3 s to write what it found).
        short = {"request_id": "short", "time_limit_in_ms": 8000}
        first = main_handler(timer(clock.now), short)
        assert first["ok"] is True
        assert first["heal"]["hours_left"] > 0
        for app in (APP_A, APP_B):
            assert api_hour(START - timedelta(hours=1)) in stored(store, "send", app)
        left = first["heal"]["hours_left"]
        for n in range(1, 20):
            clock.now = START + timedelta(minutes=n)  # SCF's retries, or the next hours
            summary = main_handler(timer(START), short)
            assert summary["heal"]["hours_left"] <= left
            left = summary["heal"]["hours_left"]
            if left == 0:
                break
        assert left == 0
        for app in (APP_A, APP_B):
            assert len(stored(store, "send", app)) == 73
            assert len(stored(store, "callback", app)) == 73

    def test_given_a_truncated_record_when_gaps_backfill_and_timer_look_then_it_is_a_gap(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """Issue 23, item 3: `gaps` said nothing, `backfill` fetched 0, and later runs never
        repaired a half-written record."""
        run(clock, context)
        run(clock, context, START + timedelta(hours=1))  # the hours are in the ledger now
        window = hours_before(START, 72)
        one, two = window[30], window[40]
        whole = {}
        for hour in (one, two):
            path = store / key("send", APP_A, hour)
            whole[hour] = json.loads(path.read_bytes())
            path.write_bytes(path.read_bytes()[:100])  # a half-written file, a bad sync

        capsys.readouterr()
        assert cli(["gaps", "--app-id", APP_A, "--from", window[0], "--to", window[-1]]) == 1
        out = capsys.readouterr().out
        assert one in out
        assert two in out

        seen = len(steady.requests)
        assert cli(["backfill", "--app-id", APP_A, "--from", one, "--to", one]) == 0
        asked = calls(steady, "SendStatusStatistics", APP_A, seen)
        assert [(r["begin"], r["end"]) for r in asked] == [(one, one)]

        seen = len(steady.requests)
        run(clock, context, START + timedelta(hours=2))  # the next timer run repairs the other
        asked = calls(steady, "SendStatusStatistics", APP_A, seen)
        assert (two, two) in [(r["begin"], r["end"]) for r in asked]
        for hour in (one, two):
            repaired = json.loads((store / key("send", APP_A, hour)).read_bytes())
            volatile = ("request_id", "fetched_at")
            assert {k: v for k, v in repaired.items() if k not in volatile} == {
                k: v for k, v in whole[hour].items() if k not in volatile
            }
        assert cli(["gaps", "--app-id", APP_A, "--from", window[0], "--to", window[-1]]) == 0

    def test_given_a_foreign_record_under_an_hours_key_when_healed_then_it_is_replaced(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        """An object that reads back as a record, but not the one its key names (another
        app's, copied by hand), is a gap: counting it would show B's traffic as A's."""
        run(clock, context)
        hour = hours_before(START, 72)[10]
        (store / key("callback", APP_A, hour)).write_bytes(
            (store / key("callback", APP_B, hour)).read_bytes()
        )
        seen = len(steady.requests)
        run(clock, context, START + timedelta(hours=1))
        record = json.loads((store / key("callback", APP_A, hour)).read_bytes())
        assert record["sms_sdk_app_id"] == APP_A
        asked = calls(steady, "CallbackStatusStatistics", APP_A, seen)
        assert (hour, hour) in [(r["begin"], r["end"]) for r in asked]


class TestMoving:
    def test_given_receipts_arriving_while_a_run_heals_then_each_hour_is_one_answer(
        self,
        scf_env: dict[str, str],
        clock: Clock,
        context: dict[str, Any],
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Receipts keep coming between the calls of one run (the stand-in's clock moves a
        minute a call, over hours settling for 6): a half known by subtraction can be short.
        Every hour rewritten still holds an answer for exactly that hour."""
        moving = MovingClock(START)
        with Emulator(credentials={SECRET_ID: SECRET_KEY}, clock=moving) as settling:
            monkeypatch.setenv("SMS_STATS_ENDPOINT", settling.endpoint)
            monkeypatch.setenv("SMS_STATS_COLLECT", "callback")
            monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")
            monkeypatch.delenv("SMS_STATS_SETTLE_HOURS")
            run(clock, context)
            moving.now = clock.now = START + timedelta(hours=1)
            seen = len(settling.requests)
            run(clock, context)
            asked = calls(settling, "CallbackStatusStatistics", APP_A, seen)
        singles = {r["begin"]: r["request_id"] for r in asked if r["begin"] == r["end"]}
        receipts = stored(store, "callback", APP_A)
        rewritten = [h for h, r in receipts.items() if r["fetched_at"] == "2021-05-10T06:05:00Z"]
        assert rewritten
        for hour in rewritten:
            assert receipts[hour]["request_id"] == singles[hour]
        assert len(asked) <= 24, len(asked)


class MovingClock:
    """The stand-in's clock: a minute later at every reading (one per request it answers)."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(minutes=1)
        return self.now


class TestOverlap:
    def test_given_an_older_run_finishing_after_a_newer_one_then_its_counts_are_not_written(
        self,
        scf_env: dict[str, str],
        clock: Clock,
        context: dict[str, Any],
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Issue 23, item 5a: the 05:05 run's receipts landed after the 06:05 run's newer,
        larger ones, in the store and at the webhook. Receipts settle over 6 hours here."""
        with (
            Emulator(credentials={SECRET_ID: SECRET_KEY}, clock=clock) as settling,
            WebhookReceiver() as receiver,
        ):
            monkeypatch.setenv("SMS_STATS_ENDPOINT", settling.endpoint)
            monkeypatch.setenv("SMS_STATS_COLLECT", "callback")
            monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "6")
            monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")
            monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
            newer_at, older_at = START + timedelta(hours=1), START
            clock.now = newer_at
            main_handler(timer(newer_at), context)  # the 06:05 run
            newer = stored(store, "callback", APP_A)
            told_before = len(receiver.accepted)
            clock.now = older_at  # the 05:05 run, slow, finishing now with older counts
            main_handler(timer(older_at), context)
            after = stored(store, "callback", APP_A)
            late = receiver.accepted[told_before:]
        shared = sorted(set(newer) & set(after))
        assert shared
        for hour in shared:
            assert after[hour] == newer[hour]  # never replaced by the older fetch
        older_told = [
            m.json["records"][0]
            for m in late
            if m.json["records"][0]["begin_time"] in newer
            and m.json["records"][0]["fetched_at"]
            < newer[m.json["records"][0]["begin_time"]]["fetched_at"]
        ]
        assert older_told == []  # nor told to the webhook after the newer counts


class TestStoresAndFailures:
    def test_given_a_cos_store_and_little_time_when_healed_then_what_was_found_is_written(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """A review found healing on COS used the invocation's whole time, then COS refused
        the writes: each run fetched ~60 hours and kept a few, and raised. Healing now stops
        early enough to write what it found, and writes it as it goes."""
        from .standins.cos import CosStandIn
        from .test_sink_cos import BUCKET, SESSION_TOKEN

        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}
        ) as cos:
            url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
            monkeypatch.setenv("SMS_STATS_SINKS", url)
            monkeypatch.setenv("SMS_STATS_TIMEOUT", "1")
            monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "40")
            short = {"request_id": "short", "time_limit_in_ms": 8000}
            total = 0
            for n in range(3):
                clock.now = START + timedelta(minutes=n)
                summary = main_handler(timer(START), short)  # never raises for healing
                assert summary["ok"] is True, summary["deliveries"][:3]
                assert n > 0 or summary["heal"]["hours_left"] > 0  # the first could not finish
                total += summary["heal"]["records"]
            healed = [
                key
                for _, key in cos.objects
                if key.startswith(("stats/app=", "stats/callback/app="))
                and not key.endswith("2021051012-2021051012.json")
            ]
        assert total > 0
        assert len(healed) == total  # every hour found is stored

    def test_given_a_heal_call_that_fails_when_the_timer_runs_then_counted_not_raised(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        """The next run heals again anyway: a retry of the whole run by SCF would only repeat
        the run's own hour. The failure is logged and counted."""
        run(clock, context)
        steady.set_fault(
            Fault(error_code="InternalError.OtherError", action="callback", times=1), APP_B
        )
        capsys.readouterr()
        later = START + timedelta(hours=1)
        steady.set_fault(Fault(error_code="InternalError.OtherError", action="callback"), APP_B)
        seen = len(steady.requests)
        with pytest.raises(SmsStatsError):  # its own hour's receipts failed: that raises
            run(clock, context, later)
        steady.clear_faults()
        summary = run(clock, context, later + timedelta(minutes=1))  # SCF's retry
        assert summary["ok"] is True
        failed = [
            json.loads(line)
            for line in capsys.readouterr().out.splitlines()
            if '"heal.failed"' in line
        ]
        assert failed
        assert {line["app_id"] for line in failed} == {APP_B}
        assert calls(steady, "CallbackStatusStatistics", APP_A, seen)

    def test_given_a_failure_only_in_healing_when_run_then_the_run_is_ok(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        run(clock, context)
        later = START + timedelta(hours=1)
        lost = hours_before(later, 72)[5]
        (store / key("send", APP_B, lost)).unlink()  # one hour for healing to fetch again
        # B's own hour is asked first and passes; the next send call of B (healing's) fails.
        steady.set_fault(
            Fault(error_code="InternalError.OtherError", action="send", after=1, times=3), APP_B
        )
        summary = run(clock, context, later)
        assert summary["ok"] is True
        assert summary["failures"] == []
        assert summary["heal"]["failures"] == 1
        assert summary["heal"]["hours_left"] == 1
        steady.clear_faults()
        summary = run(clock, context, later + timedelta(hours=1))
        assert summary["heal"]["hours_left"] == 0
        assert lost in stored(store, "send", APP_B)

    def test_given_a_run_that_could_not_reach_every_app_when_the_next_runs_then_they_go_first(
        self,
        env: dict[str, str],
        clock: Clock,
        steady: Emulator,
        store: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The next run starts healing at the first app this one left unhealed (a cursor in
        the store), not at an app that turns by one an hour: with 4,000 apps and a run that
        reaches 1,000, that would leave the last ones unhealed for days."""
        apps = [f"14000068{n:02d}" for n in range(80, 92)]
        monkeypatch.setenv("SMS_STATS_APP_IDS", ",".join(apps))
        monkeypatch.setenv("SMS_STATS_TIMEOUT", "1")
        monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "100")
        monkeypatch.setenv("SMS_STATS_CONCURRENCY", "1")
        short = {"request_id": "short", "time_limit_in_ms": 8000}
        first = main_handler(timer(START), short)
        assert first["heal"]["hours_left"] > 0
        cursor = json.loads((store / "_heal" / "cursor.json").read_bytes())["next"]
        # Healing's hours only: the run's own hour is fetched before healing starts, and a
        # fetch of it that failed (a 1 s timeout on a loaded machine) is no healing left.
        healing = set(hours_before(START, 72))
        unfinished = [
            app
            for app in apps
            if any(
                len(healing & set(stored(store, kind, app))) < 72 for kind in ("send", "callback")
            )
        ]
        # This run's order began at the app that turns with the hour (the window's last hour).
        last_hour = datetime.strptime(hours_before(START, 1)[0], "%Y%m%d%H").replace(
            tzinfo=SHANGHAI
        )
        turn = int(last_hour.timestamp() // 3600) % len(apps)
        order = [*apps[turn:], *apps[:turn]]
        assert cursor == next(app for app in order if app in unfinished)
        assert len(unfinished) > 2
        seen = len(steady.requests)
        clock.now = START + timedelta(minutes=1)
        main_handler(timer(START), short)  # SCF's retry, or the next hour
        own = api_hour(START - timedelta(hours=1))
        first_healed = next(r["app_id"] for r in steady.requests[seen:] if r["begin"] != own)
        following = apps[(apps.index(cursor) + 1) % len(apps)]
        assert first_healed in (cursor, following)  # two apps are healed at once
        assert len(stored(store, "send", cursor)) == 73
