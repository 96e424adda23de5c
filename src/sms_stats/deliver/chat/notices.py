"""What a notice says in a chat: an alert that fired or ended, or the daily digest.

A notice is worded into the same `Summary` a window of records is (title, window line, one row
per app, a total), so each bot lays it out, escapes it and splits it with the code it already
has, and a person reads an alert the way they read the hourly figures: which app, what the
figure is, what it should be, since when. Times are local (the notice's zone), as in every
chat message. Every title says "SMS": DingTalk and Feishu robots are often guarded by a custom
keyword, and the hint this project gives for a refused message is to use that word.

Rule names are the operator's text: here they are made one bounded line (`clean`); each
platform escapes the title as it escapes app ids. Every other word in a row is ours.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from sms_stats.core.notices import Notice
from sms_stats.core.windows import Window, zone
from sms_stats.deliver.chat.markup import clean
from sms_stats.deliver.chat.messages import DASH, Row, Summary, number, percent, window_text

ALERT_TITLE = "SMS alert: "
RESOLVED_TITLE = "SMS alert resolved: "
DIGEST_TITLE = "SMS daily digest"
LATE = " (sent late)"  # a day no run could report on at its hour, sent by the next run

# How an operator reads each metric: its name in a message, and the kind of figure it is.
RATES = {
    "success_rate": "success rate",
    "delivery_rate": "delivery rate",
    "black_list_share": "blocklisted share",
    "frequency_limit_share": "frequency-limit share",
    "invalid_number_share": "invalid-number share",
    "shutdown_error_share": "phone-off share",
    "internal_error_share": "carrier-error share",
}
COUNTS = {
    "request_count": "requests",
    "fee_count": "billed parts",
    "package_remaining": "balance left",
    "month_to_date_fee_count": "billed this month",
    "month_forecast_fee_count": "month forecast",
    "package_unused_at_expiry": "left unused at expiry",
}
# Multiples: the hour's volume against its usual, the forecast against the budget.
RATIOS = {
    "volume_ratio": "volume vs the usual for this hour",
    "budget_forecast_ratio": "month forecast vs budget",
}
DAYS = {
    "package_runway_days": "balance runway",
    "package_expiry_days": "next expiry in",
}
_NOT_A_WORD = re.compile(r"[^a-z0-9]+")


def summary(notice: Notice) -> Summary:
    """The notice as a chat message's content; ValueError when its data is not what the
    contract says it is (the caller reports it as that sink's failure)."""
    if notice.type == "digest.daily":
        return digest(notice.data, notice.timezone)
    resolved = notice.type == "alert.resolved"
    return alert(notice.data, notice.timezone, resolved=resolved, repeat=notice.repeat)


def alert(
    data: Mapping[str, Any], zone_name: str, *, resolved: bool, repeat: bool | None = None
) -> Summary:
    """`SMS alert: <rule>`, the hour judged, and one row: the app, its figure against the
    threshold, and since when (or, once resolved, for how long) it has been wrong."""
    tz = zone(zone_name)
    start, end = _moment(data, "window_start", tz), _moment(data, "window_end", tz)
    since = _moment(data, "since", tz)
    metric = str(data.get("metric") or "")
    name = clean(str(data.get("alert") or metric_name(metric)))
    condition = data.get("condition")
    rule = f"{condition} " if condition in ("below", "above") else ""
    cells = [
        f"{metric_name(metric)}{' now' if resolved else ''} {figure(metric, data.get('value'))}",
        f"threshold {rule}{figure(metric, data.get('threshold'))}",
    ]
    if resolved:
        cells.append(f"lasted {duration(start - since)}")
    else:  # a repeat (every `repeat_hours`); with `for_hours` the first firing is after since
        if repeat is None:
            repeat = start > since
        still = "still firing " if repeat else ""
        cells.append(f"{still}since {since:%Y-%m-%d %H:%M}")
    title = (RESOLVED_TITLE if resolved else ALERT_TITLE) + name
    row = Row(str(data.get("app_id") or ""), tuple(cells))
    return Summary(title, window_text(Window(start, end), zone_name), (row,), row)


def digest(data: Mapping[str, Any], zone_name: str) -> Summary:
    """Yesterday per app in one line each, and the day's total: what was sent, how much of it
    arrived, what is left to send with, and how often the alerts fired; the title says when it
    comes late (a day whose digest no run could make at its hour)."""
    tz = zone(zone_name)
    try:
        day = date.fromisoformat(str(data.get("date")))
    except ValueError:
        said = str(data.get("date"))[:40]
        raise ValueError(f"the digest's date {said!r} is not YYYY-MM-DD") from None
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    apps = data.get("apps")
    if not isinstance(apps, list) or not all(isinstance(app, dict) for app in apps):
        raise ValueError("the digest's apps are not a list of objects")
    rows = tuple(Row(str(app.get("app_id") or ""), _digest_cells(app)) for app in apps)
    if not rows:  # every bot needs a row to lay out; an empty day still gets its message
        rows = (Row(DASH, ("no apps to report",)),)
    total = _digest_total(apps)
    title = DIGEST_TITLE + (LATE if data.get("late") is True else "")
    return Summary(title, window_text(Window(start, end), zone_name), rows, total)


def _digest_cells(app: Mapping[str, Any]) -> tuple[str, ...]:
    remaining = _count(app.get("remaining"))
    return (
        f"requests {_count(app.get('request_count'))}",
        f"success rate {percent(_float(app.get('success_rate')))}",
        f"billed parts {_count(app.get('fee_count'))}",
        f"receipts {_count(app.get('callback_count'))}",
        f"delivery rate {percent(_float(app.get('delivery_rate')))}",
        f"balance left {remaining}",
        f"alerts fired {_count(app.get('alerts_fired'))}",
        *_month_cells(app),
    )


def _month_cells(app: Mapping[str, Any]) -> tuple[str, ...]:
    """The month so far (with its cost when a price is set), the forecast and the budget; none
    of it for a digest from before these fields (or an app whose month is unknown)."""
    to_date = _int(app.get("month_to_date_fee_count"))
    if to_date is None:
        return ()
    cost = _float(app.get("month_to_date_cost"))
    currency = str(app.get("currency") or "")[:3]
    cells = [
        f"month so far {number(to_date)}"
        + (f" ({currency} {cost:,.2f})" if cost is not None and currency else "")
    ]
    forecast = _int(app.get("month_forecast_fee_count"))
    if forecast is not None:
        cells.append(f"month forecast {number(forecast)}")
    budget = _int(app.get("monthly_budget_fee_count"))
    if budget is not None:
        cells.append(f"budget {number(budget)}")
    return tuple(cells)


def _digest_total(apps: Sequence[Mapping[str, Any]]) -> Row:
    """Rates of the sums, not sums of rates; a balance only as far as it is known."""

    def total(name: str) -> int:
        return sum(_int(app.get(name)) or 0 for app in apps)

    requests, callbacks = total("request_count"), total("callback_count")
    balances = [b for b in (_int(app.get("remaining")) for app in apps) if b is not None]
    balance = number(sum(balances)) if balances else DASH
    if balances and len(balances) < len(apps):
        balance += f" ({len(balances)} of {len(apps)} apps known)"
    cells = (
        f"requests {number(requests)}",
        "success rate " + percent(total("request_success_count") / requests if requests else None),
        f"billed parts {number(total('fee_count'))}",
        f"receipts {number(callbacks)}",
        "delivery rate "
        + percent(total("callback_success_count") / callbacks if callbacks else None),
        f"balance left {balance}",
        f"alerts fired {number(total('alerts_fired'))}",
    )
    return Row("", cells)


def metric_name(metric: str) -> str:
    """The metric as an operator says it; an unknown one by its own name, in plain words
    (the row's figures are not escaped, so nothing of it may read as markup)."""
    for names in (RATES, COUNTS, DAYS, RATIOS):
        if metric in names:
            return names[metric]
    return _NOT_A_WORD.sub(" ", metric.lower()).strip()[:40] or "value"


def figure(metric: str, value: Any) -> str:
    """A value or threshold of `metric`: rates as percentages, days to a tenth, the rest as
    counts; a dash when there is none (no traffic, no receipt)."""
    if metric in RATES:
        return percent(_float(value))
    number_ = _float(value)
    if number_ is None:
        return DASH
    if metric in DAYS:
        return f"{number_:.1f} days"
    if metric in RATIOS:
        return f"{number_:.2f}x" if number_ < 10 else f"{number_:.0f}x"
    return _count(number_)


def duration(delta: timedelta) -> str:
    """`2 h`, `3 d 4 h`, `40 min`: how long an alert lasted, at the grain it is judged."""
    minutes = max(0, round(delta.total_seconds() / 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, hours = divmod(hours, 24)
    return f"{days} d" + (f" {hours} h" if hours else "")


def _moment(data: Mapping[str, Any], name: str, tz: tzinfo) -> datetime:
    text = str(data.get(name))
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"the notice's {name} {text[:40]!r} is not an ISO-8601 time") from None
    if moment.tzinfo is None:
        raise ValueError(f"the notice's {name} {text[:40]!r} has no offset")
    return moment.astimezone(tz)


def _float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    number_ = _float(value)
    return None if number_ is None else round(number_)


def _count(value: Any) -> str:
    """Whole numbers with thousands separators; a fractional threshold keeps two decimals."""
    number_ = _float(value)
    if number_ is None:
        return DASH
    if number_.is_integer():
        return number(int(number_))
    return f"{number_:,.2f}"
