"""The outbox: what a sink missed is delivered by the next run, to exactly that sink.

Integration tests run the real handler and CLI against the SMS stand-in, a real webhook receiver
and a real store (a directory, or the COS stand-in); the unit tests cover the entry format.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats.cli import main
from sms_stats.core.errors import DeliveryError
from sms_stats.core.settings import load_settings
from sms_stats.deliver import outbox
from sms_stats.deliver.outbox import Entry, Outbox, decode
from sms_stats.deliver.sinks import Delivery, build_sinks
from sms_stats.store.base import label
from sms_stats.store.file import FileSink

from .conftest import APP_A, APP_B, SECRET_ID, SECRET_KEY, SESSION_TOKEN, load_event, seed_record
from .standins.bots import BotReceiver
from .standins.cos import CosStandIn
from .standins.webhook import Fault, WebhookReceiver

BUCKET = "stats-1250000000"
RANGE = ["--from", "2021050100", "--to", "2021050102"]  # 3 hours


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


@pytest.fixture(autouse=True)
def _no_backoff(mocker: MockerFixture) -> None:
    mocker.patch("sms_stats.deliver.transport.time.sleep")


def entries(store: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(store.glob("_outbox/*"))]


def records_in(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.glob("app=*/dt=*/*.json"))


def sent_ids(receiver: WebhookReceiver) -> list[str]:
    return sorted(r.headers["webhook-id"] for r in receiver.accepted)


class TestBackfillResume:
    def test_given_webhook_down_when_backfill_rerun_with_it_up_then_exactly_the_missed_sent(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        sinks = ["--sink", f"file://{store}", "--sink", receiver.url]
        args = ["backfill", "--app-id", APP_A, "--app-id", APP_B, *RANGE, *sinks]
        receiver.fault = Fault(status=503)
        assert main(args) == 1
        assert len(records_in(store)) == 6
        assert receiver.accepted == []
        capsys.readouterr()

        receiver.fault = None
        assert main(args) == 0
        err = capsys.readouterr().err
        assert "6 already stored" in err
        assert "0 to fetch" in err
        assert f"owed from earlier runs: 6 record(s) to {label('webhook', receiver.url)}" in err
        assert len(sent_ids(receiver)) == 6
        assert len(set(sent_ids(receiver))) == 6
        assert entries(store) == []

        assert main(args) == 0  # a third run: nothing owed, nothing sent again
        assert len(receiver.accepted) == 6

    def test_given_cos_store_and_webhook_down_when_backfill_rerun_then_missed_sent_from_cos(
        self,
        scf_env: dict[str, str],
        receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets=[BUCKET]
        ) as cos:
            url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
            args = ["backfill", "--app-id", APP_A, *RANGE, "--sink", url, "--sink", receiver.url]
            receiver.fault = Fault(status=500)
            assert main(args) == 1
            owed = [k for _, k in cos.objects if k.startswith("stats/_outbox/")]
            assert len(owed) == 3  # one entry per window
            receiver.fault = None
            assert main(args) == 0
            assert "3 already stored" in capsys.readouterr().err
            assert len(receiver.accepted) == 3
            assert [k for _, k in cos.objects if k.startswith("stats/_outbox/")] == []
            bodies = {r.json["records"][0]["begin_time"] for r in receiver.accepted}
            assert bodies == {"2021050100", "2021050101", "2021050102"}

    def test_given_bot_left_out_of_backfill_when_debts_drained_then_bot_debts_kept(
        self, scf_env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with BotReceiver() as bots:
            wecom = bots.url("wecom", notify="records")
            settings = load_settings().model_copy(update={"sinks": (f"file://{store}", wecom)})
            file_sink, bot = build_sinks(settings)
            record = seed_record()
            box = Outbox(FileSink(store, file_sink.name))
            entry = box.open([record], [file_sink, bot], None)
            assert entry is not None
            box.settle(
                entry,
                [Delivery(APP_A, str(record.window), file_sink.name, True, key=record.key)],
                None,
            )

            args = [
                "backfill",
                "--app-id",
                APP_A,
                *RANGE,
                "--sink",
                f"file://{store}",
                "--sink",
                wecom,
            ]
            assert main(args) == 0
            assert bots.attempts == []
            err = capsys.readouterr().err
            assert f"1 record(s) to {bot.name} (left out of this backfill: it stays owed)" in err
            assert box.owed(None) == {bot.name: {record.key}}


class TestTimerRuns:
    def test_given_webhook_down_through_all_retries_when_next_hour_runs_then_both_hours_sent(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        receiver.fault = Fault(status=503)
        for _ in range(3):  # SCF's first try and its two retries
            with pytest.raises(DeliveryError):
                main_handler(load_event("timer.json"), context)
        assert receiver.accepted == []
        assert len(entries(store)) == 1  # the retries rewrote the same entry

        receiver.fault = None
        next_hour = {**load_event("timer.json"), "Time": "2021-05-01T06:05:00Z"}
        summary = main_handler(next_hour, context)
        assert summary["ok"] is True
        # Ids name app and window, then the content (a retry repeats it, a correction not).
        assert [i.rsplit("_", 1)[0] for i in sent_ids(receiver)] == [
            f"msg_{APP_A}_2021050112_2021050112",
            f"msg_{APP_A}_2021050113_2021050113",
            f"msg_{APP_B}_2021050112_2021050112",
            f"msg_{APP_B}_2021050113_2021050113",
        ]
        assert entries(store) == []
        drained = [d for d in summary["deliveries"] if d["window"] == "2021050112-2021050112"]
        assert {(d["sms_sdk_app_id"], d["ok"]) for d in drained} == {(APP_A, True), (APP_B, True)}

    def test_given_entry_when_webhook_receives_then_store_already_owes_it_the_records(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        """Written before the first delivery: a run killed mid-delivery leaves the debt."""
        seen: list[list[dict[str, Any]]] = []
        receiver.on_request = lambda: seen.append(entries(store))
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        main_handler(load_event("timer.json"), context)
        name = label("webhook", receiver.url)
        assert len(seen) == 2
        for snapshot in seen:
            (entry,) = snapshot
            assert name in entry["owed"]
        assert entries(store) == []

    def test_given_debt_to_a_sink_no_longer_configured_when_drained_then_dropped_with_warning(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        receiver.fault = Fault(status=503)
        with pytest.raises(DeliveryError):
            main_handler(load_event("timer.json"), context)
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store}")
        main_handler({**load_event("timer.json"), "Time": "2021-05-01T06:05:00Z"}, context)
        logs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
        gone = [line for line in logs if line["event"] == "outbox.sink_gone"]
        assert [line["sink"] for line in gone] == [label("webhook", receiver.url)]
        assert entries(store) == []

    def test_given_http_query_when_answered_then_outbox_not_drained(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
    ) -> None:
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        receiver.fault = Fault(status=503)
        with pytest.raises(DeliveryError):
            main_handler(load_event("timer.json"), context)
        receiver.fault = None
        answer = main_handler(load_event("function_url_get.json"), context)
        assert answer["statusCode"] == 200
        old = [r for r in receiver.accepted if "2021050112" in r.headers["webhook-id"]]
        assert old == []  # a caller waiting for an answer does not pay for old debts


class TestGapsPerSink:
    def test_given_owed_hours_when_gaps_then_listed_for_that_sink_only_until_delivered(
        self,
        scf_env: dict[str, str],
        store: Path,
        receiver: WebhookReceiver,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        sinks = ["--sink", f"file://{store}", "--sink", receiver.url]
        receiver.fault = Fault(status=503)
        assert main(["backfill", "--app-id", APP_A, *RANGE, *sinks]) == 1
        capsys.readouterr()
        assert main(["gaps", "--app-id", APP_A, *RANGE, *sinks]) == 1
        out, err = capsys.readouterr()
        name = label("webhook", receiver.url)
        assert out.splitlines() == [
            f"{APP_A} 2021050100 {name}",
            f"{APP_A} 2021050101 {name}",
            f"{APP_A} 2021050102 {name}",
        ]
        assert f"0 hour(s) missing from file:{store}" in err
        assert f"3 hour(s) missing from {name}" in err
        receiver.fault = None
        assert main(["backfill", "--app-id", APP_A, *RANGE, *sinks]) == 0
        assert main(["gaps", "--app-id", APP_A, *RANGE, *sinks]) == 0


class TestEntries:
    def test_given_entry_when_encoded_and_decoded_then_records_and_debts_survive(self) -> None:
        records = [seed_record(APP_A), seed_record(APP_B)]
        entry = Entry(outbox.entry_key(records), records, {"webhook:x#1": [records[1].key]})
        back = decode(entry.key, entry.encode())
        assert [r.to_dict() for r in back.records] == [r.to_dict() for r in records]
        assert back.owed == entry.owed
        assert back.records_owed_to("webhook:x#1") == [records[1]]

    def test_given_same_records_in_any_order_when_keyed_then_one_entry_key(self) -> None:
        a, b = seed_record(APP_A), seed_record(APP_B)
        assert outbox.entry_key([a, b]) == outbox.entry_key([b, a])
        assert outbox.entry_key([a]) != outbox.entry_key([a, b])
        assert outbox.entry_key([a]).startswith("_outbox/2021050112-2021050112.")

    @pytest.mark.parametrize(
        "data",
        [
            b"not json",
            b"[]",
            b'{"schema": "other"}',
            b'{"schema": "sms-stats-outbox/v1", "owed": {"s": "not a list"}, "records": []}',
            b'{"schema": "sms-stats-outbox/v1", "owed": {}, "records": [{"schema": "x"}]}',
        ],
    )
    def test_given_unreadable_entry_when_listed_then_skipped_and_logged_never_raised(
        self, tmp_path: Path, data: bytes, capsys: pytest.CaptureFixture[str]
    ) -> None:
        sink = FileSink(tmp_path, f"file:{tmp_path}")
        sink.put("_outbox/broken.json", data)
        assert Outbox(sink).entries(None) == []
        assert '"event":"outbox.unreadable"' in capsys.readouterr().out

    def test_given_deliveries_when_struck_then_only_ok_ones_leave_and_empty_sinks_go(self) -> None:
        a, b = seed_record(APP_A), seed_record(APP_B)
        entry = Entry("k", [a, b], {"s1": [a.key, b.key], "s2": [a.key]})
        entry.strike(
            [
                Delivery(APP_A, str(a.window), "s1", True, key=a.key),
                Delivery(APP_B, str(b.window), "s1", False, "down", key=b.key),
                Delivery(APP_A, str(a.window), "s2", True, key=a.key),
            ]
        )
        assert entry.owed == {"s1": [b.key]}

    def test_given_all_delivered_when_settled_then_entry_deleted(self, tmp_path: Path) -> None:
        sink = FileSink(tmp_path, f"file:{tmp_path}")
        box = Outbox(sink)
        record = seed_record()
        entry = box.open([record], [sink], None)
        assert entry is not None
        assert sink.exists(entry.key)
        box.settle(
            entry, [Delivery(APP_A, str(record.window), sink.name, True, key=record.key)], None
        )
        assert not sink.exists(entry.key)
