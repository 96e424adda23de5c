"""The month panel: each app's billed parts from the month's first hour to date, the forecast
for the month's end and the budget, as the newest timer run left them in `money/summary.json`
(read once a page, whatever the number of apps), with their money where
`SMS_STATS_PRICE_PER_PART` is set (counts times the price as Decimal, never a float), and a
small bar drawn to the largest of the three: to date filled, the forecast a lighter extension,
the budget a line.

The budget is the one configured now (`SMS_STATS_BUDGETS`), as `/metrics` gives it, and so is
the price: a change shows at the next view, not the next run. A month the summary does not hold
is said to have no figures yet, never drawn as zeros; a summary the store cannot give or that
cannot be read is named in each panel, and the rest of the page renders.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from decimal import Decimal
from html import escape

from sms_stats.money import summary
from sms_stats.money.summary import AppMonth, cost
from sms_stats.store.base import SinkError, Store
from sms_stats.web.dashboard.charts import FONT, VARIANTS, Variant
from sms_stats.web.dashboard.ticks import GAP_EM, MONTHS, text_width, when

TO_DATE = "#d97706"  # the billed parts' colour on the volume chart
FORECAST = "#fcd9a8"  # the same, lighter: not yet billed
BUDGET = "#334155"
TRACK = "#f1f5f9"
# The bar's rows (SVG units at the size a variant is designed for): labels above, the bar,
# labels below; the budget line stands out of the bar on both sides.
ABOVE_Y, BAR_Y, BAR_H, BELOW_Y, HEIGHT = 13, 19, 16, 51, 56
PAD = 2  # the budget line (2 wide) is never cut by an edge


@dataclass(frozen=True)
class Months:
    """What the page knows of its apps' months: the summary as read (`problem`: why it could
    not be), and the price and budgets in force."""

    apps: Mapping[str, AppMonth] = field(default_factory=dict)
    problem: str | None = None
    price: Decimal | None = None
    currency: str = "CNY"
    budgets: Mapping[str, int] = field(default_factory=dict)


def read(store: Store, deadline: float | None) -> tuple[dict[str, AppMonth], str | None]:
    """Every app's month (one request), and why there are none when the summary cannot be
    read; an absent summary is no months and no problem (no timer run has written it yet)."""
    try:
        data = store.get(summary.KEY, deadline)
    except SinkError as exc:
        return {}, f"{summary.KEY} could not be read: {exc}"
    if data is None:
        return {}, None
    try:
        return summary.parse(data), None
    except ValueError as exc:
        return {}, str(exc)


# -- text ---------------------------------------------------------------------------------------


def amount(parts: int, price: Decimal, currency: str) -> str:
    """`CNY 5,555.52`: parts times the price, exactly, to the cent (half up)."""
    return f"{currency} {cost(parts, price):,.2f}"


def month_name(month: str) -> str:
    """`Jun 2021` for `2021-06`; text this version does not read, as it is."""
    try:
        year, number = int(month[:4]), int(month[5:7])
    except ValueError:
        return month
    if len(month) != 7 or month[4] != "-" or not 1 <= number <= 12:
        return month
    return f"{MONTHS[number - 1]} {year}"


def through_text(hour: str, tz: tzinfo, now: datetime) -> str:
    """The hour a month is worked out through (`yyyymmddhh`, the store's zone, included), as
    the page writes times: `Jun 10 13:00-14:00` (an en dash); text this version does not read,
    as it is."""
    try:
        start = datetime.strptime(hour, "%Y%m%d%H").replace(tzinfo=tz)
    except ValueError:
        return hour
    end = (start.astimezone(timezone.utc) + timedelta(hours=1)).astimezone(tz)
    moment, sep, year = when(start, tz, now).partition(", ")
    return f"{moment}\u2013{end:%H:%M}{sep}{year}"


def share(forecast: int, budget: int) -> tuple[str, bool]:
    """The forecast's share of the budget (`114%`), and whether it is above it: a forecast a
    part over the budget is never shown as a plain 100%."""
    percent = (forecast * 200 + budget) // (2 * budget)  # rounded half up, in integers
    over = forecast > budget
    if over and percent <= 100:
        return ">100%", over
    return f"{percent}%", over


def _money(parts: int, months: Months) -> str:
    if months.price is None:
        return ""
    return f' <span class="fig">({escape(amount(parts, months.price, months.currency))})</span>'


# -- the panel ----------------------------------------------------------------------------------


def panel(months: Months, app_id: str, tz: tzinfo, now: datetime) -> str:
    """The app's month panel: its figures, or why there are none."""
    local = now.astimezone(tz)
    current = f"{local.year:04d}-{local.month:02d}"
    budget = months.budgets.get(app_id)
    found = months.apps.get(app_id)
    head = f'<figcaption>This month <span class="note">{escape(month_name(current))}</span>'
    if months.problem is not None:
        lines = [f'<p class="meta problem">Month figures not shown: {escape(months.problem)}.</p>']
        return _figure("unreadable", head, lines, budget, months)
    if found is None:
        lines = [
            '<p class="meta none">No month figures yet: no timer run has worked '
            f"{escape(month_name(current))} out.</p>"
        ]
        return _figure("none", head, lines, budget, months)
    span = f'<span class="fig">{escape(through_text(found.through, tz, now))}</span>'
    lines = []
    if found.month == current:
        head = (
            f'<figcaption>This month <span class="note">{escape(month_name(current))}, '
            f"through {span}</span>"
        )
    else:
        lines.append(
            f'<p class="meta none">No month figures yet for {escape(month_name(current))}; '
            f"these are for {escape(month_name(found.month))}, through {span}.</p>"
        )
    lines.append(_figures(found, budget, months))
    lines.append(_legend(budget is not None))
    svgs = "".join(bar(v, app_id, found.to_date, found.forecast, budget) for v in VARIANTS)
    return (
        f'<figure class="month" data-month="{escape(found.month)}">{head}</figcaption>'
        f"{''.join(lines)}{svgs}</figure>"
    )


def _figure(state: str, head: str, lines: list[str], budget: int | None, months: Months) -> str:
    """A panel without figures: what it lacks, and the budget when one is set."""
    if budget is not None:
        lines.append(f'<p class="meta">budget <b>{budget:,}</b>{_money(budget, months)}</p>')
    return (
        f'<figure class="month" data-month="{state}">{head}</figcaption>{"".join(lines)}</figure>'
    )


def _figures(found: AppMonth, budget: int | None, months: Months) -> str:
    """The figures, each number kept on one line with its money (a phone wraps between)."""
    to_date, forecast = found.to_date, found.forecast
    items = [
        f'<span class="fig">to date <b>{to_date:,}</b></span> billed parts'
        f"{_money(to_date, months)}",
        f'forecast for the month\'s end <span class="fig"><b>{forecast:,}</b></span>'
        f"{_money(forecast, months)}",
    ]
    if budget is not None:
        shown, over = share(forecast, budget)
        items.append(f'<span class="fig">budget <b>{budget:,}</b></span>{_money(budget, months)}')
        items.append(
            f'<span class="fig {"over" if over else "within"}">forecast {shown} of budget</span>'
        )
    return f'<p class="meta figures">{" · ".join(items)}</p>'


def _legend(budget: bool) -> str:
    keys = [
        f'<span class="key"><i style="background:{TO_DATE}"></i>to date</span>',
        f'<span class="key"><i style="background:{FORECAST}"></i>forecast</span>',
    ]
    if budget:
        keys.append(
            f'<span class="key th"><i style="border-top:2px solid {BUDGET}"></i>budget</span>'
        )
    return f'<p class="legend">{"".join(keys)}</p>'


# -- the bar ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Label:
    """A label of the bar, and where it may stand: it moves to the next row rather than
    overlap another or leave the drawing."""

    text: str
    at: float  # the mark it names
    rows: tuple[float, ...]  # baselines it may stand on, preferred first


def bar(variant: Variant, app_id: str, to_date: int, forecast: int, budget: int | None) -> str:
    """One drawing of the bar, laid out for `variant`'s width: each label over or under its
    mark, kept inside the drawing, on the first row where it clears the labels already there;
    one that clears none is left out (the legend and the figures above still name it)."""
    width = variant.width
    top = max(to_date, forecast, budget or 0)

    def x(value: int) -> float:
        return PAD + value * (width - 2 * PAD) / top if top else float(PAD)

    title = f"to date {to_date:,}, forecast {forecast:,}" + (
        f", budget {budget:,}" if budget is not None else ""
    )
    parts = [
        f'<rect class="track" x="{PAD}" y="{BAR_Y}" width="{width - 2 * PAD}" height="{BAR_H}" '
        f'fill="{TRACK}"/>'
    ]
    drawn = 0
    if forecast > to_date:
        parts.append(
            f'<rect class="bar" data-series="forecast" x="{x(to_date):.1f}" y="{BAR_Y}" '
            f'width="{x(forecast) - x(to_date):.1f}" height="{BAR_H}" fill="{FORECAST}"/>'
        )
        drawn += 1
    if to_date > 0:
        parts.append(
            f'<rect class="bar" data-series="to date" x="{PAD}" y="{BAR_Y}" '
            f'width="{x(to_date) - PAD:.1f}" height="{BAR_H}" fill="{TO_DATE}"/>'
        )
        drawn += 1
    if budget is not None:
        parts.append(
            f'<line class="budget" x1="{x(budget):.1f}" y1="{BAR_Y - 3}" x2="{x(budget):.1f}" '
            f'y2="{BAR_Y + BAR_H + 3}" stroke="{BUDGET}" stroke-width="2">'
            f"<title>budget {budget:,}</title></line>"
        )
    if top == 0:
        parts.append(
            f'<text class="none" x="{width / 2:.0f}" y="{BELOW_Y}" text-anchor="middle">'
            "nothing billed this month</text>"
        )
    else:
        labels = [_Label("to date", x(to_date), (BELOW_Y, ABOVE_Y))]
        if forecast != to_date:  # else it is no mark of its own (a month that has ended)
            labels.append(_Label("forecast", x(forecast), (BELOW_Y, ABOVE_Y)))
        if budget is not None:
            labels.append(_Label("budget", x(budget), (ABOVE_Y, BELOW_Y)))
        parts.extend(_labels(labels, width))
    return (
        f'<svg class="chart month {variant.name}" viewBox="0 0 {width} {HEIGHT}" role="img" '
        f'data-chart="{escape(app_id)}-month" data-variant="{variant.name}" '
        f'data-points="{drawn}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"{''.join(parts)}</svg>"
    )


EDGE_SNAP = 0.5


def _labels(labels: Sequence[_Label], width: int) -> list[str]:
    gap = GAP_EM * FONT
    taken: dict[float, list[tuple[float, float]]] = {}
    out = []
    for label in labels:
        size = text_width(label.text, FONT)
        left = min(max(label.at - size / 2, 0.0), width - size)
        anchor, at = "middle", label.at
        # Within half a pixel of an edge: anchored to it, since the x written (to a tenth)
        # could otherwise put a centred label a few hundredths past it.
        if left < EDGE_SNAP:
            anchor, at, left = "start", 0.0, 0.0
        elif left > width - size - EDGE_SNAP:
            anchor, at, left = "end", float(width), width - size
        for row in label.rows:
            held = taken.setdefault(row, [])
            if all(left + size + gap <= a or b + gap <= left for a, b in held):
                held.append((left, left + size))
                out.append(
                    f'<text class="ml" x="{at:.1f}" y="{row}" text-anchor="{anchor}">'
                    f"{escape(label.text)}</text>"
                )
                break
    return out
