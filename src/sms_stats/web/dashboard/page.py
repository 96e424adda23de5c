"""The dashboard's HTML: one page, its style inline (the CSP allows inline style, nothing else),
every piece of text escaped, laid out to use a wide screen (two charts a row) and to fold into
one column on a phone, where each chart shows its narrow variant (see `charts`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from html import escape
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from sms_stats.core.rules import Rule
from sms_stats.web.dashboard import charts, daily, money, thresholds
from sms_stats.web.dashboard.data import AppSeries, BalancePoint, day_end, reasons_total
from sms_stats.web.dashboard.ticks import when

# Two charts a row from 1100 px (each ~500-780 px wide: the wide variant's 600 at 0.85-1.3x);
# one below, the narrow variant (340) under 600 px. svg text has the face whose widths the
# labels were placed by (see `ticks`).
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0 auto;max-width:1600px;padding:12px;color:#111;
background:#f8fafc}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:0 0 8px}
header p,.meta{color:#475569;margin:0 0 8px}nav a{margin-right:10px}
section.app{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px;margin:12px 0}
.grid{display:grid;grid-template-columns:minmax(0,1fr);gap:16px 20px}
@media (min-width:1100px){.grid{grid-template-columns:repeat(2,minmax(0,1fr))}}
figure{margin:0;min-width:0}figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block;background:#fff}svg.narrow{display:none}
@media (max-width:599px){body{padding:8px}section.app{padding:8px}
svg.wide{display:none}svg.narrow{display:block}}
svg text{font:12px "DejaVu Sans",Verdana,sans-serif;fill:#475569}
.ax{stroke:#94a3b8}.gr{stroke:#e2e8f0}.ln{stroke-width:1.5;stroke-linejoin:round}
.th{stroke-width:1.5;stroke-dasharray:6 4}
.legend{display:block;font-weight:400;color:#475569}.key{margin-right:12px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.key.th i{width:16px;height:0;border-top:2px dashed;border-radius:0;vertical-align:middle}
.note{font-weight:400;color:#64748b}
.none{color:#64748b;font-style:italic}svg text.none{font-style:italic}
.problem,.gap{color:#b91c1c}.meta b{color:#111;font-weight:600}
table{border-collapse:collapse;width:100%;margin-top:12px}caption{text-align:left;font-weight:600}
td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #e2e8f0}
.firing{color:#b91c1c;font-weight:600}form.inline{display:inline}
input,button{font:inherit;padding:6px 10px}
figure.month{margin:0 0 12px;max-width:760px}figure.month .meta{margin:2px 0}
figure.month .legend{margin:2px 0 4px}.fig{white-space:nowrap}svg.month{max-width:600px}
.over{color:#b91c1c;font-weight:600}
"""
RANGES = (1, 2, 7, 14, 31)


@dataclass
class View:
    """What the page is asked to show (apps, days, zone), resolved once so every chart and link
    agrees. `rules`: the alert rules in force, whose thresholds the charts draw."""

    app_ids: Sequence[str]
    days: int
    start: datetime
    end: datetime
    tz: ZoneInfo
    timezone: str
    base: str
    now: datetime
    series: dict[str, AppSeries] = field(default_factory=dict)
    fired: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    rules: Sequence[Rule] = ()
    months: money.Months | None = None  # the month panel's; None: no panel (no store)

    @property
    def daily(self) -> bool:
        return self.days > daily.HOURLY_DAYS

    @property
    def last_hour(self) -> datetime:
        """The start of the hour under way (local), so the hours before it are the ones a
        timer run should have stored by now."""
        return self.now.astimezone(self.tz).replace(minute=0, second=0, microsecond=0)


def _doc(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>{body}</body></html>"
    )


def login_form(base: str, error: str | None = None) -> str:
    problem = f'<p class="problem" role="alert">{escape(error)}</p>' if error else ""
    return _doc(
        "sms-stats: log in",
        "<h1>sms-stats</h1><p>Log in with an API token (SMS_STATS_API_TOKEN).</p>"
        f'{problem}<form method="post" action="{escape(base)}/login">'
        '<label>Token <input type="password" name="token" autocomplete="current-password" '
        'required autofocus></label> <button type="submit">Log in</button></form>',
    )


def message(title: str, text: str, base: str) -> str:
    return _doc(
        f"sms-stats: {title}",
        f'<h1>{escape(title)}</h1><p class="problem">{escape(text)}</p>'
        f'<p><a href="{escape(base)}/dashboard">Back to the dashboard</a></p>',
    )


def render(view: View) -> str:
    lo, hi = int(view.start.timestamp()), int(view.end.timestamp())
    if view.daily:  # whole days: today's point stands at its middle like the others
        last_day = (view.end - timedelta(microseconds=1)).astimezone(view.tz).date()
        hi = int(day_end(last_day, view.tz).timestamp())
    shown = (
        f"{when(view.start, view.tz, view.now)} \u2013 {when(view.end, view.tz, view.now)} "
        f"({view.timezone}), {'per day' if view.daily else 'per hour'}"
    )
    apps = f"{len(view.app_ids)} app{'s' if len(view.app_ids) != 1 else ''}"
    query = {"app_id": ",".join(view.app_ids)}
    links = " ".join(
        f"<b>{n} day{'s' if n != 1 else ''}</b>"
        if n == view.days
        else f'<a href="{escape(view.base)}/dashboard?'
        f'{escape(urlencode({**query, "days": n}))}">{n} day{"s" if n != 1 else ""}</a>'
        for n in RANGES
    )
    head = (
        f"<header><h1>SMS statistics</h1><p>{apps}, last {view.days} "
        f"day{'s' if view.days != 1 else ''}: {escape(shown)}</p><nav>Show {links}</nav>"
        f'<form class="inline" method="post" action="{escape(view.base)}/logout">'
        '<button type="submit">Log out</button></form></header>'
    )
    notes = "".join(f'<p class="problem">{escape(n)}</p>' for n in view.notes)
    axis = charts.TimeAxis(lo, hi, view.tz, daily=view.daily)
    sections = [_app(view, view.series.get(app) or AppSeries(app), axis) for app in view.app_ids]
    return _doc("sms-stats dashboard", head + notes + "".join(sections))


def _app(view: View, s: AppSeries, axis: charts.TimeAxis) -> str:
    app = s.app_id
    cid = f"{app}-"
    drawn = thresholds.for_app(view.rules, app, daily=view.daily)
    if view.daily:
        days = daily.by_day(s, daily.bounds(axis.lo, axis.hi, view.tz))
        sends = [(d.start, d.end, d) for d in days if d.send_hours]
        receipts = [(d.start, d.end, d) for d in days if d.receipt_hours]
        volume_lines = [
            charts.Line("requests", [(a, b, d.requests) for a, b, d in sends]),
            charts.Line("billed parts", [(a, b, d.fee) for a, b, d in sends]),
        ]
        rate_lines = [
            charts.Line("success", _rates([(a, b, d.success_rate) for a, b, d in sends])),
            charts.Line("delivery", _rates([(a, b, d.delivery_rate) for a, b, d in receipts])),
        ]
        balance = [(d.start, d.end, d.balance) for d in days if d.balance is not None]
        balance_line = charts.Line("remaining", [(a, b, float(v)) for a, b, v in balance])
        per = "per day"
    else:
        volume_lines = [
            charts.Line("requests", [(p.start, p.end, p.requests) for p in s.send]),
            charts.Line("billed parts", [(p.start, p.end, p.fee) for p in s.send]),
        ]
        rate_lines = [
            charts.Line("success", _rates([(p.start, p.end, p.rate) for p in s.send])),
            charts.Line("delivery", _rates([(p.start, p.end, p.rate) for p in s.receipts])),
        ]
        balance_line = charts.Line("remaining", _balance_points(s.balance))
        per = "per hour"
    today = "today so far" if view.daily else ""
    volume = charts.line_chart(
        f"Messages and billed parts {per}",
        volume_lines,
        axis,
        thresholds=drawn.of("volume"),
        chart_id=cid + "volume",
        note=", ".join(n for n in (today, drawn.notes.get("volume", "")) if n),
    )
    rates = charts.line_chart(
        f"Success and delivery rates {per}",
        rate_lines,
        axis,
        rates=True,
        thresholds=drawn.of("rates"),
        chart_id=cid + "rates",
        note="the rules judge each hour" if view.daily and drawn.of("rates") else "",
    )
    reasons = charts.bars(
        "Receipt failures by reason", reasons_total(s.receipts), chart_id=cid + "reasons"
    )
    balance_chart = charts.line_chart(
        "Messages left in packages" + (" (each day's last)" if view.daily else ""),
        [balance_line],
        axis,
        thresholds=drawn.of("balance"),
        chart_id=cid + "balance",
    )
    return (
        f'<section class="app" data-app="{escape(app)}"><h2>App {escape(app)}</h2>'
        f"{_summary(view, s)}"
        + "".join(f'<p class="problem">Not shown: {escape(p)}</p>' for p in s.problems)
        + (money.panel(view.months, app, view.tz, view.now) if view.months is not None else "")
        + f'<div class="grid">{volume}{rates}{reasons}{balance_chart}</div>'
        f"{_alerts(view, app)}</section>"
    )


def _rates(points: Sequence[tuple[int, int, float | None]]) -> list[tuple[int, int, float]]:
    """Points with a rate: an hour (or day) with nothing to divide by has none, a gap."""
    return [(a, b, rate) for a, b, rate in points if rate is not None]


def _summary(view: View, s: AppSeries) -> str:
    """The range's totals, each said to be missing rather than shown as a zero, and how many
    of the hours that have ended in the range are not stored (their totals lack them)."""
    lo = int(view.start.timestamp())
    due_end = int(view.last_hour.timestamp())
    due = max(0, (due_end - lo) // 3600)
    if not (s.send or s.receipts or s.balance):
        return f'<p class="meta gap">No data stored for this app in this range ({due} hours).</p>'
    items = []
    if s.send:
        requests = sum(p.requests for p in s.send)
        successes = sum(p.successes for p in s.send)
        fee = sum(p.fee for p in s.send)
        rate = f" ({successes / requests:.2%} sent)" if requests else ""
        items.append(f"requests <b>{requests:,}</b>{rate} · billed parts <b>{fee:,}</b>")
    else:
        items.append("requests: no data")
    if s.receipts:
        callbacks = sum(p.callbacks for p in s.receipts)
        delivered = sum(p.delivered for p in s.receipts)
        rate = f" ({delivered / callbacks:.2%} delivered)" if callbacks else ""
        items.append(f"receipts <b>{callbacks:,}</b>{rate}")
    else:
        items.append("receipts: no data")
    if s.balance:
        last = s.balance[-1]
        at = when(datetime.fromtimestamp(last.at, view.tz), view.tz, view.now)
        items.append(f"messages left <b>{last.remaining:,}</b> ({escape(at)})")
    else:
        items.append("messages left: no data")
    gaps = []
    for kind, stored in (("sends", s.send), ("receipts", s.receipts)):
        held = len({p.start for p in stored if lo <= p.start < due_end})
        if stored and held < due:
            gaps.append(f"{kind} {due - held} of {due} hours")
    missing = (
        f'<p class="meta gap">Not stored, so not in these totals: {"; ".join(gaps)}.</p>'
        if gaps
        else ""
    )
    return f'<p class="meta">{" · ".join(items)}</p>{missing}'


def _balance_points(points: Sequence[BalancePoint]) -> list[tuple[int, int, float]]:
    """Hourly snapshots: one is continuous with the next when it comes within the next hour
    plus a little (a run at minute 5, the next at minute 7); further apart is a gap."""
    out: list[tuple[int, int, float]] = []
    for n, point in enumerate(points):
        following = points[n + 1].at if n + 1 < len(points) else None
        near = following is not None and following - point.at <= 3600 + 900
        out.append((point.at, following if near and following else point.at + 1, point.remaining))
    return out


def _alerts(view: View, app: str) -> str:
    """Alerts still firing, one row each with when they began; alerts that fired in the range
    and ended, one row per alert with how often and when (an hourly rule can fire dozens of
    times in a month: a row each would bury the one still firing)."""
    firing: list[tuple[str, str, str]] = []
    ended: dict[str, list[tuple[datetime | None, str]]] = {}
    for item in view.fired:
        if item.get("app_id") != app:
            continue
        name, raw = str(item.get("alert", "")), str(item.get("since") or "")
        since = _moment(raw)
        if item.get("firing"):
            firing.append((name, raw, when(since, view.tz, view.now) if since else raw))
        elif since is None or since >= view.start:  # else it fired before this range
            ended.setdefault(name, []).append((since, raw))
    rows = [
        f'<tr><td>{escape(name)}</td><td class="firing">firing</td>'
        f'<td title="{escape(raw)}">since {escape(shown)}</td></tr>'
        for name, raw, shown in firing
    ]
    for name, times in ended.items():
        known = sorted(t for t, _raw in times if t is not None)
        shown = [when(t, view.tz, view.now) for t in known] or [raw for _t, raw in times[:1]]
        span = shown[0] if len(shown) == 1 else f"{shown[0]} \u2013 {shown[-1]}"
        count = "once" if len(times) == 1 else f"{len(times)} times"
        rows.append(
            f"<tr><td>{escape(name)}</td><td>fired {count}</td><td>{escape(span)}</td></tr>"
        )
    if not rows:
        return '<p class="meta alerts" data-alerts="0">No alerts fired in this range.</p>'
    return (
        f'<table class="alerts" data-alerts="{len(rows)}"><caption>Alerts</caption>'
        "<tr><th>alert</th><th>state</th><th>when</th></tr>"
        f"{''.join(rows)}</table>"
    )


def _moment(text: str) -> datetime | None:
    """An ISO time with its offset (as the alert state keeps them), or None: a bare date or
    text this version does not read is shown as it is."""
    try:  # Python 3.10 reads no `Z`
        moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
