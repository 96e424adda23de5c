"""Which days' digests a run makes (`digest.due`): yesterday's from the digest hour on, and every
day no run could make at its hour, late, oldest first, each once, a week back at most; a new
deployment starts with yesterday's alone."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sms_stats.alerts.digest import BACKLOG_DAYS, due, late
from sms_stats.alerts.run import after_run
from sms_stats.alerts.state import KEY, State
from sms_stats.collect.client import StatsClient
from sms_stats.core.settings import Settings
from sms_stats.core.windows import zone
from sms_stats.deliver.sinks import build_sinks
from sms_stats.emulator import Emulator, Fault

from .conftest import APP_A, SECRET_ID, SECRET_KEY
from .standins.webhook import WebhookReceiver

ZONE = "Asia/Shanghai"
TZ = zone(ZONE)


def at(day: int, hour: int, minute: int = 5) -> datetime:
    """2021-05-<day> <hour>:<minute> Beijing time."""
    return datetime(2021, 5, 1, hour, minute, tzinfo=TZ) + timedelta(days=day - 1)


def days(state: State, now: datetime, hour: int = 9) -> list[str]:
    return [day.local_date.isoformat() for day in due(state, now, ZONE, hour)]


class TestDue:
    def test_given_no_digest_made_yet_then_yesterdays_from_the_hour_on_and_no_backlog(
        self,
    ) -> None:
        assert days(State(), at(10, 8)) == []
        assert days(State(), at(10, 9)) == ["2021-05-09"]

    def test_given_yesterdays_made_then_nothing_until_tomorrows_hour(self) -> None:
        state = State(digest="2021-05-09")
        assert days(state, at(10, 23)) == []
        assert days(state, at(11, 0)) == []
        assert days(state, at(11, 9)) == ["2021-05-10"]

    def test_given_no_run_made_it_before_midnight_then_the_next_run_makes_it(self) -> None:
        state = State(digest="2021-05-08")  # the 9th's was due on the 10th from 09:00
        assert days(state, at(11, 0)) == ["2021-05-09"]  # 00:05: the 10th's is not due yet
        assert days(state, at(11, 9)) == ["2021-05-09", "2021-05-10"]

    def test_given_weeks_without_a_digest_then_a_week_back_at_most(self) -> None:
        state = State(digest="2021-04-01")
        got = days(state, at(20, 10))
        assert got == [f"2021-05-{d:02d}" for d in range(13, 20)]
        assert len(got) == BACKLOG_DAYS

    def test_given_an_unreadable_date_then_as_if_none_was_made(self) -> None:
        assert days(State(digest="yesterday"), at(10, 9)) == ["2021-05-09"]
        assert days(State(digest="yesterday"), at(10, 8)) == []

    def test_given_the_day_after_then_on_time_and_later_late(self) -> None:
        (day,) = due(State(), at(10, 9), ZONE, 9)
        assert not late(day, at(10, 23, 59))
        assert late(day, at(11, 0))


@given(
    now=st.datetimes(datetime(2021, 1, 1), datetime(2022, 12, 31), timezones=st.just(timezone.utc)),
    made=st.none() | st.integers(min_value=-3, max_value=40),
    hour=st.integers(min_value=0, max_value=23),
)
def test_given_any_moment_and_last_digest_then_each_due_day_once_in_order(
    now: datetime, made: int | None, hour: int
) -> None:
    local = now.astimezone(TZ)
    yesterday = local.date() - timedelta(days=1)
    last = None if made is None else yesterday - timedelta(days=made)
    state = State(digest="" if last is None else last.isoformat())
    found = [day.local_date for day in due(state, now, ZONE, hour)]
    newest = yesterday if local.hour >= hour else yesterday - timedelta(days=1)
    if last is None:
        assert found == ([yesterday] if local.hour >= hour else [])
    else:
        expected = []
        day: date = max(last + timedelta(days=1), newest - timedelta(days=BACKLOG_DAYS - 1))
        while day <= newest:
            expected.append(day)
            day += timedelta(days=1)
        assert found == expected
    if found:  # made: the same run again (SCF's retry) owes none
        state.digest = found[-1].isoformat()
        assert due(state, now, ZONE, hour) == []


SECRET = "whsec_" + base64.b64encode(b"digest-test-secret-0123456789").decode()


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver(secret=SECRET) as hook:
        yield hook


def test_given_two_days_owed_when_the_older_cannot_be_made_then_neither_is_sent_out_of_order(
    emulator: Emulator, receiver: WebhookReceiver, store: Path
) -> None:
    settings = Settings.model_validate(
        {
            "secret_id": SECRET_ID,
            "secret_key": SECRET_KEY,
            "endpoint": emulator.endpoint,
            "sinks": (f"file://{store}", receiver.url),
            "webhook_secret": SECRET,
            "alerts": "[]",
            "max_attempts": 1,
        }
    )
    (store / "alerts").mkdir(parents=True)
    (store / KEY).write_bytes(State(digest="2021-05-07").encode())
    sinks = build_sinks(settings)

    def run() -> None:
        after_run(
            [],
            settings,
            sinks,
            StatsClient(settings),
            now=at(10, 10),  # the 8th's digest is late, the 9th's due
            app_ids=[APP_A],
            kinds=["send"],
            deadline=None,
            with_digest=True,
        )

    emulator.clear_faults()
    emulator.set_fault(Fault(error_code="InternalError.Timeout", times=1))  # the 8th's call
    try:
        run()
    finally:
        emulator.clear_faults()
    assert receiver.accepted == []  # not the 9th's alone: the 8th's would then never come
    run()
    run()
    sent = [
        (json.loads(m.body)["data"]["date"], json.loads(m.body)["data"]["late"])
        for m in receiver.accepted
    ]
    assert sent == [("2021-05-08", True), ("2021-05-09", False)]
