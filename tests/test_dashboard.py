"""The dashboard: its charts and page (gaps, escaping, empty data, daylight saving), the login
cookie (tampered, expired, rotated out), access (bearer, 303 vs 401), bad input and a store that
fails, all through `main_handler` as the Function URL calls it."""

from __future__ import annotations

import itertools
import json
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats import handler
from sms_stats.dashboard import charts, data, page, session
from sms_stats.dashboard.data import AppSeries, SendPoint
from sms_stats.sinks.file import FileSink

from .conftest import API_TOKEN, APP_A, APP_B
from .probe import run_fresh
from .standins.cos import closed_port

NOW = datetime(2021, 5, 3, 5, 30, tzinfo=timezone.utc)
TIMER = {"Type": "Timer", "TriggerName": "t", "Time": "2021-05-03T05:05:00Z"}


@pytest.fixture
def pinned(mocker: MockerFixture) -> None:
    mocker.patch.object(handler, "utcnow", return_value=NOW)
    data.clear_cache()


@pytest.fixture
def filled(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, pinned: None, context: Any
) -> None:
    """30 hours of sends, receipts and a balance for both apps, stored by a timer run."""
    monkeypatch.setenv("SMS_STATS_COLLECT", "send,callback,packages")
    monkeypatch.setenv("SMS_STATS_SETTLE_HOURS", "0")
    event = {**TIMER, "Message": json.dumps({"window": "hour", "lookback": 30})}
    assert main_handler(event, context)["ok"]


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
    found = re.search(rf'data-chart="{chart}" data-points="(\d+)"', body)
    assert found, chart
    return int(found.group(1))


# -- charts and page -------------------------------------------------------------------------


def test_given_an_hour_missing_when_charted_then_the_line_breaks_there_not_at_zero() -> None:
    hour = 3600
    pts = [(0, hour, 5.0), (hour, 2 * hour, 6.0), (3 * hour, 4 * hour, 7.0)]
    svg = charts.line_chart("t", [charts.Line("a", pts)], 0, 4 * hour, ZoneInfo("UTC"))
    assert svg.count("<polyline") == 1  # the first two hours
    assert svg.count("<circle") == 1  # the hour after the gap, alone
    assert 'data-points="3"' in svg
    assert charts.segments(pts) == [[(0, 5.0), (hour, 6.0)], [(3 * hour, 7.0)]]


def test_given_no_points_when_charted_then_it_says_so() -> None:
    svg = charts.line_chart("t", [charts.Line("a", [])], 0, 3600, ZoneInfo("UTC"))
    assert "no data in this range" in svg
    assert 'data-points="0"' in svg


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
    assert html.count("no data in this range") == 60  # volume, rates and balance per app


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


def test_given_a_settled_day_when_viewed_twice_then_the_second_view_reads_its_rollup(
    filled: None, store: Path
) -> None:
    sink = FileSink(store, "file:store")
    first, second = data.Stats(), data.Stats()
    tz = ZoneInfo("Asia/Shanghai")
    start = datetime(2021, 5, 2, tzinfo=tz)
    args = ([APP_A], start, NOW, tz)
    one = data.read(sink, *args, settle_hours=0, now=NOW, stats=first)
    data.clear_cache()
    two = data.read(sink, *args, settle_hours=0, now=NOW, stats=second)
    assert first.rollups_written == 2  # 05-02 and 05-03: every final hour of each
    assert second.rollups_used == 2
    assert first.objects_read == 61  # 30 sends, 30 receipts, 1 balance
    assert second.objects_read == 1  # the last hour's receipts, still settling (an hour after)
    assert two[APP_A].send == one[APP_A].send
    assert two[APP_A].receipts == one[APP_A].receipts
    assert two[APP_A].balance == one[APP_A].balance
    # a backfilled hour is not in the rollup: it is listed, so it is read and shown
    extra = json.loads(next(store.glob(f"app={APP_A}/dt=2021-05-02/*.json")).read_text())
    extra.update(begin_time="2021050200", end_time="2021050200")
    extra.update(window_start="2021-05-02T00:00:00+08:00", window_end="2021-05-02T01:00:00+08:00")
    (store / f"app={APP_A}/dt=2021-05-02/2021050200-2021050200.json").write_text(json.dumps(extra))
    data.clear_cache()
    three = data.read(sink, *args, settle_hours=0, now=NOW, stats=data.Stats())
    assert len(three[APP_A].send) == len(one[APP_A].send) + 1


def test_given_an_hour_written_again_when_viewed_then_its_new_counts_show_not_the_rollups(
    filled: None, store: Path
) -> None:
    """What `backfill --force` does: the same key, new content. Both copies of the old point
    (the rollup in the store and this container's memory) must give way."""
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A], datetime(2021, 5, 2, tzinfo=tz), NOW, tz)
    one = data.read(sink, *args, settle_hours=0, now=NOW, stats=data.Stats())
    key = f"app={APP_A}/dt=2021-05-02/2021050210-2021050210.json"
    record = json.loads((store / key).read_text())
    record.update(request_count=record["request_count"] + 1000)
    sink.put(key, json.dumps(record).encode())

    warm, cold = data.Stats(), data.Stats()
    two = data.read(sink, *args, settle_hours=0, now=NOW, stats=warm)  # same container
    data.clear_cache()
    three = data.read(sink, *args, settle_hours=0, now=NOW, stats=cold)  # another one

    def hour_ten(series: dict[str, AppSeries]) -> int:
        start = int(datetime(2021, 5, 2, 10, tzinfo=tz).timestamp())
        return next(p.requests for p in series[APP_A].send if p.start == start)

    assert hour_ten(two) == hour_ten(three) == hour_ten(one) + 1000
    assert warm.rollups_written == 1  # the day's rollup now holds the new version
    assert cold.objects_read == 1  # the last hour's receipts, still settling: nothing else
    assert cold.rollups_used == 2


def test_given_a_rollup_of_the_first_schema_when_viewed_then_it_is_rebuilt_quietly(
    filled: None, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sink = FileSink(store, "file:store")
    tz = ZoneInfo("Asia/Shanghai")
    args = ([APP_A], datetime(2021, 5, 2, tzinfo=tz), NOW, tz)
    data.read(sink, *args, settle_hours=0, now=NOW, stats=data.Stats())
    rollup = store / f"dashboard/app={APP_A}/dt=2021-05-02.json"
    old = json.loads(rollup.read_text())
    old["schema"] = "sms-stats-dashboard-day/v1"
    for point in old["points"].values():
        del point["version"]
    rollup.write_text(json.dumps(old))
    data.clear_cache()
    capsys.readouterr()
    stats = data.Stats()
    data.read(sink, *args, settle_hours=0, now=NOW, stats=stats)
    assert stats.rollups_written == 1
    assert json.loads(rollup.read_text())["schema"] == data.ROLLUP_SCHEMA
    assert "rollup_unreadable" not in capsys.readouterr().out


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
        "print(json.dumps([m for m in sys.modules if m.startswith('sms_stats.dashboard')]))\n"
    )
    assert run_fresh(program) == []


def test_given_send_points_when_totalled_then_the_summary_counts_them() -> None:
    s = AppSeries(APP_A, send=[SendPoint(0, 3600, 10, 9, 12, 0.9)])
    view = page.View([APP_A], 1, NOW, NOW, ZoneInfo("UTC"), "UTC", "", NOW, series={APP_A: s})
    assert "requests 10 · billed parts 12" in page.render(view)
