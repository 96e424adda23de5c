"""The dashboard's HTML: one page, its style inline (the CSP allows inline style, nothing else),
every piece of text escaped, laid out to fold into one column on a phone."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import Any
from zoneinfo import ZoneInfo

from . import charts
from .data import AppSeries, BalancePoint, reasons_total

STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;padding:12px;color:#111;background:#f8fafc}
h1{font-size:20px;margin:0 0 4px}h2{font-size:17px;margin:0 0 8px}
header p,.meta{color:#475569;margin:0 0 8px}
section.app{background:#fff;border:1px solid #e2e8f0;border-radius:8px;padding:12px;margin:12px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(300px,1fr));gap:12px}
figure{margin:0}figcaption{font-weight:600;margin-bottom:4px}
svg.chart{width:100%;height:auto;display:block;background:#fff}
svg text{font-size:15px;fill:#475569}.ax{stroke:#94a3b8}.gr{stroke:#e2e8f0}
.legend{font-weight:400;color:#475569}.key{margin-left:8px;white-space:nowrap}
.key i{display:inline-block;width:10px;height:10px;margin-right:4px;border-radius:2px}
.none{color:#64748b;font-style:italic}.problem{color:#b91c1c}
table{border-collapse:collapse;width:100%}
td,th{text-align:left;padding:2px 6px;border-bottom:1px solid #e2e8f0}
.firing{color:#b91c1c;font-weight:600}form.inline{display:inline}
input,button{font:inherit;padding:6px 10px}
"""


@dataclass
class View:
    """What the page is asked to show (apps, days, zone), resolved once so every chart and link
    agrees."""

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
    shown = f"{view.start:%Y-%m-%d %H:%M} to {view.end:%Y-%m-%d %H:%M} {view.timezone}"
    head = (
        f"<header><h1>SMS statistics</h1><p>{len(view.app_ids)} app(s), last {view.days} "
        f"day(s): {escape(shown)}</p>"
        f'<form class="inline" method="post" action="{escape(view.base)}/logout">'
        '<button type="submit">Log out</button></form></header>'
    )
    notes = "".join(f'<p class="problem">{escape(n)}</p>' for n in view.notes)
    sections = [_app(view, view.series.get(app) or AppSeries(app), lo, hi) for app in view.app_ids]
    return _doc("sms-stats dashboard", head + notes + "".join(sections))


def _app(view: View, s: AppSeries, lo: int, hi: int) -> str:
    app = s.app_id
    requests = sum(p.requests for p in s.send)
    fee = sum(p.fee for p in s.send)
    callbacks = sum(p.callbacks for p in s.receipts)
    delivered = sum(p.delivered for p in s.receipts)
    rate = f"{delivered / callbacks:.2%}" if callbacks else "\u2013"
    remaining = f"{s.balance[-1].remaining:,}" if s.balance else "\u2013"
    summary = (
        f'<p class="meta">requests {requests:,} · billed parts {fee:,} · receipts {callbacks:,}'
        f" · delivered {rate} · messages left {remaining}</p>"
    )
    problems = "".join(f'<p class="problem">Not shown: {escape(p)}</p>' for p in s.problems)
    cid = f"{app}-"
    volume = charts.line_chart(
        "Messages and billed parts per hour",
        [
            charts.Line("requests", [(p.start, p.end, p.requests) for p in s.send]),
            charts.Line("billed parts", [(p.start, p.end, p.fee) for p in s.send]),
        ],
        lo,
        hi,
        view.tz,
        chart_id=cid + "volume",
    )
    rates = charts.line_chart(
        "Success and delivery rates",
        [
            charts.Line(
                "success", [(p.start, p.end, p.rate) for p in s.send if p.rate is not None]
            ),
            charts.Line(
                "delivery",
                [(p.start, p.end, p.rate) for p in s.receipts if p.rate is not None],
            ),
        ],
        lo,
        hi,
        view.tz,
        fmt=charts.percent,
        y_max=1.0,
        chart_id=cid + "rates",
    )
    reasons = charts.bars(
        "Receipt failures by reason", reasons_total(s.receipts), chart_id=cid + "reasons"
    )
    balance = charts.line_chart(
        "Messages left in packages",
        [charts.Line("remaining", _balance_points(s.balance))],
        lo,
        hi,
        view.tz,
        chart_id=cid + "balance",
    )
    return (
        f'<section class="app" data-app="{escape(app)}"><h2>App {escape(app)}</h2>'
        f'{summary}{problems}<div class="grid">{volume}{rates}{reasons}{balance}</div>'
        f"{_alerts(view, app)}</section>"
    )


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
    rows = []
    for item in view.fired:
        if item.get("app_id") != app:
            continue
        since = str(item.get("since") or "")
        if not item.get("firing") and since and since < view.start.isoformat()[:10]:
            continue  # fired before this range
        state = '<td class="firing">firing</td>' if item.get("firing") else "<td>fired</td>"
        rows.append(
            f"<tr><td>{escape(str(item.get('alert', '')))}</td>{state}<td>{escape(since)}</td></tr>"
        )
    if not rows:
        return '<p class="meta alerts" data-alerts="0">No alerts fired in this range.</p>'
    return (
        f'<table class="alerts" data-alerts="{len(rows)}"><caption>Alerts</caption>'
        "<tr><th>alert</th><th>state</th><th>since</th></tr>"
        f"{''.join(rows)}</table>"
    )
