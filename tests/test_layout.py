"""One grain per layout and one zone per store, on a real directory, through the real handler."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import duckdb
import pytest
from index import main_handler

from sms_stats.cli import main
from sms_stats.core.errors import ConfigError
from sms_stats.core.records import Counts, Record
from sms_stats.core.settings import load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.outbox import Entry, Outbox, entry_key
from sms_stats.deliver.sinks import build_sinks
from sms_stats.emulator import Emulator
from sms_stats.run import backfill, migrate
from sms_stats.store import layout
from sms_stats.store.base import Store, label
from sms_stats.store.file import FileSink

from .conftest import (
    APP_A,
    APP_B,
    SECRET_ID,
    SECRET_KEY,
    SESSION_TOKEN,
    load_event,
    record_files,
)
from .standins.cos import CosFault, CosStandIn
from .standins.webhook import WebhookReceiver

SHANGHAI = zone("Asia/Shanghai")


def file_sink(root: Path) -> FileSink:
    return FileSink(root, f"file:{root}")


def old_key(record: Record) -> str:
    """Where the version before grains stored every record, whatever its window."""
    return f"app={record.sms_sdk_app_id}/dt={record.window.local_date}/{record.window.label}.json"


def record(begin: str, end: str, app_id: str = APP_A, tz: str = "Asia/Shanghai") -> Record:
    window = Window.from_api(begin, end, zone(tz))
    counts = Counts(100, 90, 120, f"req-{begin}-{end}")
    return Record(app_id, window, tz, counts, datetime(2021, 5, 10, tzinfo=timezone.utc))


def older_records() -> dict[str, Record]:
    return {
        "hour": record("2021050112", "2021050112"),
        "hour2": record("2021050113", "2021050113", APP_B),
        "day": record("2021050100", "2021050123"),
        "range": record("2021050113", "2021050118"),
    }


def write_older_store(sink: Store, webhook: str) -> dict[str, Record]:
    """What the released version leaves in a store: every record in the hour layout, and one
    outbox entry per record it still owes to `webhook` (the day and the range: it was down)."""
    records = older_records()
    for item in records.values():
        sink.put(old_key(item), json.dumps(item.to_dict()).encode())
    for name in ("day", "range"):
        owed = Entry(
            entry_key([records[name]]), [records[name]], {webhook: [old_key(records[name])]}
        )
        sink.put(owed.key, owed.encode())
    return records


def old_store(root: Path) -> tuple[FileSink, dict[str, Record]]:
    """A store as today's released version leaves it: hours, a day (`backfill --by day`) and a
    six-hour range (a seed-shape direct invoke) side by side in the hour layout, no
    `_store.json`, and an outbox entry still owing the range to a webhook."""
    sink = file_sink(root)
    records = {
        "hour": record("2021050112", "2021050112"),
        "hour2": record("2021050113", "2021050113", APP_B),
        "day": record("2021050100", "2021050123"),
        "range": record("2021050113", "2021050118"),
    }
    for item in records.values():
        sink.put(old_key(item), json.dumps(item.to_dict()).encode())
    owed = {"webhook:127.0.0.1:9#abcd": [old_key(records["range"])]}
    entry = Entry(entry_key([records["range"]]), [records["range"]], owed)
    sink.put(entry.key, entry.encode())
    return sink, records


class TestZone:
    def test_given_an_empty_store_when_the_timer_runs_then_the_store_records_its_zone(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        main_handler(load_event("timer.json"), context)
        meta = json.loads((store / "_store.json").read_text())
        assert (meta["timezone"], meta["layout"]) == ("Asia/Shanghai", layout.LAYOUT)

    @pytest.mark.parametrize("marked", [True, False], ids=["_store.json", "older store"])
    def test_given_a_shanghai_store_when_a_utc_run_comes_then_refused_before_any_call(
        self,
        scf_env: dict[str, str],
        store: Path,
        emulator: Emulator,
        monkeypatch: pytest.MonkeyPatch,
        context: dict[str, Any],
        marked: bool,
    ) -> None:
        main_handler(load_event("timer.json"), context)
        if not marked:  # a store written before _store.json: its records name the zone
            (store / "_store.json").unlink()
        before = record_files(store)
        calls = len(emulator.requests)
        monkeypatch.setenv("SMS_STATS_TIMEZONE", "UTC")

        with pytest.raises(ConfigError) as caught:
            main_handler(load_event("timer.json"), context)

        assert "holds hours named in Asia/Shanghai" in caught.value.message
        assert "SMS_STATS_TIMEZONE is UTC" in caught.value.message
        assert record_files(store) == before
        assert len(emulator.requests) == calls

    def test_given_a_utc_store_when_backfilled_in_shanghai_then_refused_before_any_call(
        self, scf_env: dict[str, str], store: Path, emulator: Emulator
    ) -> None:
        file_sink(store).put("_store.json", b'{"timezone": "UTC", "layout": 2}')
        settings = load_settings()
        calls = len(emulator.requests)

        with pytest.raises(ConfigError, match="holds hours named in UTC"):
            backfill.plan(
                [APP_A],
                "2021050100",
                "2021050101",
                "hour",
                settings,
                build_sinks(settings),
                datetime(2021, 5, 10, tzinfo=timezone.utc),
            )
        assert len(emulator.requests) == calls

    def test_given_a_damaged_store_file_when_run_then_a_clear_error(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        file_sink(store).put("_store.json", b"<html>")
        with pytest.raises(ConfigError, match=r"_store\.json is not ours or is damaged"):
            main_handler(load_event("timer.json"), context)


class TestHttp:
    def test_given_an_http_range_query_when_answered_then_nothing_is_stored(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        event = load_event("function_url_get.json")
        event["queryString"] = {"app_id": APP_A, "begin": "2021050113", "end": "2021050118"}
        answer = main_handler(event, context)
        assert answer["statusCode"] == 200
        assert len(json.loads(answer["body"])["records"]) == 1
        assert record_files(store) == []

    def test_given_an_http_hour_query_when_answered_then_stored_as_an_hour(
        self, scf_env: dict[str, str], store: Path, context: dict[str, Any]
    ) -> None:
        assert main_handler(load_event("function_url_get.json"), context)["statusCode"] == 200
        assert record_files(store) == [f"app={APP_A}/dt=2021-05-01/2021050113-2021050113.json"]


class TestMigrate:
    def test_given_an_older_store_when_dry_run_then_moves_listed_and_nothing_changed(
        self, tmp_path: Path
    ) -> None:
        sink, records = old_store(tmp_path)
        before = {p: (tmp_path / p).read_bytes() for p in record_files(tmp_path)}

        found = migrate.migrate(sink, "Asia/Shanghai")

        assert sorted(found.moves) == sorted(
            [
                (old_key(records["day"]), "daily/" + old_key(records["day"])),
                (old_key(records["range"]), "ranges/" + old_key(records["range"])),
            ]
        )
        assert {p: (tmp_path / p).read_bytes() for p in record_files(tmp_path)} == before
        assert not (tmp_path / "_store.json").exists()

    def test_given_an_older_store_when_applied_twice_then_each_record_at_its_grain_once(
        self, tmp_path: Path
    ) -> None:
        sink, records = old_store(tmp_path)
        sink.put("app=1400006874/notes.json", b"not a record")
        other = record("2021050112", "2021050112", tz="UTC")
        sink.put(f"app={APP_A}/dt=2021-05-01/utc.json", json.dumps(other.to_dict()).encode())

        first = migrate.migrate(sink, "Asia/Shanghai", apply=True)
        second = migrate.migrate(sink, "Asia/Shanghai", apply=True)

        assert len(first.moves) == 2
        assert second.moves == []
        assert first.foreign == ["app=1400006874/notes.json"]
        assert first.other_zone == [f"app={APP_A}/dt=2021-05-01/utc.json"]
        files = record_files(tmp_path)
        for item in records.values():
            assert files.count(item.key) == 1
            assert json.loads((tmp_path / item.key).read_text()) == item.to_dict()
        assert old_key(records["range"]) not in files
        # Another zone's record was left alone, so the store's zone stays unrecorded.
        assert not (tmp_path / "_store.json").exists()

    def test_given_an_outbox_owing_a_moved_record_when_applied_then_it_owes_the_new_key(
        self, tmp_path: Path
    ) -> None:
        sink, records = old_store(tmp_path)
        migrate.migrate(sink, "Asia/Shanghai", apply=True)
        (entry,) = Outbox(sink).entries(None)
        assert entry.owed == {"webhook:127.0.0.1:9#abcd": [records["range"].key]}
        assert entry.records_owed_to("webhook:127.0.0.1:9#abcd") == [records["range"]]
        assert json.loads((tmp_path / "_store.json").read_text())["timezone"] == "Asia/Shanghai"

    def test_given_the_cli_when_migrating_then_dry_run_first_and_apply_on_request(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        _sink, records = old_store(tmp_path)
        assert main(["store", "migrate", "--sink", f"file://{tmp_path}"]) == 0
        out, err = capsys.readouterr()
        assert f"{old_key(records['day'])} -> daily/{old_key(records['day'])}" in out
        assert "2 record(s) to move" in err
        assert "outbox: 1 entry(ies) would owe the new keys" in err
        assert "add --apply" in err
        assert (tmp_path / old_key(records["day"])).exists()

        assert main(["store", "migrate", "--sink", f"file://{tmp_path}", "--apply"]) == 0
        out, err = capsys.readouterr()
        assert "2 record(s) moved" in err
        assert "1 entry(ies) now owe the new keys" in err
        assert (tmp_path / records["day"].key).exists()

    def test_given_a_later_fetch_already_at_the_new_key_when_applied_then_it_is_kept(
        self, tmp_path: Path
    ) -> None:
        """A `backfill --by day` since the old version (or a rerun of a cut-off migrate)
        already wrote the day at its grain: the older copy must not overwrite it."""
        sink, records = old_store(tmp_path)
        day = records["day"]
        later = day._replace(fetched_at=datetime(2021, 6, 1, tzinfo=timezone.utc))
        sink.put(later.key, json.dumps(later.to_dict()).encode())

        found = migrate.migrate(sink, "Asia/Shanghai", apply=True)

        assert (old_key(day), day.key) in found.moves
        assert json.loads((tmp_path / day.key).read_text()) == later.to_dict()
        assert not (tmp_path / old_key(day)).exists()

    def test_given_a_copy_without_offset_at_the_new_key_when_applied_then_compared_as_utc(
        self, tmp_path: Path
    ) -> None:
        """A hand-copied record whose fetched_at lost its `Z` is read as UTC, not refused."""
        sink, records = old_store(tmp_path)
        day = records["day"]
        copied = {**day.to_dict(), "fetched_at": "2021-05-09T00:00:00"}  # a day older
        sink.put(day.key, json.dumps(copied).encode())

        migrate.migrate(sink, "Asia/Shanghai", apply=True)

        assert json.loads((tmp_path / day.key).read_text()) == day.to_dict()

    def test_given_a_store_of_another_zone_when_migrated_then_refused(self, tmp_path: Path) -> None:
        sink, _ = old_store(tmp_path)
        sink.put("_store.json", b'{"timezone": "UTC", "layout": 2}')
        with pytest.raises(ConfigError, match="SMS_STATS_TIMEZONE=UTC"):
            migrate.migrate(sink, "Asia/Shanghai")


BUCKET = "stats-1250000000"
TIMER = load_event("timer.json")  # 2021-05-01 13:05 in Shanghai: far from the moved records
WRITES = 7  # a whole migrate of the older store: 2 copies, 2 outbox entries, 2 deletes, meta


def moved_deliveries(receiver: WebhookReceiver) -> list[tuple[str, str]]:
    """The day and range windows among what the receiver took (each record on its own)."""
    windows = [
        (item["begin_time"], item["end_time"])
        for message in receiver.accepted
        for item in message.json["records"]
    ]
    return sorted(w for w in windows if w[0] != w[1])


class TestMigrateNeverStrandsADebt:
    """Issue 23, item 6: a migrate cut off after its first move left the moved day record owed
    by its old key, which no run delivered again. Whatever step a run stops at, a rerun and
    then a timer run with the webhook back deliver each owed record once, and nothing stays
    owed."""

    @pytest.fixture
    def cos(self) -> Iterator[CosStandIn]:
        with CosStandIn(
            credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets=[BUCKET]
        ) as stand_in:
            yield stand_in

    @pytest.fixture
    def receiver(self) -> Iterator[WebhookReceiver]:
        with WebhookReceiver() as server:
            yield server

    @pytest.mark.parametrize("writes", range(WRITES + 1))
    def test_given_migrate_stopped_after_each_write_when_rerun_then_timer_delivers_each_once(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        cos: CosStandIn,
        receiver: WebhookReceiver,
        context: dict[str, Any],
        capsys: pytest.CaptureFixture[str],
        writes: int,
    ) -> None:
        url = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        monkeypatch.setenv("SMS_STATS_SINKS", f"{url},{receiver.url}")
        (store, webhook) = build_sinks(load_settings())
        assert isinstance(store, Store)
        records = write_older_store(store, webhook.name)
        assert webhook.name == label("webhook", receiver.url)
        before = len(cos.requests)
        cos.set_fault(CosFault(403, "AccessDenied", methods=("PUT", "DELETE"), after=writes))

        cut_off = main(["store", "migrate", "--sink", url, "--apply"])

        made = [r for r in cos.requests[before:] if r.method in ("PUT", "DELETE")]
        assert [r.status == 403 for r in made] == [False] * writes + [True] * (writes < WRITES)
        assert cut_off == (1 if writes < WRITES else 0)
        # Where it stopped, each debt (as stored) names a key that holds its record.
        objects = {key.removeprefix("stats/"): obj.body for (_, key), obj in cos.objects.items()}
        debts = [json.loads(body)["owed"] for key, body in objects.items() if "_outbox/" in key]
        owed = [k for debt in debts for keys in debt.values() for k in keys]
        assert len(owed) == 2
        assert all(json.loads(objects[key])["begin_time"] in key for key in owed)
        cos.clear_faults()
        assert main(["store", "migrate", "--sink", url, "--apply"]) == 0
        assert "AccessDenied" in capsys.readouterr().err or writes == WRITES

        objects = {key.removeprefix("stats/"): obj.body for (_, key), obj in cos.objects.items()}
        for item in records.values():
            assert json.loads(objects[item.key]) == item.to_dict()
        assert old_key(records["day"]) not in objects
        assert old_key(records["range"]) not in objects
        debts = [json.loads(body)["owed"] for key, body in objects.items() if "_outbox/" in key]
        assert sorted(k for owed in debts for keys in owed.values() for k in keys) == sorted(
            [records["day"].key, records["range"].key]
        )  # as stored: each debt names where its record is now

        assert main_handler(TIMER, context)["ok"] is True

        assert moved_deliveries(receiver) == [
            ("2021050100", "2021050123"),
            ("2021050113", "2021050118"),
        ]
        assert not [key for (_, key) in cos.objects if "/_outbox/" in key]

    def test_given_a_debt_left_on_an_old_key_by_an_earlier_version_when_timer_runs_then_sent(
        self,
        scf_env: dict[str, str],
        monkeypatch: pytest.MonkeyPatch,
        store: Path,
        receiver: WebhookReceiver,
        context: dict[str, Any],
    ) -> None:
        """What the released `store migrate` left when it was cut off after its first move:
        the day record at its new key, its old key gone, the outbox owing the old key."""
        monkeypatch.setenv("SMS_STATS_SINKS", f"file://{store},{receiver.url}")
        sink = file_sink(store)
        records = write_older_store(sink, label("webhook", receiver.url))
        day = records["day"]
        sink.put(day.key, sink.get(old_key(day)) or b"")
        sink.delete(old_key(day))

        (entry, _) = sorted(Outbox(sink).entries(None), key=lambda e: e.records[0].window.label)
        assert (entry.records, entry.resolved) == ([day], True)
        assert entry.records_owed_to(label("webhook", receiver.url)) == [day]
        assert migrate.migrate(sink, "Asia/Shanghai").outbox_entries == 2  # a dry run

        assert main_handler(TIMER, context)["ok"] is True

        assert moved_deliveries(receiver) == [
            ("2021050100", "2021050123"),
            ("2021050113", "2021050118"),
        ]
        assert list(store.glob("_outbox/*")) == []


class TestGaps:
    def test_given_hours_and_a_day_when_gaps_by_day_then_only_days_count(
        self, scf_env: dict[str, str], store: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        assert main(["backfill", "--from", "2021050100", "--to", "2021050123", "--by", "day"]) == 0
        assert main(["backfill", "--from", "2021050200", "--to", "2021050201"]) == 0
        capsys.readouterr()

        assert main(["gaps", "--from", "2021050100", "--to", "2021050223", "--by", "day"]) == 1
        out, err = capsys.readouterr()
        assert out.split("\n")[:2] == [
            f"{APP_A} 2021-05-02 file:{store}",
            f"{APP_B} 2021-05-02 file:{store}",
        ]
        assert "2 day(s) missing" in err


def test_given_the_hour_layout_when_read_by_duckdb_then_totals_equal_one_api_call(
    scf_env: dict[str, str], store: Path
) -> None:
    """What an analyst does: hive partitions, no glue, a SUM over hours; it must equal what one
    call over the same range answers (a day or range record beside the hours would double it)."""
    assert main(["backfill", "--from", "2021050100", "--to", "2021050123", "--by", "day"]) == 0
    assert main(["backfill", "--from", "2021050100", "--to", "2021050123"]) == 0
    assert main(["backfill", "--from", "2021050110", "--to", "2021050112", "--by", "hour"]) == 0
    rows = duckdb.sql(
        f"""
        SELECT app, sum(request_count), sum(request_success_count), sum(fee_count), count(*)
        FROM read_json_auto('{store}/app=*/dt=*/*.json', hive_partitioning = true)
        GROUP BY app ORDER BY app
        """
    ).fetchall()
    for app_id, requests, successes, fees, hours in rows:
        one_call = Emulator.expected(str(app_id), "2021050100", "2021050123")
        assert (requests, successes, fees, hours) == (
            one_call["RequestCount"],
            one_call["RequestSuccessCount"],
            one_call["FeeCount"],
            24,
        )
    assert len(rows) == 2
    daily = duckdb.sql(
        f"SELECT sum(request_count) FROM read_json_auto('{store}/daily/app=*/dt=*/*.json', "
        "hive_partitioning = true)"
    ).fetchone()
    assert daily is not None
    assert daily[0] == sum(row[1] for row in rows)
