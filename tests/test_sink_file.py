"""`file:` sink: the local store, written atomically at the COS sink's keys."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest

from sms_stats.core.errors import ConfigError
from sms_stats.core.records import Counts, Record
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.sinks import SinkError, build_sinks, deliver_all
from sms_stats.store.file import FileSink

from .conftest import APP_A

HOUR = Window.from_api("2021050113", "2021050113", zone("Asia/Shanghai"))


def record(requests: int = 1880) -> Record:
    counts = Counts(requests, requests - 5, requests + 22, "rid-1")
    return Record(APP_A, HOUR, "Asia/Shanghai", counts, datetime(2021, 5, 1, tzinfo=timezone.utc))


def file_sink(root: Path) -> FileSink:
    (sink,) = build_sinks(Settings(sinks=(f"file://{root}",)))
    assert isinstance(sink, FileSink)
    return sink


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_given_record_when_delivered_then_json_at_its_key_and_exists(tmp_path: Path) -> None:
    sink = file_sink(tmp_path)
    assert not sink.exists(record().key)
    (outcome,) = deliver_all([record()], [sink])
    assert outcome.ok
    path = tmp_path / f"app={APP_A}/dt=2021-05-01/2021050113-2021050113.json"
    assert json.loads(path.read_text(encoding="utf-8")) == record().to_dict()
    assert sink.exists(record().key)


def test_given_rerun_when_delivered_then_same_file_overwritten_and_no_temp_left(
    tmp_path: Path,
) -> None:
    sink = file_sink(tmp_path)
    deliver_all([record(1880)], [sink])
    deliver_all([record(1999)], [sink])
    (path,) = [p for p in tmp_path.rglob("*") if p.is_file()]  # no .tmp- leftovers beside it
    assert path.name == "2021050113-2021050113.json"
    assert json.loads(path.read_text(encoding="utf-8"))["request_count"] == 1999


def test_given_umask_022_when_written_then_file_is_0644_like_any_plain_write(
    tmp_path: Path, umask_022: None
) -> None:
    """A store synced to COS or served by a web server must be readable by that process."""
    deliver_all([record()], [file_sink(tmp_path)])
    (path,) = list(tmp_path.rglob("*.json"))
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_given_unwritable_directory_when_delivered_then_outcome_names_the_path(
    tmp_path: Path,
) -> None:
    blocker = tmp_path / "store"
    blocker.write_text("a file where the directory should be", encoding="utf-8")
    (outcome,) = deliver_all([record()], [file_sink(blocker)])
    assert not outcome.ok
    assert "could not write" in (outcome.error or "")


@pytest.mark.parametrize("url", ["file://host/dir", "file:///dir?x=1", "file:"])
def test_given_bad_file_url_when_built_then_config_error_names_the_setting(url: str) -> None:
    with pytest.raises(ConfigError, match="SMS_STATS_SINKS item 1"):
        build_sinks(Settings(sinks=(url,)))


class TestStore:
    """The object operations the outbox and resumes use, on a real directory."""

    def test_given_objects_when_put_listed_read_deleted_then_round_trip(
        self, tmp_path: Path
    ) -> None:
        sink = file_sink(tmp_path)
        assert sink.keys("_outbox/") == []
        assert sink.get("_outbox/a.json") is None
        sink.put("_outbox/a.json", b"1")
        sink.put("_outbox/sub/b.json", b"2")
        sink.put("app=1/x.json", b"3")
        (tmp_path / "_outbox" / ".tmp-123").write_bytes(b"half")
        assert sink.keys("_outbox/") == ["_outbox/a.json", "_outbox/sub/b.json"]
        assert sink.keys("") == ["_outbox/a.json", "_outbox/sub/b.json", "app=1/x.json"]
        assert sink.get("_outbox/sub/b.json") == b"2"
        sink.delete("_outbox/a.json")
        sink.delete("_outbox/a.json")  # absent: nothing to do, no error
        assert not sink.exists("_outbox/a.json")
        assert sink.keys("_outbox/") == ["_outbox/sub/b.json"]

    def test_given_an_object_written_again_when_listed_then_its_version_changes(
        self, tmp_path: Path
    ) -> None:
        sink = file_sink(tmp_path)
        sink.put("app=1/x.json", b"same size")
        sink.put("app=1/y.json", b"y")
        before = sink.listing("app=1/")
        sink.put("app=1/x.json", b"same size")  # same bytes, same size: still a new write
        after = sink.listing("app=1/")
        assert sorted(after) == ["app=1/x.json", "app=1/y.json"]
        assert after["app=1/x.json"] != before["app=1/x.json"]
        assert after["app=1/y.json"] == before["app=1/y.json"]

    def test_given_a_file_where_the_folder_should_be_when_listed_then_sink_error(
        self, tmp_path: Path
    ) -> None:
        sink = file_sink(tmp_path)
        sink.put("app=1", b"not a folder")
        with pytest.raises(SinkError, match="could not list"):
            sink.keys("app=1/")

    @pytest.mark.parametrize("key", ["", "../escape.json", "a//b.json", "a/./b.json", "/abs"])
    def test_given_key_that_is_not_a_store_key_when_used_then_sink_error(
        self, tmp_path: Path, key: str
    ) -> None:
        with pytest.raises(SinkError, match="not a store key"):
            file_sink(tmp_path).put(key, b"x")

    def test_given_object_far_larger_than_ours_when_read_then_refused_not_loaded(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("sms_stats.store.file.MAX_OBJECT_BYTES", 10)
        sink = file_sink(tmp_path)
        sink.put("big.json", b"x" * 11)
        with pytest.raises(SinkError, match="larger than 10 bytes"):
            sink.get("big.json")
