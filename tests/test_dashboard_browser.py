"""The dashboard as a person sees it: a real headless Chromium (Debian's `chromium`, driven by
Playwright's Python package) against `sms-stats serve`, whose store holds what timer runs and
backfills collected from the SMS API stand-in. Every chart must have the points the data gives,
no chart text may be cut by its chart's edge or overlap another, at a desktop's and a phone's
width and for a day, a week and a month; the console must stay quiet, and no request may leave
127.0.0.1. The month panel above each app's charts (a money summary written into the store, with
a price and budgets) is measured as its charts are. Screenshots are kept under `artifacts/`
(git-ignored) to look at."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from sms_stats.handler import main_handler
from sms_stats.money import summary
from sms_stats.money.summary import AppMonth
from sms_stats.store.file import FileSink
from sms_stats.web import serve

from .conftest import API_TOKEN, APP_A, APP_B
from .test_dashboard import MONTH_NOW, day_store, filled, month, month_store, pinned

__all__ = ["day_store", "filled", "month", "month_store", "pinned"]  # fixtures used here

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"

playwright_api = pytest.importorskip(
    "playwright.sync_api", reason="Playwright's Python package is not installed (pip: playwright)"
)
if not Path(CHROMIUM).exists():  # pragma: no cover - .ci/run installs it
    pytest.skip(
        "no chromium executable (Debian: apt-get install -y chromium)", allow_module_level=True
    )

# Every text of every chart drawing on screen, with its box and its SVG's, in CSS pixels.
MEASURE = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const s = svg.getBoundingClientRect();
  if (s.width === 0) return [];  // the drawing for the other width, not displayed
  const points = [...svg.querySelectorAll('polyline')]
    .reduce((n, p) => n + p.points.numberOfItems, 0)
    + svg.querySelectorAll('circle.pt, rect.bar').length;
  return [{
    chart: svg.dataset.chart, variant: svg.dataset.variant, points,
    declared: Number(svg.dataset.points), thresholds: svg.querySelectorAll('line.th').length,
    box: [s.left, s.top, s.right, s.bottom],
    texts: [...svg.querySelectorAll('text')].map(t => {
      const r = t.getBoundingClientRect();
      return {text: t.textContent, box: [r.left, r.top, r.right, r.bottom]};
    }),
  }];
})"""


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    with playwright_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def origin() -> Iterator[str]:
    """`sms-stats serve`'s server on a free loopback port, for this test's settings."""
    server = serve.make_server("127.0.0.1", 0, main_handler)
    serve.start_in_thread(server)
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def summarized(month: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The month's store with a money summary for June through 12:00 (the hour before
    MONTH_NOW's), a price and budgets: APP_A's forecast above its budget, APP_B's far below
    (its labels crowd the bar's left end). What the store's timer runs left is put back."""
    monkeypatch.setenv("SMS_STATS_PRICE_PER_PART", "0.045")
    monkeypatch.setenv("SMS_STATS_CURRENCY", "CNY")
    monkeypatch.setenv("SMS_STATS_BUDGETS", json.dumps({APP_A: 333_000, APP_B: 2_000_000}))
    key = month / summary.KEY
    held = key.read_bytes() if key.exists() else None
    key.unlink(missing_ok=True)
    months = [
        AppMonth(APP_A, "2021-06", "2021061012", 123_456, 380_000, 333_000),
        AppMonth(APP_B, "2021-06", "2021061012", 45_678, 140_000, 2_000_000),
    ]
    summary.write(FileSink(month, "file:month"), months, "Asia/Shanghai", MONTH_NOW, None)
    try:
        yield month
    finally:
        if held is None:
            key.unlink(missing_ok=True)
        else:
            key.write_bytes(held)


def watched(page: Any) -> tuple[list[str], list[str]]:
    """Console errors and requests for anything not on 127.0.0.1 (refused), as they come."""
    errors: list[str] = []
    outside: list[str] = []

    def watch(route: Any) -> None:
        if urlsplit(route.request.url).hostname != "127.0.0.1":
            outside.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    page.route("**/*", watch)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors, outside


def test_given_a_day_of_timer_runs_when_a_person_logs_in_then_every_chart_shows_its_points(
    filled: None, chromium: Any, origin: str
) -> None:
    page = chromium.new_page(viewport={"width": 390, "height": 844})  # a phone
    errors, outside = watched(page)
    page.goto(f"{origin}/")
    assert page.url == f"{origin}/login"  # / -> /dashboard -> 303 for a browser without a session
    page.fill("input[name=token]", "wrong")
    page.click("button[type=submit]")
    assert page.locator("[role=alert]").inner_text() == "that token is not valid"
    # the browser logs the refused login's 401 itself; nothing else may be logged
    assert errors == [
        "Failed to load resource: the server responded with a status of 401 (Unauthorized)"
    ]
    errors.clear()
    page.fill("input[name=token]", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(f"{origin}/dashboard")
    page.goto(f"{origin}/dashboard?days=2")
    charts = {c["chart"]: c for c in page.evaluate(MEASURE)}
    for app in (APP_A, APP_B):
        assert charts[f"{app}-volume"]["points"] == 60  # 30 stored hours: requests, billed parts
        assert charts[f"{app}-volume"]["variant"] == "narrow"
        assert charts[f"{app}-balance"]["points"] == 1
        rates = charts[f"{app}-rates"]
        assert rates["points"] == rates["declared"] > 0
        assert f"{app}-reasons" in charts
    page.click("text=Log out")
    page.wait_for_url(f"{origin}/login")
    page.goto(f"{origin}/dashboard")
    assert page.url == f"{origin}/login"  # the session is gone
    page.close()
    assert errors == []
    assert outside == []


@pytest.mark.parametrize(("width", "variant"), [(1280, "wide"), (390, "narrow")])
def test_given_a_month_when_seen_for_a_day_a_week_and_a_month_then_no_chart_text_is_cut_or_overlaps(
    summarized: Path, chromium: Any, origin: str, width: int, variant: str
) -> None:
    context = chromium.new_context(
        viewport={"width": width, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    page = context.new_page()
    errors, outside = watched(page)
    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    for days in (1, 7, 31):
        page.goto(f"{origin}/dashboard?days={days}")
        page.screenshot(path=str(ARTIFACTS / f"dashboard-{width}-{days}d.png"), full_page=True)
        assert page.evaluate("document.documentElement.scrollWidth") <= width  # no side-scroll
        drawn = page.evaluate(MEASURE)
        assert len(drawn) == 2 * 5  # each app: month, volume, rates, reasons, balance, once each
        for chart in drawn:
            where = f"{days}d {chart['chart']} ({chart['variant']})"
            assert chart["variant"] == variant, where
            assert chart["points"] == chart["declared"], where
            problems += _cut_or_overlapping(chart, where)
            if chart["chart"].endswith("-rates"):
                assert chart["thresholds"] == 2, where  # the default rules' 95% and 90%
        by_id = {c["chart"]: c for c in drawn}
        volume = by_id[f"{APP_A}-volume"]
        assert volume["points"] == {1: 2 * 13, 7: 2 * 152, 31: 2 * 30}[days]
        for app in (APP_A, APP_B):
            bar = by_id[f"{app}-month"]
            assert bar["points"] == 2, days  # to date, and the forecast beyond it
            assert bar["texts"], days  # labelled
            assert bar["box"][3] < by_id[f"{app}-volume"]["box"][1], days  # above the charts
        if days == 7:  # the panels alone, at the size a person sees them
            for app in (APP_A, APP_B):
                shot = ARTIFACTS / f"dashboard-{width}-month-{app}.png"
                page.locator(f'section[data-app="{app}"] figure.month').screenshot(path=str(shot))
        panel = page.locator(f'section[data-app="{APP_A}"] figure.month').inner_text()
        assert "to date 123,456 billed parts (CNY 5,555.52)" in panel
        assert "forecast 114% of budget" in panel
        over = page.locator(f'section[data-app="{APP_A}"] .over')
        assert over.evaluate("e => getComputedStyle(e).color") == "rgb(185, 28, 28)"  # red
    context.close()
    assert problems == []
    assert errors == []
    assert outside == []


def _cut_or_overlapping(chart: dict[str, Any], where: str) -> list[str]:
    """Texts sticking out of their SVG, overlapping another text of it, or too small to read."""
    left, top, right, bottom = chart["box"]
    texts = chart["texts"]
    out = []
    for t in texts:
        x0, y0, x1, y1 = t["box"]
        if x0 < left - 0.5 or y0 < top - 0.5 or x1 > right + 0.5 or y1 > bottom + 0.5:
            out.append(f"{where}: {t['text']!r} at {t['box']} is cut by {chart['box']}")
        if y1 - y0 < 11:
            out.append(f"{where}: {t['text']!r} is {y1 - y0:.1f} px tall, too small to read")
    for n, a in enumerate(texts):
        for b in texts[n + 1 :]:
            wide = min(a["box"][2], b["box"][2]) - max(a["box"][0], b["box"][0])
            tall = min(a["box"][3], b["box"][3]) - max(a["box"][1], b["box"][1])
            if wide > 0.5 and tall > 0.5:
                out.append(f"{where}: {a['text']!r} and {b['text']!r} overlap")
    return out
