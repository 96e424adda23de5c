"""The dashboard's month panel: month to date, the forecast and the budget from the money summary
(`money/summary.json`), with money where a price is set, read once a page, through `main_handler`
as the Function URL calls it; and the bar's labels, which never overlap or leave the drawing."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sms_stats.money import summary
from sms_stats.money.summary import AppMonth
from sms_stats.store.base import SinkError
from sms_stats.store.file import FileSink
from sms_stats.web.dashboard import charts, money, ticks

from .conftest import APP_A, APP_B
from .test_dashboard import NOW, day_store, filled, get, pinned, section

__all__ = ["day_store", "filled", "pinned"]  # fixtures used here

# NOW is 2021-05-03 13:30 in Shanghai: May's figures through the hour 12:00-13:00.
THROUGH = "2021050312"


def write(store: Path, *months: AppMonth) -> None:
    summary.write(FileSink(store, "file:store"), list(months), "Asia/Shanghai", NOW, None)


def panel(body: str, app: str) -> str:
    found = re.search(r'<figure class="month".*?</figure>', section(body, app))
    assert found, app
    return found.group(0)


def text(html: str) -> str:
    """What a person reads: tags dropped, entities as they show."""
    return re.sub(r"<[^>]+>", "", html).replace("&#x27;", "'").replace("&amp;", "&")


@pytest.fixture
def priced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMS_STATS_PRICE_PER_PART", "0.045")
    monkeypatch.setenv("SMS_STATS_CURRENCY", "CNY")


# -- the figures --------------------------------------------------------------------------------


def test_given_a_month_and_a_price_when_shown_then_the_panel_gives_parts_and_money(
    scf_env: Any, pinned: None, store: Path, priced: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_BUDGETS", f'{{"{APP_A}": 333000}}')
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 123_456, 380_000, 333_000))
    answer = get(days="7")
    assert answer["statusCode"] == 200
    shown = text(panel(answer["body"], APP_A))
    assert shown.startswith("This month May 2021, through May 3 12:00\u201313:00")
    assert "to date 123,456 billed parts (CNY 5,555.52)" in shown
    assert "forecast for the month's end 380,000 (CNY 17,100.00)" in shown
    assert "budget 333,000 (CNY 14,985.00)" in shown
    assert '<span class="fig over">forecast 114% of budget</span>' in panel(answer["body"], APP_A)


def test_given_the_panel_when_placed_then_it_stands_below_the_totals_and_above_the_charts(
    filled: None, store: Path
) -> None:
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 1_000, 2_000, None))
    app = section(get(days="1")["body"], APP_A)
    totals, month, grid = (
        app.index('<p class="meta">'),
        app.index('class="month"'),
        app.index('<div class="grid">'),
    )
    assert totals < month < grid
    assert "billed parts <b>" in app[:month]  # the range's totals came first


def test_given_no_price_when_shown_then_parts_only_and_no_money(
    scf_env: Any, pinned: None, store: Path
) -> None:
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 123_456, 380_000, None))
    shown = text(panel(get()["body"], APP_A))
    assert "to date 123,456 billed parts \u00b7 forecast for the month's end 380,000" in shown
    assert "CNY" not in shown
    assert "budget" not in shown  # none is configured


def test_given_a_forecast_within_the_budget_when_shown_then_its_share_is_not_marked(
    scf_env: Any, pinned: None, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_BUDGETS", '{"*": 400000}')
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 123_456, 380_000, 400_000))
    shown = panel(get()["body"], APP_A)
    assert '<span class="fig within">forecast 95% of budget</span>' in shown
    assert "over" not in shown


def test_given_a_forecast_a_part_over_the_budget_when_shown_then_it_is_not_a_plain_100() -> None:
    assert money.share(100_001, 100_000) == (">100%", True)
    assert money.share(100_000, 100_000) == ("100%", False)
    assert money.share(99_999, 100_000) == ("100%", False)
    assert money.share(114_500, 100_000) == ("115%", True)  # half up


def test_given_a_budget_only_in_the_summary_when_shown_then_the_one_configured_now_counts(
    scf_env: Any, pinned: None, store: Path
) -> None:
    """As on /metrics: the budget in force now, not the one the last run judged by."""
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 10, 20, 15))
    assert "budget" not in text(panel(get()["body"], APP_A))


@pytest.mark.parametrize(
    ("parts", "price", "expected"),
    [
        (1, "0.045", "CNY 0.05"),  # a float would print 0.04 (0.045 is 0.04499... in binary)
        (123_456, "0.045", "CNY 5,555.52"),
        (10**12, "0.045", "CNY 45,000,000,000.00"),
        (3, "0.015", "CNY 0.05"),  # 0.045, half up
        (0, "0.045", "CNY 0.00"),
    ],
)
def test_given_parts_and_a_price_when_priced_then_decimal_to_the_cent(
    parts: int, price: str, expected: str
) -> None:
    assert money.amount(parts, Decimal(price), "CNY") == expected


def test_given_another_currency_when_shown_then_its_code_is_written(
    scf_env: Any, pinned: None, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMS_STATS_PRICE_PER_PART", "0.0065")
    monkeypatch.setenv("SMS_STATS_CURRENCY", "USD")
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 2_000_000, 2_500_000, None))
    shown = text(panel(get()["body"], APP_A))
    assert "(USD 13,000.00)" in shown
    assert "(USD 16,250.00)" in shown


# -- no figures, other months, a summary that cannot be read ------------------------------------


def test_given_no_summary_when_shown_then_no_month_figures_yet_not_zeros(
    scf_env: Any, pinned: None, store: Path, priced: None
) -> None:
    body = get()["body"]
    for app in (APP_A, APP_B):
        shown = panel(body, app)
        assert "No month figures yet: no timer run has worked May 2021 out." in shown
        assert "<svg" not in shown
        assert " 0 " not in text(shown)
        assert "CNY" not in shown


def test_given_a_summary_without_the_app_when_shown_then_that_app_has_no_figures_yet(
    scf_env: Any, pinned: None, store: Path, monkeypatch: pytest.MonkeyPatch, priced: None
) -> None:
    monkeypatch.setenv("SMS_STATS_BUDGETS", f'{{"{APP_B}": 50000}}')
    write(store, AppMonth(APP_A, "2021-05", THROUGH, 10, 20, None))
    body = get()["body"]
    assert "to date 10 billed parts" in text(panel(body, APP_A))
    shown = text(panel(body, APP_B))
    assert "No month figures yet" in shown
    assert "budget 50,000 (CNY 2,250.00)" in shown  # what it has is still said


def test_given_last_months_figures_when_shown_then_it_says_so_and_which_month_they_are(
    scf_env: Any, pinned: None, store: Path
) -> None:
    """At 00:30 on the 1st, the newest run worked out the month before, through its last hour."""
    write(store, AppMonth(APP_A, "2021-04", "2021043023", 90_000, 90_000, None))
    shown = text(panel(get()["body"], APP_A))
    assert shown.startswith("This month May 2021No month figures yet for May 2021; these are for")
    assert "these are for Apr 2021, through Apr 30 23:00\u201300:00." in shown
    assert "to date 90,000 billed parts" in shown


@pytest.mark.parametrize(
    ("content", "why"),
    [
        (b"{not json", "money/summary.json is not JSON"),
        (b'{"schema": "sms-stats-money/v0", "apps": {}}', "is not a money summary this version"),
        (
            b'{"schema": "sms-stats-money/v1", "apps": {"1400006874": {"month": "2021-05", '
            b'"through": "2021050312", "month_to_date_fee_count": -5, '
            b'"month_forecast_fee_count": 1, "monthly_budget_fee_count": null}}}',
            "month_to_date_fee_count: not a count (-5)",
        ),
    ],
)
def test_given_an_unreadable_summary_when_shown_then_the_panel_says_why_and_the_rest_renders(
    filled: None, store: Path, content: bytes, why: str
) -> None:
    (store / "money").mkdir(exist_ok=True)
    (store / summary.KEY).write_bytes(content)
    answer = get(days="1")
    assert answer["statusCode"] == 200
    for app in (APP_A, APP_B):
        shown = panel(answer["body"], app)
        assert "Month figures not shown: " in shown
        assert why in shown
        assert f'data-chart="{app}-volume"' in section(answer["body"], app)  # the charts still are


def test_given_a_summary_with_no_apps_when_shown_then_no_figures_yet_and_no_problem(
    scf_env: Any, pinned: None, store: Path
) -> None:
    (store / "money").mkdir(parents=True)
    (store / summary.KEY).write_text('{"schema": "sms-stats-money/v1", "apps": {}}')
    shown = panel(get()["body"], APP_A)
    assert "No month figures yet" in shown
    assert "problem" not in shown


def test_given_a_store_that_does_not_give_the_summary_when_shown_then_named_not_a_500(
    filled: None, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = FileSink.get

    def failing(self: FileSink, key: str, deadline: float | None = None) -> bytes | None:
        if key == summary.KEY:
            raise SinkError(f"could not read {key}: Input/output error")
        return original(self, key, deadline)

    monkeypatch.setattr(FileSink, "get", failing)
    answer = get(days="1")
    assert answer["statusCode"] == 200
    shown = text(panel(answer["body"], APP_A))
    assert "Month figures not shown: money/summary.json could not be read: could not read" in shown
    assert f'data-chart="{APP_A}-volume"' in answer["body"]


def test_given_five_apps_when_a_page_is_shown_then_the_summary_is_read_once(
    scf_env: Any, pinned: None, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = [f"140000687{n}" for n in range(4, 9)]
    monkeypatch.setenv("SMS_STATS_APP_IDS", ",".join(apps))
    write(store, *(AppMonth(a, "2021-05", THROUGH, 100 * n, 300 * n, None) for n, a in
                   enumerate(apps, 1)))  # fmt: skip
    reads: list[str] = []
    original = FileSink.get

    def counting(self: FileSink, key: str, deadline: float | None = None) -> bytes | None:
        reads.append(key)
        return original(self, key, deadline)

    monkeypatch.setattr(FileSink, "get", counting)
    body = get()["body"]
    assert reads.count(summary.KEY) == 1
    for n, app in enumerate(apps, 1):
        assert f"to date {100 * n:,} billed parts" in text(panel(body, app))


def test_given_hostile_text_in_the_summary_when_shown_then_it_is_escaped(
    scf_env: Any, pinned: None, store: Path
) -> None:
    write(store, AppMonth(APP_A, "<b>x</b>", "<i>y</i>z", 1, 2, None))
    shown = panel(get()["body"], APP_A)
    assert "<b>x</b" not in shown
    assert "&lt;b&gt;x&lt;/b" in shown  # the month, as the summary holds it (7 characters)
    assert "&lt;i&gt;y&lt;/i&gt;z" in shown  # a through hour this version does not read


# -- the bar ------------------------------------------------------------------------------------


def drawn_labels(svg: str) -> list[tuple[str, float, float, float]]:
    """Each label's text, row and estimated extent (as the layout estimates it)."""
    out = []
    for x, y, anchor, label in re.findall(
        r'<text class="ml" x="([\d.]+)" y="(\d+)" text-anchor="(\w+)">([^<]+)</text>', svg
    ):
        width = ticks.text_width(label, charts.FONT)
        left = {"start": float(x), "middle": float(x) - width / 2, "end": float(x) - width}
        out.append((label, float(y), left[anchor], left[anchor] + width))
    return out


@given(
    to_date=st.integers(0, 10**9),
    extra=st.integers(0, 10**9),
    budget=st.none() | st.integers(1, 10**9),
)
@example(to_date=14249, extra=991, budget=None)  # a centred label written 0.05 px past the edge
@example(to_date=991, extra=14249, budget=None)
def test_given_any_figures_when_the_bar_is_drawn_then_no_label_overlaps_or_leaves_it(
    to_date: int, extra: int, budget: int | None
) -> None:
    for variant in charts.VARIANTS:
        svg = money.bar(variant, APP_A, to_date, to_date + extra, budget)
        labels = drawn_labels(svg)
        if to_date + extra or budget:
            assert labels[0][0] == "to date"  # the first placed is never left out
        for label, _row, left, right in labels:
            assert left >= -0.01, label
            assert right <= variant.width + 0.01, label
        for n, (a, row_a, left_a, right_a) in enumerate(labels):
            for b, row_b, left_b, right_b in labels[n + 1 :]:
                if row_a == row_b:
                    gap = max(left_b - right_a, left_a - right_b)
                    assert gap >= ticks.GAP_EM * charts.FONT - 0.01, (a, b)


def test_given_a_forecast_over_the_budget_when_drawn_then_the_largest_fills_the_width() -> None:
    svg = money.bar(charts.VARIANTS[0], APP_A, 100, 400, 200)
    # scaled to the forecast (the largest): the budget line stands at half the width
    found = re.search(r'<line class="budget" x1="([\d.]+)"', svg)
    assert found
    budget_x = float(found.group(1))
    assert budget_x == pytest.approx(2 + 596 / 2)
    assert 'data-points="2"' in svg  # to date and the forecast beyond it


def test_given_nothing_billed_when_drawn_then_it_says_so() -> None:
    svg = money.bar(charts.VARIANTS[1], APP_A, 0, 0, None)
    assert "nothing billed this month" in svg
    assert 'data-points="0"' in svg


def test_given_a_month_when_its_hour_is_written_then_it_is_read_as_the_page_writes_times() -> None:
    now = datetime(2021, 5, 3, 5, 30, tzinfo=timezone.utc)
    shanghai = ZoneInfo("Asia/Shanghai")
    assert money.through_text("2021050312", shanghai, now) == "May 3 12:00\u201313:00"
    assert money.through_text("2020123123", shanghai, now) == "Dec 31 23:00\u201300:00, 2020"
    assert money.through_text("nonsense", shanghai, now) == "nonsense"
    assert money.month_name("2021-06") == "Jun 2021"
    assert money.month_name("2021-13") == "2021-13"
