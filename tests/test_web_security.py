"""Issue 24's web findings, each shown through the real entry: `main_handler` as the Function URL
calls it, and `sms-stats serve` (the console script) for what a browser sends over a socket.

Cross-site logins and logouts, failed logins slowed, short tokens refused, `days` that `int`
cannot read, stored records as strict as API answers, /metrics reading only record names, the
file store's links and huge objects, 60 KB parameters, an echoed RequestId, and sessions that
end at logout."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from index import main_handler
from pytest_mock import MockerFixture

from sms_stats import handler
from sms_stats.core import redact
from sms_stats.core.errors import ConfigError
from sms_stats.core.records import MAX_COUNT, RECEIPT_FIELDS, from_dict, read_back, store_key
from sms_stats.core.settings import MIN_TOKEN_LENGTH, load_settings
from sms_stats.core.windows import Window, zone
from sms_stats.emulator import Emulator, Fault
from sms_stats.web.dashboard import data, session

from .conftest import API_TOKEN, APP_A, APP_B, SECRET_ID, SECRET_KEY, SESSION_TOKEN, seed_record
from .serving import Served, serving
from .standins.cos import CosStandIn, StoredObject

NOW = datetime(2021, 5, 3, 5, 30, tzinfo=timezone.utc)  # 13:30 in Shanghai
TIMER = {"Type": "Timer", "TriggerName": "t", "Time": "2021-05-03T05:05:00Z"}
SHANGHAI = zone("Asia/Shanghai")
HOUR = Window.from_api("2021050113", "2021050113", SHANGHAI)
FORM = {"content-type": "application/x-www-form-urlencoded"}
BUCKET = "sms-stats-1250000000"


@pytest.fixture(autouse=True)
def _fresh_sessions() -> None:
    """No failed login or logout epoch of another test counts here."""
    session.failed_logins.clear()
    session.clear_epochs()


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
    monkeypatch.setenv("SMS_STATS_RATE_LIMIT", "1000")  # the stand-in's pace is not under test
    event = {**TIMER, "Message": json.dumps({"window": "hour", "lookback": 30})}
    assert main_handler(event, context)["ok"]


def call(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: str = "",
    **query: Any,
) -> dict[str, Any]:
    event = {
        "httpMethod": method,
        "path": path,
        "headers": headers or {},
        "queryString": query,
        "body": body,
    }
    answer: dict[str, Any] = main_handler(event, {"request_id": "req-web"})
    return answer


def bearer() -> dict[str, str]:
    return {"authorization": f"Bearer {API_TOKEN}"}


def login(token: str = API_TOKEN, **headers: str) -> dict[str, Any]:
    return call("POST", "/login", {**FORM, **headers}, f"token={token}")


def cookie_of(answer: dict[str, Any]) -> str:
    return str(answer["headers"]["Set-Cookie"]).split(";")[0]


def write(store: Path, key: str, payload: Any) -> Path:
    path = store / key
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(payload if isinstance(payload, str) else json.dumps(payload), encoding="utf-8")
    return path


# -- cross-site POST /login and /logout -----------------------------------------------------


def form_post(served: Served, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    """POST a form over a socket as a browser would; (status, headers), redirects not followed."""

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args: Any) -> None:
            return None

    request = urllib.request.Request(
        served.url + path,
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded", **headers},
        method="POST",
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=30) as answer:
            return answer.status, answer.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers


@pytest.fixture
def served(scf_env: dict[str, str], tmp_path: Path) -> Iterator[Served]:
    with serving(tmp_path) as server:
        yield server


class TestCrossSite:
    def test_given_a_browser_on_another_site_when_it_posts_the_login_form_then_403_and_no_cookie(
        self, served: Served
    ) -> None:
        body = f"token={API_TOKEN}".encode()
        for headers in (
            {"Origin": "https://evil.example"},
            {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            {"Sec-Fetch-Site": "cross-site"},
            {"Origin": "null"},
        ):
            status, answer = form_post(served, "/login", body, headers)
            assert (status, answer.get("Set-Cookie")) == (403, None), headers
        # The same form from the server's own page logs in.
        own = {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}
        status, answer = form_post(served, "/login", body, own)
        assert status == 303
        assert answer["Set-Cookie"].startswith(f"{session.COOKIE}=")

    def test_given_another_site_when_it_posts_logout_then_403(self, served: Served) -> None:
        status, answer = form_post(served, "/logout", b"", {"Origin": "https://evil.example"})
        assert (status, answer.get("Set-Cookie")) == (403, None)

    @pytest.mark.parametrize(
        ("headers", "status"),
        [
            ({"host": "fn.example", "origin": "https://fn.example"}, 303),
            ({"host": "fn.example:443", "origin": "https://fn.example"}, 303),
            ({"host": "FN.example", "origin": "https://fn.example:443"}, 303),
            ({"host": "fn.example", "origin": "https://evil.example"}, 403),
            ({"host": "fn.example", "origin": "https://fn.example.evil.example"}, 403),
            ({"host": "fn.example", "origin": "https://fn.example:8443"}, 403),
            ({"host": "fn.example", "origin": "null"}, 403),
            ({"host": "fn.example", "origin": "https://user@fn.example"}, 403),
            ({"host": "fn.example", "origin": "https://fn.example/path"}, 403),
            ({"host": "fn.example", "origin": "https://fn.example:x"}, 403),
            # the event names its scheme: another scheme is another origin
            (
                {"host": "fn.example", "x-forwarded-proto": "https", "origin": "http://fn.example"},
                403,
            ),
            ({"host": "fn.example", "sec-fetch-site": "same-site"}, 403),
            ({"host": "fn.example", "sec-fetch-site": "cross-site"}, 403),
            ({"host": "fn.example", "sec-fetch-site": "same-origin"}, 303),
            ({"host": "fn.example", "sec-fetch-site": "none"}, 303),  # typed in the address bar
            # no Host in the event: only the browser's word that it is the same origin
            ({"origin": "https://fn.example"}, 403),
            ({"origin": "https://fn.example", "sec-fetch-site": "same-origin"}, 303),
            ({}, 303),  # curl, a script: not a browser's form
        ],
    )
    def test_given_origin_headers_when_logging_in_then_only_the_same_origin_gets_a_cookie(
        self, pinned: None, scf_env: dict[str, str], headers: dict[str, str], status: int
    ) -> None:
        answer = login(**headers)
        assert answer["statusCode"] == status
        assert ("Set-Cookie" in answer["headers"]) is (status == 303)
        if status == 403:
            assert "Cannot log in" in answer["body"]

    def test_given_a_cross_site_logout_then_no_epoch_is_written(
        self, pinned: None, scf_env: dict[str, str], store: Path
    ) -> None:
        cookie = cookie_of(login())
        answer = call(
            "POST",
            "/logout",
            {"cookie": cookie, "host": "fn.example", "origin": "https://x.example"},
        )
        assert answer["statusCode"] == 403
        assert not (store / session.EPOCH_KEY).exists()
        assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 200


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def another_origin(page: str) -> Iterator[str]:
    """A second site on loopback (another port: another origin, the same site) serving `page`."""

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = page.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_given_chromium_when_the_login_page_posts_and_another_site_posts_the_same_form_then_only_the_page_gets_a_session(  # noqa: E501
    served: Served,
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip: playwright")
    if not Path(CHROMIUM).exists():  # pragma: no cover - .ci/run installs it
        pytest.skip("no chromium executable (Debian: apt-get install -y chromium)")
    forged = (
        f'<form id="f" method="post" action="{served.url}/login">'
        f'<input name="token" value="{API_TOKEN}"></form>'
        "<script>document.getElementById('f').submit()</script>"
    )
    with another_origin(forged) as evil, sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            own = browser.new_context().new_page()
            own.goto(f"{served.url}/login")
            own.fill("input[name=token]", API_TOKEN)
            with own.expect_navigation(url=f"{served.url}/dashboard") as landed:
                own.click("button[type=submit]")
            assert landed.value is not None
            assert landed.value.status == 200

            victim = browser.new_context()
            tab = victim.new_page()
            with tab.expect_navigation(url=f"{served.url}/login") as posted:
                tab.goto(evil)
            assert posted.value is not None
            assert posted.value.status == 403
            assert "cannot post here" in tab.content()
            assert not [c for c in victim.cookies() if c["name"] == session.COOKIE]
        finally:
            browser.close()


# -- failed logins, short tokens -------------------------------------------------------------


def test_given_200_wrong_logins_then_they_take_at_least_what_the_delay_schedule_adds(
    pinned: None, scf_env: dict[str, str]
) -> None:
    schedule = session.failed_logins
    floor = sum(schedule.delay(n) for n in range(1, 201))
    assert floor > 100 * 0.02  # the review measured 0.02 s for all 200
    started = time.monotonic()
    for n in range(200):
        answer = login(f"wrong-token-{n:04d}-abcdefgh")
        assert answer["statusCode"] == 401
        assert "Set-Cookie" not in answer["headers"]
    assert time.monotonic() - started >= floor
    # the schedule grows and is capped
    assert schedule.delay(1) < schedule.delay(200) < schedule.delay(5000) == schedule.cap_s


def test_given_the_right_token_after_many_wrong_ones_then_it_still_logs_in(
    pinned: None, scf_env: dict[str, str]
) -> None:
    for _ in range(5):
        session.failed_logins.note()
    assert login()["statusCode"] == 303


@pytest.mark.parametrize("token", ["Zq", "tok-SENTINEL-9z", "Z" * (MIN_TOKEN_LENGTH - 1)])
def test_given_a_token_shorter_than_16_then_settings_refuse_it_with_the_fix_and_no_echo(
    token: str,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SMS_STATS_API_TOKEN": f"{'k' * 20},{token}"})
    message = caught.value.message
    assert "SMS_STATS_API_TOKEN: token 2 of 2" in message
    assert f"is {len(token)} character" in message
    assert "at least 16" in message
    assert "python -c 'import secrets; print(secrets.token_urlsafe(32))'" in message
    assert token not in message


def test_given_a_short_token_configured_when_a_request_comes_then_the_log_says_how_to_fix_it(
    scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SMS_STATS_API_TOKEN", "short-tok")
    answer = call("GET", "/stats", {"authorization": "Bearer short-tok"}, app_id=APP_A)
    assert answer["statusCode"] == 500
    assert "misconfigured" in answer["body"]
    logged = capsys.readouterr().out
    assert "at least 16" in logged
    assert "short-tok" not in logged.replace('"Bearer short-tok"', "")


def test_given_every_configured_token_then_each_is_scrubbed_from_any_text() -> None:
    tokens = ["abcdefghijklmnop", "0123456789abcdefXYZ"]
    load_settings({"SMS_STATS_API_TOKEN": ",".join(tokens)})
    for token in tokens:
        assert token not in redact.scrub(f"upstream said: token={token}; {token}")


# -- days ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("days", ["²", "٣", "9" * 5000, "0", "32", "-1", "7.0", "1e1", ""])
def test_given_days_that_are_no_whole_number_from_1_to_31_then_a_400_page_naming_it(
    pinned: None, scf_env: dict[str, str], days: str
) -> None:
    answer = call("GET", "/dashboard", bearer(), days=days)
    assert answer["statusCode"] == 400
    assert answer["headers"]["Content-Type"].startswith("text/html")
    assert "days: a whole number from 1 to 31" in answer["body"]
    assert len(answer["body"]) < 5000  # a short quote, never the 5,000 nines
    if len(days) > 20:
        assert "(5,000 characters)" in answer["body"]


# -- records read from the store --------------------------------------------------------------


def send_dict(**changes: Any) -> dict[str, Any]:
    record = seed_record(APP_A, "2021050113", "2021050113")
    return {**record.to_dict(), **changes}


def callback_dict(**changes: Any) -> dict[str, Any]:
    counts = dict.fromkeys(RECEIPT_FIELDS, 0)
    counts.update(request_success_count=10, callback_count=8, callback_success_count=6)
    counts.update(callback_fail_count=2, invalid_number_count=1)
    head = {k: v for k, v in send_dict().items() if k not in ("request_count", "fee_count")}
    return {
        **head,
        "schema": "sms-stats-callback/v1",
        **counts,
        "pending_count": 2,
        "delivery_rate": 0.75,
        **changes,
    }


HUGE = int("9" * 4300)
BAD_SENDS = {
    "a 4,300-digit count": send_dict(request_count=HUGE),
    "2^63": send_dict(request_count=MAX_COUNT + 1, request_success_count=1),
    "a string count": send_dict(request_count="1880"),
    "a float count": send_dict(fee_count=12.0),
    "a bool count": send_dict(fee_count=True),
    "successes above requests": send_dict(request_count=5, request_success_count=6),
}
BAD_RECEIPTS = {
    "parts above the whole": callback_dict(callback_success_count=7),
    "reasons above failures": callback_dict(black_list_count=2),
}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (BAD_SENDS["a 4,300-digit count"], "request_count"),
        (BAD_SENDS["2^63"], "request_count"),
        (BAD_SENDS["a string count"], "request_count"),
        (BAD_SENDS["a float count"], "fee_count"),
        (BAD_SENDS["a bool count"], "fee_count"),
        (BAD_SENDS["successes above requests"], "request_success_count"),
        (BAD_RECEIPTS["parts above the whole"], "callback_count"),
        (BAD_RECEIPTS["reasons above failures"], "callback_fail_count"),
    ],
)
def test_given_a_stored_record_no_api_answer_could_give_then_from_dict_names_the_field(
    payload: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field) as caught:
        from_dict(payload)
    assert len(str(caught.value)) < 300  # names it; never quotes 4,300 digits


def test_given_the_good_records_then_from_dict_still_reads_them() -> None:
    assert from_dict(send_dict()).counts.request_count == 1880
    assert from_dict(callback_dict()).receipts.callback_count == 8
    # receipts above submissions happen (a receipt counted in another hour): kept
    assert from_dict(callback_dict(request_success_count=1)).receipts.callback_count == 8


def test_given_an_integer_of_thousands_of_digits_in_a_stored_object_then_read_back_refuses_it() -> (
    None
):
    text = json.dumps(send_dict()).replace(
        '"request_count": 1880', '"request_count": ' + "9" * 5000
    )
    assert read_back(text.encode()) is None
    assert read_back(json.dumps(send_dict()).encode()) is not None


_COUNT_VALUES = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=5),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
)


@given(st.dictionaries(st.sampled_from(RECEIPT_FIELDS), _COUNT_VALUES, max_size=4))
def test_given_any_stored_receipt_counts_then_a_record_keeps_the_apis_rules_or_value_error(
    changes: dict[str, Any],
) -> None:
    try:
        record = from_dict(callback_dict(**changes))
    except ValueError:
        return
    r = record.receipts
    assert all(0 <= getattr(r, name) <= MAX_COUNT for name in RECEIPT_FIELDS)
    assert r.callback_success_count + r.callback_fail_count <= r.callback_count
    reasons = sum(getattr(r, name) for name in RECEIPT_FIELDS[4:])
    assert reasons <= r.callback_fail_count


@given(
    st.dictionaries(
        st.sampled_from(("request_count", "request_success_count", "fee_count")),
        _COUNT_VALUES,
        max_size=3,
    )
)
def test_given_any_stored_send_counts_then_a_record_keeps_the_apis_rules_or_value_error(
    changes: dict[str, Any],
) -> None:
    try:
        record = from_dict(send_dict(**changes))
    except ValueError:
        return
    c = record.counts
    assert 0 <= c.request_success_count <= c.request_count <= MAX_COUNT
    assert 0 <= c.fee_count <= MAX_COUNT


@pytest.mark.parametrize(
    ("kind", "payload"),
    [*(("send", p) for p in BAD_SENDS.values()), *(("callback", p) for p in BAD_RECEIPTS.values())],
    ids=[*BAD_SENDS, *BAD_RECEIPTS],
)
def test_given_an_impossible_stored_hour_when_stats_is_asked_then_the_api_answers_not_the_store(
    scf_env: dict[str, str], store: Path, kind: str, payload: dict[str, Any]
) -> None:
    write(store, store_key(APP_A, HOUR, kind), payload)  # type: ignore[arg-type]
    answer = call(
        "GET", "/stats", bearer(), app_id=APP_A, begin="2021050113", end="2021050113", kind=kind
    )
    assert answer["statusCode"] == 200
    body = json.loads(answer["body"])
    assert body["source"] == "api"
    record = body["records"][0]
    assert isinstance(record["callback_count" if kind == "callback" else "request_count"], int)
    # and the hour the API answered is stored again, whole: the next question is the store's
    again = call(
        "GET", "/stats", bearer(), app_id=APP_A, begin="2021050113", end="2021050113", kind=kind
    )
    if kind == "send":  # receipts of an hour this young are not settled: the API again
        assert json.loads(again["body"])["source"] == "store"


def test_given_a_4300_digit_count_in_one_object_when_the_dashboard_shows_then_it_is_named_and_the_rest_renders(  # noqa: E501
    filled: None, store: Path
) -> None:
    broken = sorted(store.glob(f"app={APP_A}/dt=2021-05-03/*.json"))[-1]
    payload = json.loads(broken.read_text(encoding="utf-8"))
    broken.write_text(
        json.dumps(payload).replace(
            f'"request_count": {payload["request_count"]}', '"request_count": ' + "9" * 4300
        ),
        encoding="utf-8",
    )
    answer = call("GET", "/dashboard", bearer(), days="1")
    assert answer["statusCode"] == 200
    body = answer["body"]
    assert f"app={APP_A}/dt=2021-05-03/{broken.name}" in body
    assert "request_count is not a count" in body
    assert "9" * 100 not in body
    assert APP_B in body


def test_given_a_rollup_with_a_string_count_when_the_dashboard_shows_then_it_is_rebuilt_from_the_records(  # noqa: E501
    filled: None, store: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert call("GET", "/dashboard", bearer(), days="2")["statusCode"] == 200  # writes rollups
    rollup = store / f"dashboard/app={APP_A}/month=2021-05.json"
    payload = json.loads(rollup.read_text(encoding="utf-8"))
    point = next(p for p in payload["points"].values() if p["kind"] == "send")
    point["requests"] = str(point["requests"])
    rollup.write_text(json.dumps(payload), encoding="utf-8")
    data.clear_cache()  # a new container: nothing in memory, the rollup is read
    capsys.readouterr()
    answer = call("GET", "/dashboard", bearer(), days="2")
    assert answer["statusCode"] == 200
    assert "dashboard.rollup_unreadable" in capsys.readouterr().out
    fixed = json.loads(rollup.read_text(encoding="utf-8"))  # rewritten from the records
    assert all(isinstance(p.get("requests", 0), int) for p in fixed["points"].values())


# -- /metrics reads only record names --------------------------------------------------------


def test_given_2000_stray_files_in_the_newest_folder_when_scraped_then_a_handful_of_reads(
    scf_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    mocker: MockerFixture,
    context: dict[str, Any],
    emulator: Emulator,
) -> None:
    at = datetime(2021, 5, 1, 5, 5, tzinfo=timezone.utc)
    mocker.patch.object(handler, "utcnow", return_value=at)
    monkeypatch.delenv("SMS_STATS_COLLECT")  # all three kinds
    with CosStandIn(credentials={SECRET_ID: (SECRET_KEY, SESSION_TOKEN)}, buckets={BUCKET}) as cos:
        sink = f"cos://{BUCKET}/stats?region=ap-guangzhou&endpoint={cos.endpoint}"
        monkeypatch.setenv("SMS_STATS_SINKS", sink)
        timer = {"Type": "Timer", "TriggerName": "t", "Time": "2021-05-01T05:05:00Z", "Message": ""}
        assert main_handler(timer, context)["ok"]
        folder = f"stats/app={APP_A}/dt=2021-05-01/"
        for n in range(2000):  # names that sort after the hours', and that look almost like one
            name = f"zz-junk-{n:04d}.json" if n % 2 else f"2021050123-2021050200.{n}.json"
            cos.objects[(BUCKET, folder + name)] = StoredObject(b"{}", "application/json")
        before = len(cos.requests)
        answer = call("GET", "/metrics", bearer())
        reads = [r for r in cos.requests[before:] if r.method == "GET" and r.key]
    assert answer["statusCode"] == 200
    assert f'sms_request_count{{app_id="{APP_A}"}}' in answer["body"]
    # one object per app and kind (and listings), and the money summary once for every app;
    # no stray file read
    assert len(reads) <= 7, [r.key for r in reads]
    assert sum(r.key.endswith("money/summary.json") for r in reads) == 1
    assert not [r for r in reads if "junk" in (r.key or "") or (r.key or "")[-5:] != ".json"]


# -- the file store: links and huge objects; no server path in any answer ---------------------


def answers_of_every_kind() -> list[dict[str, Any]]:
    return [
        call("GET", "/dashboard", bearer(), days="2"),
        call("GET", "/metrics", bearer()),
        call("GET", "/stats", bearer(), app_id=APP_A, begin="2021050312", end="2021050312"),
        call(
            "GET",
            "/stats",
            bearer(),
            app_id=APP_B,
            begin="2021050301",
            end="2021050301",
            fresh="true",
        ),
    ]


def test_given_links_out_of_the_store_when_the_dashboard_shows_then_no_outside_text(
    filled: None, store: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret_record = send_dict(timezone="OUTSIDE-TEXT-7f3a")
    (outside / "2021050310-2021050310.json").write_text(json.dumps(secret_record))
    # a record file that is a link, and a whole day folder that is one
    linked = store / f"app={APP_A}/dt=2021-05-03/2021050310-2021050310.json"
    linked.unlink()
    linked.symlink_to(outside / "2021050310-2021050310.json")
    day = store / f"app={APP_B}/dt=2021-05-03"
    os.rename(day, tmp_path / "moved")
    day.symlink_to(outside, target_is_directory=True)
    for answer in answers_of_every_kind():
        assert "OUTSIDE-TEXT-7f3a" not in answer["body"]
        assert str(tmp_path) not in answer["body"]
    # Listings skip links, and a read by key refuses one: the hour is asked of the API.
    answer = call("GET", "/stats", bearer(), app_id=APP_A, begin="2021050310", end="2021050310")
    assert json.loads(answer["body"])["source"] == "api"


def test_given_an_object_over_8_mb_when_shown_then_its_key_is_named_and_no_server_path_anywhere(
    filled: None, store: Path, tmp_path: Path
) -> None:
    huge = store / f"app={APP_A}/dt=2021-05-03/2021050311-2021050311.json"
    huge.write_bytes(b" " * (8 * 1024 * 1024 + 1))
    page = call("GET", "/dashboard", bearer(), days="1")["body"]
    assert f"app={APP_A}/dt=2021-05-03/2021050311-2021050311.json is larger than" in page
    for answer in answers_of_every_kind():
        assert str(tmp_path) not in answer["body"], answer["body"][:500]
    # The newest hour itself too big: /metrics skips it for the one before, and still answers.
    day = store / f"app={APP_A}/dt=2021-05-03"
    (day / "2021050312-2021050312.json").write_bytes(b" " * (8 * 1024 * 1024 + 1))
    shown = json.loads((day / "2021050310-2021050310.json").read_text(encoding="utf-8"))
    metrics = call("GET", "/metrics", bearer())
    assert metrics["statusCode"] == 200
    count = f'sms_request_count{{app_id="{APP_A}"}} {shown["request_count"]}\n'
    assert count in metrics["body"]  # hours 12 and 11 are too big: hour 10's
    assert "sms_store_unreadable_objects 2" in metrics["body"]


def test_given_an_unwritable_store_when_stats_answers_then_the_delivery_error_names_no_path(
    scf_env: dict[str, str], store: Path, tmp_path: Path
) -> None:
    store.parent.mkdir(parents=True, exist_ok=True)
    store.write_text("a file where the store's folder should be")
    answer = call(
        "GET", "/stats", bearer(), app_id=APP_A, begin="2021050113", end="2021050113", fresh="true"
    )
    body = answer["body"]
    assert "could not write" in body
    assert str(tmp_path) not in body
    assert "file:.../store" in body


# -- 60 KB values; nosniff ----------------------------------------------------------------------


def test_given_a_60_kb_parameter_then_a_short_marked_quote_in_the_answer_and_the_log(
    scf_env: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    huge = "2021050113" + "x" * 60_000
    for query in (
        {"app_id": APP_A, "begin": huge, "end": "2021050113"},
        {"app_id": APP_A + huge, "begin": "2021050113", "end": "2021050113"},
        {"app_id": APP_A, "begin": "2021050113", "end": "2021050113", "fresh": huge},
        {"app_id": APP_A, "begin": "2021050113", "end": "2021050113", "kind": huge},
        {"app_id": APP_A, "begin": "2021050113", "end": "2021050113", "Limit": huge},
    ):
        answer = call("GET", "/stats", bearer(), **query)
        assert answer["statusCode"] == 400
        assert len(answer["body"]) < 1000
        assert "characters)" in json.loads(answer["body"])["error"]["message"]
        assert answer["headers"]["X-Content-Type-Options"] == "nosniff"
    answer = call("GET", "/" + huge, bearer())
    assert answer["statusCode"] == 404
    assert len(answer["body"]) < 2000
    lines = capsys.readouterr().out.splitlines()
    assert lines
    assert max(len(line) for line in lines) < 2000


def test_given_a_short_quote_then_a_secret_at_its_start_is_masked_and_a_cut_is_marked() -> None:
    redact.register(SECRET_KEY)
    assert SECRET_KEY[:12] not in redact.short(SECRET_KEY + "tail")
    assert redact.short("x" * 100, 10) == "'xxxxxxxxxx'... (100 characters)"
    assert redact.short("²") == "'²'"


# -- an echoed RequestId ----------------------------------------------------------------------


def test_given_an_answer_whose_request_id_echoes_a_secret_then_neither_the_record_nor_the_answer_holds_it(  # noqa: E501
    scf_env: dict[str, str], emulator: Emulator, store: Path
) -> None:
    emulator.set_fault(Fault(action="send", fields={"RequestId": json.dumps(SECRET_KEY)}), APP_A)
    answer = call(
        "GET", "/stats", bearer(), app_id=APP_A, begin="2021050113", end="2021050113", fresh="true"
    )
    assert answer["statusCode"] == 200
    record = json.loads(answer["body"])["records"][0]
    assert SECRET_KEY not in answer["body"]
    assert redact.MASK in record["request_id"]
    stored = (store / store_key(APP_A, HOUR)).read_text(encoding="utf-8")
    assert SECRET_KEY not in stored
    assert json.loads(stored)["request_count"] == record["request_count"]


# -- sessions end at logout -------------------------------------------------------------------


def test_given_a_logout_then_the_old_cookie_is_refused_and_a_new_login_works_at_once(
    pinned: None, scf_env: dict[str, str], store: Path
) -> None:
    old = cookie_of(login())
    assert call("GET", "/dashboard", {"cookie": old}, days="1")["statusCode"] == 200
    answer = call("POST", "/logout", {"cookie": old})
    assert answer["statusCode"] == 303
    assert answer["headers"]["Set-Cookie"].startswith(f"{session.COOKIE}=; Max-Age=0")
    assert json.loads((store / session.EPOCH_KEY).read_text())["revoked_through"] > 0
    # the copy of the cookie someone kept is refused: 401 to a script, the login to a browser
    assert call("GET", "/dashboard", {"cookie": old}, days="1")["statusCode"] == 401
    again = call("GET", "/dashboard", {"cookie": old, "accept": "text/html"}, days="1")
    assert again["headers"].get("Location") == "/login"
    # another container learns of it from the store
    session.clear_epochs()
    assert call("GET", "/dashboard", {"cookie": old}, days="1")["statusCode"] == 401
    # a login in the same second is not voided by the logout before it
    new = cookie_of(login())
    assert call("GET", "/dashboard", {"cookie": new}, days="1")["statusCode"] == 200


def test_given_a_logout_without_a_session_then_nothing_is_revoked(
    pinned: None, scf_env: dict[str, str], store: Path
) -> None:
    cookie = cookie_of(login())
    assert call("POST", "/logout", {})["statusCode"] == 303
    assert (
        call("POST", "/logout", {"cookie": f"{session.COOKIE}=1.{'0' * 64}"})["statusCode"] == 303
    )
    assert not (store / session.EPOCH_KEY).exists()
    assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 200


def test_given_a_session_from_before_the_epoch_when_the_epoch_ttl_passes_then_another_container_refuses_it(  # noqa: E501
    pinned: None, scf_env: dict[str, str], store: Path, mocker: MockerFixture
) -> None:
    clock = mocker.patch.object(session, "clock", return_value=2_000_000.0)
    cookie = cookie_of(login())
    assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 200  # cached
    clock.return_value = 2_000_100.0
    write(store, session.EPOCH_KEY, {"schema": session.EPOCH_SCHEMA, "revoked_through": 2_000_050})
    session.clear_epochs()  # as after EPOCH_TTL_S: the epoch is read again
    assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 401


def test_given_an_epoch_object_that_is_not_ours_then_sessions_still_open_and_logout_rewrites_it(
    pinned: None, scf_env: dict[str, str], store: Path
) -> None:
    write(store, session.EPOCH_KEY, "{not json")
    cookie = cookie_of(login())
    assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 200
    assert call("POST", "/logout", {"cookie": cookie})["statusCode"] == 303
    assert call("GET", "/dashboard", {"cookie": cookie}, days="1")["statusCode"] == 401


def test_given_serve_when_a_browser_logs_in_and_out_then_its_old_cookie_no_longer_opens_the_page(
    served: Served,
) -> None:
    own = {"Origin": served.url, "Sec-Fetch-Site": "same-origin"}
    status, headers = form_post(served, "/login", f"token={API_TOKEN}".encode(), own)
    assert status == 303
    cookie = headers["Set-Cookie"].split(";")[0]

    def dashboard() -> int:
        request = urllib.request.Request(
            f"{served.url}/dashboard?days=1", headers={"Cookie": cookie}
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as answer:
                return int(answer.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert dashboard() == 200
    status, _ = form_post(served, "/logout", b"", {**own, "Cookie": cookie})
    assert status == 303
    assert dashboard() == 401


def test_given_a_store_that_does_not_answer_when_a_cookie_comes_then_503_page_not_a_pass(
    pinned: None, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cookie = cookie_of(login())
    monkeypatch.setenv("SMS_STATS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv(
        "SMS_STATS_SINKS",
        "cos://stats-1250000000/p?region=ap-guangzhou&endpoint=http://127.0.0.1:9",
    )
    answer = call("GET", "/dashboard", {"cookie": cookie}, days="1")
    assert answer["statusCode"] == 503
    assert "the session cannot be checked now" in answer["body"]


def test_given_no_store_then_a_logout_only_clears_the_cookie(
    pinned: None, scf_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_SINKS", "")
    cookie = cookie_of(login())
    assert call("POST", "/logout", {"cookie": cookie})["statusCode"] == 303
    answer = call("GET", "/dashboard", {"cookie": cookie}, days="1")
    assert answer["statusCode"] == 200  # README: without a store, a session lives until it ends
