"""The dashboard: its charts and page (gaps, escaping, empty data, daylight saving), the login
cookie (tampered, expired, rotated out), access (bearer, 303 vs 401), bad input and a store that
fails, all through `main_handler` as the Function URL calls it."""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from unittest import mock
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats import handler
from sms_stats.collect import client
from sms_stats.core import redact
from sms_stats.core.log import logger
from sms_stats.core.settings import load_settings
from sms_stats.deliver.sinks import build_sinks
from sms_stats.emulator import Emulator
from sms_stats.run import backfill, pipeline
from sms_stats.store import layout
from sms_stats.store.base import find_store
from sms_stats.store.file import FileSink
from sms_stats.web.dashboard import charts, daily, data, page, session, ticks
from sms_stats.web.dashboard.data import AppSeries, SendPoint

from .conftest import API_TOKEN, APP_A, APP_B, SECRET_ID, SECRET_KEY, SESSION_TOKEN
from .probe import run_fresh
from .standins.cos import CosFault, CosStandIn, StoredObject, closed_port

NOW = datetime(2021, 5, 3, 5, 30, tzinfo=timezone.utc)
TIMER = {"Type": "Timer", "TriggerName": "t", "Time": "2021-05-03T05:05:00Z"}
SHANGHAI = ZoneInfo("Asia/Shanghai")

# -- stores built once: what timer runs and backfills leave, read by many tests -----------------

MONTH_NOW = datetime(2021, 6, 10, 5, 30, tzinfo=timezone.utc)  # Thursday 13:30 in Shanghai
OUTAGE = (datetime(2021, 6, 5, 9, tzinfo=SHANGHAI), 5)  # the function did not run: 5 hours
LOST_DAY = "2021-05-20"  # a day APP_A's backfill never fetched
APP_B_SINCE = "2021053100"  # APP_B is new: its history starts here
_built: dict[str, Path] = {}


def _reset() -> None:
    """What conftest's `_clean_state` clears, for a store built outside any one test."""
    handler._settings_cache.clear()
    handler._sinks_cache.clear()
    client._sdk_clients.clear()
    client._limiters.clear()
    pipeline._clients.clear()
    layout.clear_cache()
    redact.clear()
    data.clear_cache()


@contextmanager
def _collecting(store: Path, clock: list[datetime]) -> Iterator[Emulator]:
    """An SMS API stand-in whose clock is the runs' (packages and receipts as of then, all
    receipts in at once) and the environment of a function writing to `store`."""
    emulator = Emulator(
        credentials={SECRET_ID: SECRET_KEY}, clock=lambda: clock[0], settle_after=timedelta(0)
    ).start()
    saved, level = dict(os.environ), logger.level
    try:
        for name in [n for n in os.environ if n.startswith(("SMS_STATS_", "TENCENTCLOUD_"))]:
            del os.environ[name]
        os.environ.update(
            {
                "TENCENTCLOUD_SECRETID": SECRET_ID,
                "TENCENTCLOUD_SECRETKEY": SECRET_KEY,
                "TENCENTCLOUD_REGION": "ap-guangzhou",
                "SMS_STATS_ENDPOINT": emulator.endpoint,
                "SMS_STATS_APP_IDS": f"{APP_A},{APP_B}",
                "SMS_STATS_SINKS": f"file://{store}",
                "SMS_STATS_API_TOKEN": API_TOKEN,
                "SMS_STATS_SETTLE_HOURS": "0",
                "SMS_STATS_RATE_LIMIT": "1000",  # the stand-in's pace is not what is built
                "SMS_STATS_CONCURRENCY": "8",
                "SMS_STATS_LOG_LEVEL": "ERROR",
            }
        )
        _reset()
        with mock.patch.object(handler, "utcnow", side_effect=lambda: clock[0]):
            yield emulator
    finally:
        os.environ.clear()
        os.environ.update(saved)
        logger.level = level  # the runs set SMS_STATS_LOG_LEVEL's
        _reset()
        emulator.stop()


def _timer(at: datetime, collect: str) -> None:
    handler._settings_cache.clear()
    os.environ["SMS_STATS_COLLECT"] = collect
    event = {**TIMER, "Time": at.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}
    assert main_handler(event, {"request_id": "r", "time_limit_in_ms": 60_000})["ok"]


def build_month(root: Path) -> Path:
    """Five weeks as a deployment leaves them, built once a session: hours backfilled (APP_A
    from 2021-05-08 less one day never fetched, APP_B only since 05-31) and a balance each
    evening, then a week of hourly timer runs (sends, receipts, balance, the default alert
    rules judged) but for a 5-hour outage on 06-05."""
    if "month" in _built:
        return _built["month"]
    store = root / "store"
    last_backfilled = (MONTH_NOW - timedelta(days=7)).astimezone(SHANGHAI)
    last_backfilled = last_backfilled.replace(minute=0, second=0, microsecond=0)
    clock = [MONTH_NOW]
    with _collecting(store, clock):
        settings = load_settings()
        sinks = build_sinks(settings)
        lost = datetime.fromisoformat(LOST_DAY)
        stop = f"{last_backfilled - timedelta(hours=1):%Y%m%d%H}"
        for app, begin, end in (
            (APP_A, "2021050800", f"{lost - timedelta(hours=1):%Y%m%d%H}"),
            (APP_A, f"{lost + timedelta(days=1):%Y%m%d%H}", stop),
            (APP_B, APP_B_SINCE, stop),
        ):
            job = backfill.plan(
                [app], begin, end, "hour", settings, sinks, MONTH_NOW, kinds=("send", "callback")
            )
            assert backfill.run(job, settings, sinks).ok
        first = datetime(2021, 5, 8, 21, 5, tzinfo=SHANGHAI)
        for day in range((last_backfilled - first).days + 1):  # a balance each evening
            clock[0] = first + timedelta(days=day)
            new = clock[0] >= datetime.strptime(APP_B_SINCE, "%Y%m%d%H").replace(tzinfo=SHANGHAI)
            os.environ["SMS_STATS_APP_IDS"] = f"{APP_A},{APP_B}" if new else APP_A
            _timer(clock[0], "packages")
        os.environ["SMS_STATS_APP_IDS"] = f"{APP_A},{APP_B}"
        outage = [OUTAGE[0] + timedelta(hours=n, minutes=5) for n in range(1, OUTAGE[1] + 1)]
        for hour in range(7 * 24, 0, -1):
            at = last_backfilled + timedelta(hours=7 * 24 - hour + 1, minutes=5)
            if at > MONTH_NOW or at in outage:
                continue
            clock[0] = at
            _timer(at, "send,callback,packages")
    _built["month"] = store
    return store


@pytest.fixture
def pinned(mocker: MockerFixture) -> None:
    mocker.patch.object(handler, "utcnow", return_value=NOW)
    data.clear_cache()


def build_day(root: Path) -> Path:
    """30 hours of sends, receipts and a balance for both apps, stored by one timer run (a
    lookback of 30 hours) at NOW; built once a session."""
    if "day" not in _built:
        store = root / "store"
        with _collecting(store, [NOW]):
            os.environ["SMS_STATS_ALERTS"] = "[]"
            os.environ["SMS_STATS_COLLECT"] = "send,callback,packages"
            event = {**TIMER, "Message": json.dumps({"window": "hour", "lookback": 30})}
            assert main_handler(event, {"request_id": "r", "time_limit_in_ms": 60_000})["ok"]
        _built["day"] = store
    return _built["day"]


@pytest.fixture(scope="session")
def day_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_day(tmp_path_factory.mktemp("day"))


@pytest.fixture(scope="session")
def month_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_month(tmp_path_factory.mktemp("month"))


@pytest.fixture
def filled(scf_env: dict[str, str], pinned: None, day_store: Path, store: Path) -> None:
    """The 30 hours of `build_day`, in this test's own store (tests here change it)."""
    shutil.copytree(day_store, store)


@pytest.fixture
def month(
    scf_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    mocker: MockerFixture,
    month_store: Path,
) -> Path:
    """The five weeks of `build_month`, viewed at MONTH_NOW with the default alert rules. The
    store is shared: a view adds rollups to it, which change nothing a view shows."""
    monkeypatch.setenv("SMS_STATS_SINKS", f"file://{month_store}")
    monkeypatch.delenv("SMS_STATS_ALERTS")
    mocker.patch.object(handler, "utcnow", return_value=MONTH_NOW)
    data.clear_cache()
    return month_store


def get(path: str = "/dashboard", headers: dict[str, str] | None = None, **query: Any) -> Any:
    event = {
        "httpMethod": "GET",
        "path": path,
        "headers": {"authorization": f"Bearer {API_TOKEN}"} if headers is None else headers,
        "queryString": query,
        "body": "",
    }
    return main_handler(event, {"request_id": "req-1"})


def post(path: str, body: str = "", headers: dict[str, str] | None = None) -> Any:
    event = {"httpMethod": "POST", "path": path, "headers": headers or {}, "body": body}
    return main_handler(event, {"request_id": "req-1"})


def points(body: str, chart: str) -> int:
    """The chart's points, the same in each of its drawings (wide and narrow)."""
    found = re.findall(rf'data-chart="{chart}"(?: data-variant="\w+")? data-points="(\d+)"', body)
    assert found, chart
    assert len(set(found)) == 1, found
    return int(found[0])


def wide(body: str, chart: str) -> str:
    """The wide drawing of a chart: its SVG's text."""
    found = re.search(rf'<svg class="chart wide"[^>]*data-chart="{chart}".*?</svg>', body)
    assert found, chart
    return found.group(0)


def section(body: str, app: str) -> str:
    found = re.search(rf'<section class="app" data-app="{app}">.*?</section>', body)
    assert found, app
    return found.group(0)


# -- charts and page -------------------------------------------------------------------------


def test_given_an_hour_missing_when_charted_then_the_line_breaks_there_not_at_zero() -> None:
    hour = 3600
    pts = [(0, hour, 5.0), (hour, 2 * hour, 6.0), (3 * hour, 4 * hour, 7.0)]
    axis = charts.TimeAxis(0, 4 * hour, ZoneInfo("UTC"))
    figure = charts.line_chart("t", [charts.Line("a", pts)], axis)
    svg = wide(figure, "")
    assert svg.count("<polyline") == 1  # the first two hours
    assert svg.count('<circle class="pt"') == 1  # the hour after the gap, alone
    assert figure.count('data-points="3"') == 2  # drawn wide and narrow
    assert charts.segments(pts) == [pts[:2], pts[2:]]


def test_given_no_points_when_charted_then_it_says_so() -> None:
    axis = charts.TimeAxis(0, 3600, ZoneInfo("UTC"))
    figure = charts.line_chart("t", [charts.Line("a", [])], axis)
    assert figure.count("no data in this range") == 2
    assert points(figure, "") == 0


def test_given_a_dst_week_when_charted_then_day_lines_fall_on_local_midnights() -> None:
    tz = ZoneInfo("America/New_York")
    lo = int(datetime(2021, 11, 6, tzinfo=tz).timestamp())
    hi = int(datetime(2021, 11, 9, tzinfo=tz).timestamp())
    midnights = charts.local_midnights(lo, hi, tz)
    assert [b - a for a, b in itertools.pairwise(midnights)] == [
        24 * 3600,
        25 * 3600,
    ]  # Nov 7: fall back


def test_given_hostile_text_when_rendered_then_it_is_escaped() -> None:
    evil = '<script>alert("x")</script>'
    view = page.View(
        app_ids=[APP_A],
        days=1,
        start=NOW,
        end=NOW,
        tz=ZoneInfo("UTC"),
        timezone="UTC",
        base="",
        now=NOW,
        series={APP_A: AppSeries(APP_A, problems=[evil])},
        fired=[{"alert": evil, "app_id": APP_A, "since": "2021-05-03", "firing": True}],
        notes=[evil],
    )
    html = page.render(view)
    assert "<script>" not in html
    assert html.count("&lt;script&gt;") == 3
    assert '<meta name="viewport"' in html


def test_given_twenty_apps_with_no_data_when_rendered_then_each_has_its_empty_charts() -> None:
    apps = [f"14000000{n:02d}" for n in range(20)]
    view = page.View(apps, 7, NOW, NOW, ZoneInfo("UTC"), "UTC", "", NOW)
    html = page.render(view)
    assert html.count('<section class="app"') == 20
    assert html.count("no data in this range") == 2 * 60  # volume, rates, balance: 2 drawings
    assert html.count("No data stored for this app in this range") == 20


# -- the page through main_handler -------------------------------------------------------------


def test_given_stored_hours_when_a_script_asks_then_every_chart_has_their_points(
    filled: None,
) -> None:
    answer = get(days="2")
    assert answer["statusCode"] == 200
    assert answer["headers"]["Content-Security-Policy"] == page_csp()
    body = answer["body"]
    for app in (APP_A, APP_B):
        # 2021-05-02 00:00 to 2021-05-03 13:00 Shanghai: the 30 stored hours all fall in it
        assert points(body, f"{app}-volume") == 2 * 30
        assert points(body, f"{app}-balance") == 1
    assert "http://" not in body
    assert "https://" not in body


def page_csp() -> str:
    return "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def test_given_one_day_when_asked_then_only_its_hours_are_drawn(filled: None) -> None:
    body = get(days="1", app_id=APP_A)["body"]
    # 2021-05-03 00:00..13:00 Shanghai: 13 of the 30 hours
    assert points(body, f"{APP_A}-volume") == 2 * 13
    assert f'data-app="{APP_B}"' not in body


@pytest.mark.parametrize("days", ["0", "32", "abc", "-1"])
def test_given_days_out_of_range_when_asked_then_a_clear_400_page(
    pinned: Any, scf_env: Any, days: str
) -> None:
    answer = get(days=days)
    assert answer["statusCode"] == 400
    assert "days: a whole number from 1 to 31" in answer["body"]
    assert answer["headers"]["Content-Type"].startswith("text/html")


def test_given_an_app_that_is_no_app_id_when_asked_then_400(pinned: Any, scf_env: Any) -> None:
    answer = get(app_id="nope<b>")
    assert answer["statusCode"] == 400
    assert "&lt;b&gt;" in answer["body"]
    assert "<b>" not in answer["body"]


def test_given_an_app_outside_the_allowlist_when_asked_then_403(pinned: Any, scf_env: Any) -> None:
    answer = get(app_id=f"{APP_A},1400000099")
    assert answer["statusCode"] == 403
    assert "1400000099 is not open to HTTP queries" in answer["body"]


def test_given_a_corrupt_object_when_shown_then_it_is_named_and_the_rest_renders(
    filled: None, store: Path
) -> None:
    broken = next(store.glob(f"app={APP_A}/dt=2021-05-03/*.json"))
    broken.write_text("{not json")
    body = get(days="1")["body"]
    assert f"Not shown: app={APP_A}/dt=2021-05-03/{broken.name}" in body
    assert points(body, f"{APP_A}-volume") == 2 * 12
    assert points(body, f"{APP_B}-volume") == 2 * 13


def test_given_an_unreachable_store_when_shown_then_a_page_says_so(
    pinned: Any, scf_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = closed_port()
    url = f"cos://stats-1250000000/p?region=ap-guangzhou&endpoint=http://127.0.0.1:{port}"
    monkeypatch.setenv("SMS_STATS_SINKS", url)
    monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
    answer = get(days="1")
    assert answer["statusCode"] == 200
    assert "the store did not answer" in answer["body"]
    assert "Traceback" not in answer["body"]


def test_given_days_viewed_when_another_container_views_them_then_it_reads_rollups_not_hours(
    filled: None, store: Path
) -> None:
    sink = FileSink(store, "file:store")
    first, second = data.Stats(), data.Stats()
    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(2021, 5, 2, tzinfo=tz)
    args = ([APP_A], start, NOW, tz)
    one = data.read(sink, *args, stats=first)
    data.clear_cache()
    two = data.read(sink, *args, stats=second)
    assert first.rollups_written == 1  # May's: every hour read of 05-02 and 05-03
    assert second.rollups_used == 1
    assert first.objects_read == 61  # 30 sends, 30 receipts, 1 balance
    assert second.objects_read == 0  # receipts still settling too: their versions are the same
    assert two[APP_A].send == one[APP_A].send
    assert two[APP_A].receipts == one[APP_A].receipts
    assert two[APP_A].balance == one[APP_A].balance
    # a backfilled hour is not in the rollup: it is listed, so it is read and shown
    extra = json.loads(next(store.glob(f"app={APP_A}/dt=2021-05-02/*.json")).read_text())
    extra.update(begin_time="2021050200", end_time="2021050200")
    extra.update(window_start="2021-05-02T00:00:00+08:00", window_end="2021-05-02T01:00:00+08:00")
    (store / f"app={APP_A}/dt=2021-05-02/2021050200-2021050200.json").write_text(json.dumps(extra))
    data.clear_cache()
    three = data.read(sink, *args, stats=data.Stats())
    assert len(three[APP_A].send) == len(one[APP_A].send) + 1


def test_given_receipts_that_settle_when_viewed_again_then_their_new_counts_show(
    filled: None, store: Path
) -> None:
    """A rollup holds receipts still arriving: the collector writes their hour again as they
    come (a new version), so the next view reads that hour, and only it."""
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A], datetime(2021, 5, 3, tzinfo=tz), NOW, tz)
    one = data.read(sink, *args, stats=data.Stats())
    key = f"callback/app={APP_A}/dt=2021-05-03/2021050312-2021050312.json"
    record = json.loads((store / key).read_text())
    record.update(
        callback_count=record["callback_count"] + 7,
        callback_success_count=record["callback_success_count"] + 7,
    )
    sink.put(key, json.dumps(record).encode())
    data.clear_cache()
    stats = data.Stats()
    two = data.read(sink, *args, stats=stats)
    assert stats.objects_read == 1
    assert sum(p.delivered for p in two[APP_A].receipts) == (
        sum(p.delivered for p in one[APP_A].receipts) + 7
    )


def test_given_hours_the_store_does_not_answer_for_when_viewed_then_the_rest_is_kept_for_the_next(
    filled: None, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first view of a month can run out of time: what it read goes into the rollups, and the
    page says in one line how many hours are missing, so a reload finishes the job."""
    bucket = "stats-1250000000"
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={bucket}) as cos:
        for path in store.rglob("*.json"):
            key = f"p/{path.relative_to(store)}"
            cos.objects[(bucket, key)] = StoredObject(path.read_bytes(), "application/json")
        url = f"cos://{bucket}/p?region=ap-guangzhou&endpoint={cos.endpoint}"
        monkeypatch.setenv("SMS_STATS_SINKS", url)
        monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
        sink = find_store(build_sinks(load_settings()))
        assert sink is not None
        cos.set_fault(CosFault(503, "ServiceUnavailable"), "/2021050221")  # sends and receipts
        cos.set_fault(CosFault(503, "ServiceUnavailable"), "/2021050222")
        tz = ZoneInfo("Asia/Shanghai")
        args = ([APP_A, APP_B], datetime(2021, 5, 2, tzinfo=tz), NOW, tz)
        first = data.Stats()
        one = data.read(sink, *args, stats=first)
        assert len(one[APP_A].problems) == 1
        assert one[APP_A].problems[0].startswith("4 hours could not be read, such as")
        assert first.rollups_written == 2  # both apps' May, all but those hours
        cos.clear_faults()
        data.clear_cache()
        second = data.Stats()
        two = data.read(sink, *args, stats=second)
        assert second.objects_read == 2 * 4  # only what the first view could not read
        assert two[APP_A].problems == []
        assert len(two[APP_A].send) == len(one[APP_A].send) + 2


def test_given_a_month_on_cos_when_viewed_then_each_app_and_kind_is_listed_once_a_month(
    scf_env: dict[str, str], month_store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """COS lists any prefix of a key: May 11..31 and Jun 1..10 cost one listing each per app
    and kind, not 31, and the page holds exactly what the day-by-day listings of a file store
    give."""
    bucket = "stats-1250000000"
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A, APP_B], datetime(2021, 5, 11, tzinfo=tz), MONTH_NOW, tz)
    data.clear_cache()
    by_day = data.read(FileSink(month_store, "file:month"), *args, stats=data.Stats())
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={bucket}) as cos:
        for path in month_store.rglob("*.json"):
            if not str(path.relative_to(month_store)).startswith("dashboard/"):
                key = f"p/{path.relative_to(month_store)}"
                cos.objects[(bucket, key)] = StoredObject(path.read_bytes(), "application/json")
        url = f"cos://{bucket}/p?region=ap-guangzhou&endpoint={cos.endpoint}"
        monkeypatch.setenv("SMS_STATS_SINKS", url)
        sink = find_store(build_sinks(load_settings()))
        assert sink is not None
        first, second = data.Stats(), data.Stats()
        one = data.read(sink, *args, stats=first)
        data.clear_cache()
        two = data.read(sink, *args, stats=second)  # a new container
    assert first.listed == second.listed == 2 * 3 * 2  # apps x kinds x months
    for app in (APP_A, APP_B):
        for got in (one[app], two[app]):
            assert (got.send, got.receipts, got.balance) == (
                by_day[app].send,
                by_day[app].receipts,
                by_day[app].balance,
            )
            assert got.problems == []
    assert second.objects_read == 0
    assert second.rollups_used == 2 * 2  # May's and June's of each app


def test_given_an_hour_written_again_when_viewed_then_its_new_counts_show_not_the_rollups(
    filled: None, store: Path
) -> None:
    """What `backfill --force` does: the same key, new content. Both copies of the old point
    (the rollup in the store and this container's memory) must give way."""
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A], datetime(2021, 5, 2, tzinfo=tz), NOW, tz)
    one = data.read(sink, *args, stats=data.Stats())
    key = f"app={APP_A}/dt=2021-05-02/2021050210-2021050210.json"
    record = json.loads((store / key).read_text())
    record.update(request_count=record["request_count"] + 1000)
    sink.put(key, json.dumps(record).encode())

    warm, cold = data.Stats(), data.Stats()
    two = data.read(sink, *args, stats=warm)  # same container
    data.clear_cache()
    three = data.read(sink, *args, stats=cold)  # another one

    def hour_ten(series: dict[str, AppSeries]) -> int:
        start = int(datetime(2021, 5, 2, 10, tzinfo=tz).timestamp())
        return next(p.requests for p in series[APP_A].send if p.start == start)

    assert hour_ten(two) == hour_ten(three) == hour_ten(one) + 1000
    assert warm.rollups_written == 1  # the day's rollup now holds the new version
    assert cold.objects_read == 0
    assert cold.rollups_used == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [("requests", "1880"), ("requests", 2**64), ("rate", 1.5), ("reasons", [1, 2]), ("at", True)],
)
def test_given_a_rollup_with_a_count_that_is_no_count_when_viewed_then_the_records_are_shown(
    filled: None, store: Path, capfd: pytest.CaptureFixture[str], field: str, value: Any
) -> None:
    """A rollup is a copy: one whose content is not what this version writes is read no
    further, logged, and rebuilt from the records, which are what the page shows."""
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A], datetime(2021, 5, 2, tzinfo=tz), NOW, tz)
    one = data.read(sink, *args, stats=data.Stats())
    rollup = store / f"dashboard/app={APP_A}/month=2021-05.json"
    spoilt = json.loads(rollup.read_text())
    key, point = next((k, p) for k, p in spoilt["points"].items() if field in p)
    kept = point[field]
    point[field] = value
    rollup.write_text(json.dumps(spoilt))
    data.clear_cache()
    capfd.readouterr()
    stats = data.Stats()
    two = data.read(sink, *args, stats=stats)
    assert (two[APP_A].send, two[APP_A].receipts, two[APP_A].balance) == (
        one[APP_A].send,
        one[APP_A].receipts,
        one[APP_A].balance,
    )
    assert stats.objects_read == 61
    assert stats.rollups_written == 1
    assert json.loads(rollup.read_text())["points"][key][field] == kept
    assert '"event":"dashboard.rollup_unreadable"' in capfd.readouterr().out


def test_given_a_rollup_of_an_earlier_version_when_viewed_then_it_is_not_read(
    filled: None, store: Path
) -> None:
    """Rollups were once one a day (`dt=<date>.json`); a month's now. The old ones are left
    alone (deleting `dashboard/` is always safe) and the month's is built from the records."""
    old = store / f"dashboard/app={APP_A}/dt=2021-05-02.json"
    old.parent.mkdir(parents=True)
    old.write_text(json.dumps({"schema": "sms-stats-dashboard-day/v2", "points": {}}))
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    stats = data.Stats()
    got = data.read(sink, [APP_A], datetime(2021, 5, 2, tzinfo=tz), NOW, tz, stats=stats)
    assert (stats.rollups_used, stats.objects_read, stats.rollups_written) == (0, 61, 1)
    assert len(got[APP_A].send) == 30


def test_given_alerts_in_the_state_when_shown_then_they_are_listed(
    filled: None, store: Path
) -> None:
    state = {
        "schema": "sms-stats-alerts/v1",
        "alerts": {
            "k": {
                "rule": "delivery rate low",
                "metric": "delivery_rate",
                "app_id": APP_A,
                "hour": "2021-05-03T12:00:00+08:00",
                "firing": True,
                "since": "2021-05-03T10:00:00+08:00",
            }
        },
        "fired": [
            {
                "alert": "success low",
                "app_id": APP_B,
                "since": "2021-05-02T09:00:00+08:00",
                "date": "2021-05-02",
            }
        ],
    }
    (store / "alerts").mkdir()
    (store / "alerts/state.json").write_text(json.dumps(state))
    body = get(days="2")["body"]
    assert "delivery rate low" in body
    assert "success low" in body
    assert body.count('class="firing"') == 1


# -- access -----------------------------------------------------------------------------------


def login(token: str) -> Any:
    return post("/login", f"token={token}", {"content-type": "application/x-www-form-urlencoded"})


def cookie_of(answer: Any) -> str:
    header = answer["headers"]["Set-Cookie"]
    return header.split(";")[0]


def test_given_the_right_token_when_logging_in_then_a_strict_cookie_and_303(
    pinned: Any, scf_env: Any
) -> None:
    answer = login(API_TOKEN)
    assert answer["statusCode"] == 303
    assert answer["headers"]["Location"] == "/dashboard"
    flags = answer["headers"]["Set-Cookie"]
    for flag in ("HttpOnly", "Secure", "SameSite=Strict", "Path=/", "Max-Age=43200"):
        assert flag in flags
    assert API_TOKEN not in flags
    assert get(headers={"cookie": cookie_of(answer)}, days="1")["statusCode"] == 200


def test_given_a_wrong_token_when_logging_in_then_401_and_the_form_again(
    pinned: Any, scf_env: Any
) -> None:
    answer = login("wrong")
    assert answer["statusCode"] == 401
    assert "that token is not valid" in answer["body"]
    assert "Set-Cookie" not in answer["headers"]


def test_given_a_tampered_cookie_when_shown_then_refused(pinned: Any, scf_env: Any) -> None:
    name, value = cookie_of(login(API_TOKEN)).split("=", 1)
    expiry, signature = value.split(".")
    later = f"{name}={int(expiry) + 3600}.{signature}"
    flipped = f"{name}={expiry}.{signature[:-1]}{'0' if signature[-1] != '0' else '1'}"
    for cookie in (later, flipped, f"{name}=garbage"):
        assert get(headers={"cookie": cookie})["statusCode"] == 401


def test_given_an_expired_cookie_when_shown_then_a_browser_goes_to_login(
    pinned: Any, scf_env: Any, mocker: MockerFixture
) -> None:
    clock = mocker.patch.object(session, "clock", return_value=1_000_000.0)
    cookie = cookie_of(login(API_TOKEN))
    clock.return_value = 1_000_000.0 + 12 * 3600 - 1
    assert get(headers={"cookie": cookie})["statusCode"] == 200
    clock.return_value = 1_000_000.0 + 12 * 3600
    answer = get(headers={"cookie": cookie, "accept": "text/html,*/*"})
    assert answer["statusCode"] == 303
    assert answer["headers"]["Location"] == "/login"


def test_given_a_token_rotated_out_when_its_cookie_comes_then_refused(
    pinned: Any, scf_env: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_API_TOKEN", f"new-token-0a1b2c3d4e,{API_TOKEN}")
    cookie = cookie_of(login(API_TOKEN))
    assert get(headers={"cookie": cookie})["statusCode"] == 200  # both still configured
    monkeypatch.setenv("SMS_STATS_API_TOKEN", "new-token-0a1b2c3d4e")
    assert get(headers={"cookie": cookie})["statusCode"] == 401


def test_given_no_credentials_when_shown_then_a_browser_gets_303_and_a_script_401(
    pinned: Any, scf_env: Any
) -> None:
    browser = get(headers={"accept": "text/html"})
    assert browser["statusCode"] == 303
    assert browser["headers"]["Location"] == "/login"
    script = get(headers={})
    assert script["statusCode"] == 401
    assert json.loads(script["body"])["error"]["code"] == "AuthFailure.InvalidAuthorization"


def test_given_a_session_cookie_when_stats_is_asked_then_it_does_not_open_it(
    pinned: Any, scf_env: Any
) -> None:
    cookie = cookie_of(login(API_TOKEN))
    answer = get("/stats", {"cookie": cookie}, app_id=APP_A, begin="2021050112", end="2021050112")
    assert answer["statusCode"] == 401


def test_given_a_logout_when_posted_then_the_cookie_is_cleared(pinned: Any, scf_env: Any) -> None:
    answer = post("/logout")
    assert answer["statusCode"] == 303
    assert answer["headers"]["Set-Cookie"].startswith(f"{session.COOKIE}=; Max-Age=0")


def test_given_a_timer_run_when_it_ends_then_the_dashboard_was_not_imported(filled: None) -> None:
    program = (
        "import json, sys, index\n"
        f"index.main_handler({TIMER!r}, {{'request_id': 'r', 'time_limit_in_ms': 60000}})\n"
        "print(json.dumps([m for m in sys.modules if m.startswith('sms_stats.web.dashboard')]))\n"
    )
    assert run_fresh(program) == []


def view_of(series: AppSeries, days: int, now: datetime, **extra: Any) -> page.View:
    """A view of the last `days` days up to `now`'s hour, as web.py resolves it."""
    tz = ZoneInfo("UTC")
    end = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    first = now.date() - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=tz)
    return page.View(
        [series.app_id],
        days,
        start,
        end,
        tz,
        "UTC",
        "",
        now,
        series={series.app_id: series},
        **extra,
    )


def test_given_hours_missing_when_totalled_then_the_summary_says_how_many_not_a_lower_sum() -> None:
    now = datetime(2021, 5, 3, 3, 30, tzinfo=ZoneInfo("UTC"))  # 3 hours have ended today
    start = int(datetime(2021, 5, 3, tzinfo=ZoneInfo("UTC")).timestamp())
    s = AppSeries(
        APP_A,
        send=[
            SendPoint(start, start + 3600, 10, 9, 12, 0.9),
            SendPoint(start + 7200, start + 10800, 30, 30, 30, 1.0),
        ],
    )
    html = page.render(view_of(s, 1, now))
    assert "requests <b>40</b> (97.50% sent) · billed parts <b>42</b>" in html
    assert "receipts: no data" in html
    assert "messages left: no data" in html
    assert "Not stored, so not in these totals: sends 1 of 3 hours." in html


def test_given_an_empty_store_when_viewed_then_the_summary_says_no_data_not_zero(
    pinned: None, scf_env: Any
) -> None:
    body = get(days="7")["body"]
    for app in (APP_A, APP_B):
        summary = section(body, app)
        assert "No data stored for this app in this range" in summary
        assert "requests" not in summary.split('<div class="grid">')[0]


def test_given_the_functions_address_when_a_browser_opens_it_then_it_lands_on_the_dashboard(
    pinned: None, scf_env: Any
) -> None:
    answer = get("/", headers={"accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
    assert answer["statusCode"] == 303
    assert answer["headers"]["Location"] == "/dashboard"
    script = get("/", headers={})  # a script still learns the paths there are
    assert script["statusCode"] == 404
    assert "the paths are" in json.loads(script["body"])["error"]["message"]


def test_given_a_month_when_viewed_for_31_days_then_each_chart_draws_days_not_hours(
    month: Path,
) -> None:
    body = get(days="31")["body"]
    assert "May 11 00:00 \u2013 Jun 10 14:00 (Asia/Shanghai), per day" in body
    # APP_A: May 11..Jun 10, less May 20 that was never fetched
    assert points(body, f"{APP_A}-volume") == 2 * 30
    assert points(body, f"{APP_A}-rates") == 2 * 30
    assert points(body, f"{APP_A}-balance") == 31  # a balance every evening, then every hour
    # APP_B: since May 31
    assert points(body, f"{APP_B}-volume") == 2 * 11
    assert points(body, f"{APP_B}-balance") == 11
    assert "Messages and billed parts per day" in body
    volume = wide(body, f"{APP_A}-volume")
    assert volume.count('<polyline class="ln" data-series="requests"') == 2  # May 20: a gap
    # 733 hours have ended since May 11 00:00; APP_A lacks May 20 and the 5-hour outage
    assert "Not stored, so not in these totals: sends 29 of 733 hours; receipts 29 of 733" in (
        section(body, APP_A)
    )
    assert "sends 485 of 733 hours" in section(body, APP_B)


def test_given_a_month_when_viewed_for_7_days_then_hours_are_drawn_and_the_outage_is_a_gap(
    month: Path,
) -> None:
    body = get(days="7")["body"]
    # Jun 4 00:00 to the hour under way, Jun 10 13:00: 157 hours ended, 5 of them the outage
    assert points(body, f"{APP_A}-volume") == 2 * 152
    volume = wide(body, f"{APP_A}-volume")
    assert volume.count('<polyline class="ln" data-series="requests"') == 2
    assert "Messages and billed parts per hour" in body
    assert "sends 5 of 157 hours; receipts 5 of 157 hours" in section(body, APP_A)


def y_labels(svg: str) -> list[str]:
    return re.findall(r'<text class="yl"[^>]*>([^<]*)</text>', svg)


def test_given_rates_between_88_and_100_percent_when_charted_then_the_axis_spans_them_not_zero(
    month: Path,
) -> None:
    body = get(days="7")["body"]
    rates = wide(body, f"{APP_A}-rates")
    labels = y_labels(rates)
    assert labels[-1] == "100%"
    assert labels[0] in ("80%", "85%")  # the emulator's worst hours are near 87.5%
    # where an alert would fire: the default rules' thresholds, in each drawing
    assert re.findall(r'data-threshold="([\d.]+)"', rates) == ["0.9", "0.95"]
    assert body.count('class="th" data-threshold') == 2 * 2 * 2  # 2 apps, 2 drawings


@pytest.mark.parametrize(
    ("values", "low", "high"),
    [
        ([0.999, 0.9991, 0.9989], 0.94, 1.0),  # flat: at least 5 points, not 99.89-99.91%
        ([0.88, 0.97, 1.0], 0.85, 1.0),
        ([0.0, 1.0], 0.0, 1.0),
        ([0.01, 0.02], 0.0, 0.05),  # near zero: the floor span upwards
        ([], 0.0, 1.0),
    ],
)
def test_given_rates_when_scaled_then_the_axis_holds_them_and_spans_at_least_5_points(
    values: list[float], low: float, high: float
) -> None:
    scale = ticks.rate_scale(values)
    assert (scale.low, scale.high) == pytest.approx((low, high))
    assert all(scale.low <= v <= scale.high for v in values)
    assert scale.high - scale.low >= ticks.RATE_SPAN


def test_given_a_threshold_at_an_axis_end_when_scaled_then_the_axis_goes_a_step_further() -> None:
    """On the axis line a dashed threshold is hidden: the default delivery rule's 90% under
    rates of 92-98% must be inside the chart, not its bottom edge."""
    rates = ticks.rate_scale([0.92, 0.98], [0.9, 0.95])
    assert rates.low < 0.9
    assert rates.high >= 0.98
    counts = ticks.count_scale([1_000], [2_000])
    assert counts.high > 2_000


def test_given_a_balance_when_scaled_then_the_top_label_holds_every_digit() -> None:
    scale = ticks.count_scale([236_679])
    assert scale.labels == ("0", "50k", "100k", "150k", "200k", "250k")
    assert ticks.count_scale([2_310]).labels[-1] == "2,500"
    assert ticks.count_scale([12_000]).labels == ("0", "2.5k", "5k", "7.5k", "10k", "12.5k")


def test_given_rules_for_some_apps_when_charted_then_each_threshold_is_drawn_where_it_applies(
    month: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rules = [
        {"name": "balance low", "metric": "package_remaining", "below": 234000, "app_ids": [APP_B]},
        {"name": "surge", "metric": "request_count", "above": 2200},
    ]
    monkeypatch.setenv("SMS_STATS_ALERTS", json.dumps(rules))
    week = get(days="7")["body"]
    assert 'data-threshold="234000"' in wide(week, f"{APP_B}-balance")
    assert "data-threshold" not in wide(week, f"{APP_A}-balance")
    assert "balance low (&lt; 234,000)" in section(week, APP_B)
    for app in (APP_A, APP_B):
        assert 'data-threshold="2200"' in wide(week, f"{app}-volume")
        assert "data-threshold" not in wide(week, f"{app}-rates")  # no rate rule configured
    month_body = get(days="31")["body"]
    assert "data-threshold" not in wide(month_body, f"{APP_A}-volume")  # a day is no hour
    assert "hourly alert thresholds are not drawn on daily sums" in section(month_body, APP_A)


def test_given_alerts_in_the_state_when_shown_then_times_are_local_and_readable(
    month: Path,
) -> None:
    state = json.loads((month / "alerts/state.json").read_text())
    start = datetime(2021, 6, 4, tzinfo=SHANGHAI)
    fired = sorted(
        datetime.fromisoformat(item["since"])
        for item in state["fired"]
        if item["app_id"] == APP_A and datetime.fromisoformat(item["since"]) >= start
    )
    assert len(fired) > 2  # the emulator's delivery dips below 90% now and then
    table = section(get(days="7")["body"], APP_A).split('<table class="alerts"')[1]
    first, last = (f"{ticks.date_text(t)} {t:%H:%M}" for t in (fired[0], fired[-1]))
    assert f"<td>fired {len(fired)} times</td><td>{first} \u2013 {last}</td>" in table
    assert "+08:00<" not in table  # no raw ISO time shown


def test_given_a_firing_alert_when_shown_then_since_is_in_the_stores_zone_and_readable() -> None:
    now = datetime(2026, 12, 6, 5, 0, tzinfo=timezone.utc)
    view = view_of(AppSeries(APP_A), 1, now)
    view.tz = SHANGHAI
    view.fired = [
        {
            "alert": "delivery rate low",
            "app_id": APP_A,
            "since": "2026-12-06T03:00:00Z",
            "firing": True,
        },
        {"alert": "old", "app_id": APP_A, "since": "2025-12-31T23:00:00+08:00", "firing": True},
    ]
    html = page.render(view)
    assert '<td title="2026-12-06T03:00:00Z">since Dec 6 11:00</td>' in html
    assert ">since Dec 31 23:00, 2025</td>" in html  # another year says so


@given(
    days=st.integers(1, 31),
    hour=st.integers(0, 23),
    zone=st.sampled_from(["Asia/Shanghai", "America/New_York", "Asia/Kolkata", "UTC"]),
    width=st.integers(250, 1000),
    daily=st.booleans(),
)
def test_given_any_range_and_width_when_ticks_are_chosen_then_none_overlap_or_leave_the_chart(
    days: int, hour: int, zone: str, width: int, daily: bool
) -> None:
    tz = ZoneInfo(zone)
    end_day = datetime(2021, 11, 9, tzinfo=tz)  # New York's Nov 7 is 25 hours long
    lo = int((end_day - timedelta(days=days - 1)).timestamp())
    hi = int(end_day.replace(hour=hour).timestamp()) + 3600
    axis = charts.TimeAxis(lo, hi, tz, daily=daily and days > 1)
    left, right = 60.0, width - 12.0
    scale = (right - left) / (hi - lo)
    candidates = [[(left + (t - lo) * scale, text) for t, text in c] for c in axis.candidates()]
    placed = ticks.fit(candidates, 2.0, width - 2.0, charts.FONT)
    assert placed
    for label in placed:
        assert label.left >= 2.0
        assert label.right <= width - 2.0
        assert label.right - label.left == pytest.approx(ticks.text_width(label.text, charts.FONT))
    for a, b in itertools.pairwise(placed):
        assert b.left - a.right >= ticks.GAP_EM * charts.FONT


def test_given_a_month_when_ticked_for_a_phone_then_today_is_named() -> None:
    tz = SHANGHAI
    lo = int(datetime(2021, 5, 11, tzinfo=tz).timestamp())
    hi = int(datetime(2021, 6, 11, tzinfo=tz).timestamp())
    axis = charts.TimeAxis(lo, hi, tz, daily=True)
    scale = (330 - 50) / (hi - lo)
    candidates = [[(50 + (t - lo) * scale, text) for t, text in c] for c in axis.candidates()]
    texts = [label.text for label in ticks.fit(candidates, 2.0, 338.0, charts.FONT)]
    assert texts[-1] == "Jun 10"
    assert 3 <= len(texts) <= 6


def test_given_a_25_hour_day_when_summed_by_day_then_all_its_hours_are_in_it() -> None:
    tz = ZoneInfo("America/New_York")
    lo = int(datetime(2021, 11, 6, tzinfo=tz).timestamp())
    hi = int(datetime(2021, 11, 9, tzinfo=tz).timestamp())
    bounds = daily.bounds(lo, hi, tz)
    assert [b - a for a, b in bounds] == [24 * 3600, 25 * 3600, 24 * 3600]
    hours = [SendPoint(t, t + 3600, 10, 9, 11, 0.9) for t in range(lo, hi, 3600)]
    days = daily.by_day(AppSeries(APP_A, send=hours[:24] + hours[49:]), bounds)  # Nov 7 lost
    assert [(d.send_hours, d.requests, d.fee) for d in days] == [(24, 240, 264), (24, 240, 264)]
    assert [d.start for d in days] == [bounds[0][0], bounds[2][0]]  # no zero day between
    assert days[0].success_rate == pytest.approx(0.9)
    assert days[0].delivery_rate is None  # no receipts: no rate, not 0%
