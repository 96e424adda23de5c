"""`GET /stats` answered from the store when every hour asked is stored and settled.

Hours are stored as on SCF (a timer or a direct job through `main_handler`) against a stand-in
whose clock is pinned with the handler's; the stand-in records every request it gets, so "no
API call" is counted, not assumed. The store's answer is compared with the API path's
(`fresh=true`) for the same window: equal counts, the same record shape.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.emulator import Emulator

from .conftest import API_TOKEN, APP_A, APP_B, SECRET_ID, SECRET_KEY, Clock, pin_clock
from .test_metrics import NOW, collect

VOLATILE = {"request_id", "fetched_at"}


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
    monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback")
    # Receipts are final only once the timer stops healing them: 6 hours here, 72 by default.
    monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "6")
    return scf_env


def stats(
    begin: str,
    end: str,
    *,
    apps: tuple[str, ...] = (APP_A,),
    kind: str = "send",
    fresh: str | None = None,
) -> tuple[int, dict[str, Any]]:
    query: dict[str, Any] = {"app_id": list(apps), "begin": begin, "end": end, "kind": kind}
    if fresh is not None:
        query["fresh"] = fresh
    event = {
        "httpMethod": "GET",
        "path": "/stats",
        "headers": {"authorization": f"Bearer {API_TOKEN}"},
        "queryString": query,
        "body": "",
    }
    answer = main_handler(event, {"request_id": "readthrough-test"})
    return answer["statusCode"], json.loads(answer["body"])


def job(context: dict[str, Any], **fields: Any) -> None:
    """A direct job (as `sms-stats invoke` sends), run at the pinned clock."""
    summary = main_handler({"app_ids": [APP_A, APP_B], **fields}, context)
    assert summary["ok"] is True


def calls(stand_in: Emulator) -> int:
    return len(stand_in.requests)


def counts(record: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in record.items() if k not in VOLATILE}


class TestSends:
    def test_given_a_stored_hour_when_asked_then_the_stored_record_and_no_api_call(
        self,
        env: dict[str, str],
        clock: Clock,
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        collect(clock, NOW, context)
        before = calls(stand_in)
        status, body = stats("2021050112", "2021050112")
        assert status == 200
        assert calls(stand_in) == before
        assert body["source"] == "store"
        key = f"app={APP_A}/dt=2021-05-01/2021050112-2021050112.json"
        assert body["records"] == [json.loads((store / key).read_text(encoding="utf-8"))]

    def test_given_a_stored_range_when_asked_then_the_sums_equal_the_apis_answer(
        self, env: dict[str, str], clock: Clock, stand_in: Emulator, context: dict[str, Any]
    ) -> None:
        job(context, lookback=6, kinds=["send"])  # 07:00 to 12:00 in Shanghai
        before = calls(stand_in)
        status, stored = stats("2021050107", "2021050112", apps=(APP_A, APP_B))
        assert status == 200
        assert calls(stand_in) == before
        assert stored["source"] == "store"

        status, fresh = stats("2021050107", "2021050112", apps=(APP_A, APP_B), fresh="true")
        assert status == 200
        assert fresh["source"] == "api"
        assert calls(stand_in) == before + 2
        assert [counts(r) for r in stored["records"]] == [counts(r) for r in fresh["records"]]
        assert [list(r) for r in stored["records"]] == [list(r) for r in fresh["records"]]
        for record in stored["records"]:
            expected = Emulator.expected(record["sms_sdk_app_id"], "2021050107", "2021050112")
            assert record["request_count"] == expected["RequestCount"]
            assert record["request_success_count"] == expected["RequestSuccessCount"]
            assert record["fee_count"] == expected["FeeCount"]

    def test_given_hours_fetched_at_different_times_then_the_sum_is_as_old_as_the_oldest(
        self, env: dict[str, str], clock: Clock, stand_in: Emulator, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        collect(clock, NOW + timedelta(hours=1), context)
        status, body = stats("2021050112", "2021050113")
        assert (status, body["source"]) == (200, "store")
        (record,) = body["records"]
        assert record["fetched_at"] == "2021-05-01T05:05:00Z"
        assert record["request_id"] == ""  # no one request answered the sum

    def test_given_one_hour_of_the_range_missing_then_the_api_answers(
        self,
        env: dict[str, str],
        clock: Clock,
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        job(context, lookback=3, kinds=["send"])
        (store / f"app={APP_A}/dt=2021-05-01/2021050111-2021050111.json").unlink()
        before = calls(stand_in)
        status, body = stats("2021050110", "2021050112")
        assert (status, body["source"]) == (200, "api")
        assert calls(stand_in) == before + 1
        assert (
            body["records"][0]["request_count"]
            == (Emulator.expected(APP_A, "2021050110", "2021050112")["RequestCount"])
        )

    def test_given_a_corrupt_stored_hour_then_the_api_answers_not_a_traceback(
        self,
        env: dict[str, str],
        clock: Clock,
        stand_in: Emulator,
        store: Path,
        context: dict[str, Any],
    ) -> None:
        job(context, lookback=3, kinds=["send"])
        (store / f"app={APP_A}/dt=2021-05-01/2021050111-2021050111.json").write_bytes(b"\xff{")
        status, body = stats("2021050110", "2021050112")
        assert (status, body["source"]) == (200, "api")

    @pytest.mark.parametrize("copied", ["another hour", "another app"])
    def test_given_a_record_that_is_not_its_keys_then_the_api_answers(
        self, env: dict[str, str], clock: Clock, store: Path, context: dict[str, Any], copied: str
    ) -> None:
        job(context, lookback=3, kinds=["send"])
        key = f"app={APP_A}/dt=2021-05-01/2021050111-2021050111.json"
        source = (
            f"app={APP_A}/dt=2021-05-01/2021050110-2021050110.json"
            if copied == "another hour"
            else key.replace(APP_A, APP_B)
        )
        (store / key).write_bytes((store / source).read_bytes())
        status, body = stats("2021050110", "2021050112")
        assert (status, body["source"]) == (200, "api")

    def test_given_an_hour_asked_twice_then_the_second_answer_comes_from_the_store(
        self, env: dict[str, str], clock: Clock, stand_in: Emulator
    ) -> None:
        status, first = stats("2021050112", "2021050112")
        assert (status, first["source"]) == (200, "api")  # and stored, as an hour is
        before = calls(stand_in)
        status, second = stats("2021050112", "2021050112")
        assert (status, second["source"]) == (200, "store")
        assert calls(stand_in) == before
        assert second["records"] == first["records"]

    def test_given_fresh_true_then_the_api_is_asked_even_when_stored(
        self, env: dict[str, str], clock: Clock, stand_in: Emulator, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        before = calls(stand_in)
        status, body = stats("2021050112", "2021050112", fresh="true")
        assert (status, body["source"]) == (200, "api")
        assert calls(stand_in) == before + 1

    def test_given_a_post_of_the_seed_shape_then_read_through_too(
        self, env: dict[str, str], clock: Clock, stand_in: Emulator, context: dict[str, Any]
    ) -> None:
        collect(clock, NOW, context)
        before = calls(stand_in)
        payload = {"SmsSdkAppId": APP_A, "BeginTime": "2021050112", "EndTime": "2021050112"}
        event = {
            "httpMethod": "POST",
            "path": "/stats",
            "headers": {"authorization": f"Bearer {API_TOKEN}"},
            "queryString": {},
            "body": json.dumps({**payload, "Limit": 0, "Offset": 0}),
        }
        answer = main_handler(event, {"request_id": "readthrough-test"})
        assert answer["statusCode"] == 200
        assert json.loads(answer["body"])["source"] == "store"
        assert calls(stand_in) == before

    def test_given_fresh_not_a_boolean_then_400_naming_it(self, env: dict[str, str]) -> None:
        status, body = stats("2021050112", "2021050112", fresh="maybe")
        assert status == 400
        assert body["error"]["message"].startswith("fresh:")

    def test_given_no_store_then_the_api_answers(
        self, env: dict[str, str], clock: Clock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("SMS_STATS_SINKS")
        status, body = stats("2021050112", "2021050112")
        assert (status, body["source"]) == (200, "api")


class TestReceipts:
    """Receipts are stored by a direct job at 13:05 Shanghai over the ten hours before it
    (03:00 to 12:00); with SMS_STATS_SETTLE_HOURS at its default 6, the hours that ended at
    07:00 or before were fetched after their last re-fetch was due."""

    @pytest.fixture(autouse=True)
    def stored(self, env: dict[str, str], clock: Clock, context: dict[str, Any]) -> None:
        job(context, lookback=10, kinds=["callback"])

    def test_given_settled_hours_when_asked_then_from_the_store_equal_to_the_api(
        self, clock: Clock, stand_in: Emulator
    ) -> None:
        clock.now = NOW + timedelta(minutes=90)  # 14:35: 03:00-06:00 ended over 7 hours ago
        before = calls(stand_in)
        status, stored = stats("2021050103", "2021050106", kind="callback")
        assert (status, stored["source"]) == (200, "store")
        assert calls(stand_in) == before
        status, fresh = stats("2021050103", "2021050106", kind="callback", fresh="true")
        assert (status, fresh["source"]) == (200, "api")
        assert [counts(r) for r in stored["records"]] == [counts(r) for r in fresh["records"]]
        assert list(stored["records"][0]) == list(fresh["records"][0])

    def test_given_an_hour_fetched_before_its_last_refetch_was_due_then_the_api(
        self, clock: Clock, stand_in: Emulator
    ) -> None:
        """07:00-08:00 was fetched at 13:05, before 14:00 (its end + 6 hours): the store may
        hold an early count, even though the hour ended long ago by the time it is asked."""
        clock.now = NOW + timedelta(hours=10)
        before = calls(stand_in)
        status, body = stats("2021050106", "2021050107", kind="callback")
        assert (status, body["source"]) == (200, "api")
        assert calls(stand_in) == before + 1

    def test_given_an_hour_that_ended_within_settle_plus_one_hours_then_the_api(
        self, clock: Clock, stand_in: Emulator
    ) -> None:
        clock.now = NOW + timedelta(minutes=10)  # 13:15: 06:00-07:00 ended 6h15m ago
        status, body = stats("2021050106", "2021050106", kind="callback")
        assert (status, body["source"]) == (200, "api")
