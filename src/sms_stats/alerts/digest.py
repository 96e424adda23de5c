"""The daily digest: yesterday per app, once a day, at the first timer run at or after
`SMS_STATS_DIGEST_HOUR` (local). A day whose digest no run made (every run failed, or none ran,
from the digest hour to midnight) is made late by the next run, once, oldest first, for up to
`BACKLOG_DAYS` days back, and says so (`late`): late rather than never.

Day totals come from one whole-day call per app and kind, not from adding up stored hours: an
hour missing from the store (a failed run, a gap before the deployment) must not skew them.
The balance is the newest one the alert state knows; the alerts are those that fired that day.

Money: the month to date through the digest's day is one more call per app (a range from the
month's first hour to the day's end; the day itself on the 1st), exact like the day totals; the
forecast is the run's own (`money.update`), the budget and price the settings'.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sms_stats.alerts.state import State
from sms_stats.collect.apis import api
from sms_stats.collect.client import StatsClient
from sms_stats.core.notices import Notice
from sms_stats.core.records import CallbackRecord, Record
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window, last_full, zone
from sms_stats.money.summary import cost

if TYPE_CHECKING:
    from sms_stats.money.update import Money

BACKLOG_DAYS = 7  # the oldest digest still sent late: a week back (fired alerts are kept 8)


def due(state: State, now: datetime, zone_name: str, hour: int) -> list[Window]:
    """The whole local days whose digest is due at `now` and not made yet, oldest first: every
    day after the last one made, up to yesterday once `hour` has come (else the day before),
    at most `BACKLOG_DAYS`. With no digest ever made, only yesterday's, from `hour` on: a
    new deployment starts with one digest, not a week of them."""
    tz = zone(zone_name)
    days = last_full(now, tz, by="day", count=BACKLOG_DAYS + 1)
    if now.astimezone(tz).hour < hour:
        days = days[:-1]  # yesterday's is due at `hour` today
    elif not _made(state.digest):
        return days[-1:]
    last = _made(state.digest)
    if last is None:
        return []
    return [day for day in days if day.local_date.isoformat() > last][-BACKLOG_DAYS:]


def late(day: Window, now: datetime) -> bool:
    """Made after the day following `day` (its digest was due on that day)."""
    return now.astimezone(day.tz).date() > day.local_date + timedelta(days=1)


def _made(text: str) -> str | None:
    """The date (YYYY-MM-DD) of the last digest made; None when none was (or it is not one)."""
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        return None


def make(
    day: Window,
    app_ids: Sequence[str],
    kinds: Sequence[str],
    client: StatsClient,
    state: State,
    settings: Settings,
    now: datetime,
    deadline: float | None,
    money: Mapping[str, Money] | None = None,
) -> Notice:
    """The digest of `day`; UpstreamError when a day total cannot be had (the digest is then
    made by a later run, whole, rather than now with holes). `late`: made after the day it was
    due (the contract's fields are the same; chat messages say it)."""
    zone_name = settings.timezone
    label = day.local_date.isoformat()
    apps: list[dict[str, Any]] = []
    for app_id in app_ids:
        sends = callbacks = None
        if "send" in kinds:
            sends = api("send").fetch(client, app_id, day, zone_name, now, deadline)
        if "callback" in kinds:
            callbacks = api("callback").fetch(client, app_id, day, zone_name, now, deadline)
        entry = _app(app_id, sends, callbacks, state, label)
        worked = (money or {}).get(app_id)
        entry.update(_month(app_id, day, sends, client, settings, worked, deadline))
        apps.append(entry)
    return Notice(
        id=f"digest_{label}",
        type="digest.daily",
        timestamp=day.end,
        data={"date": label, "apps": apps, "late": late(day, now)},
        timezone=zone_name,
    )


def _month(
    app_id: str,
    day: Window,
    sends: Any,
    client: StatsClient,
    settings: Settings,
    money: Money | None,
    deadline: float | None,
) -> dict[str, Any]:
    """The digest's money fields of one app: month to date through the day (None without
    sends), the run's forecast for the month, the budget, and with a price the cost."""
    to_date: int | None = None
    if isinstance(sends, Record):
        first = day.start.replace(day=1)
        if first == day.start:
            to_date = sends.counts.fee_count  # the 1st: the month so far is the day
        else:
            to_date = client.fetch(app_id, Window(first, day.end), deadline).fee_count
    worked = money.month if money is not None else None
    same_month = worked is not None and worked.month == day.start.strftime("%Y-%m")
    fields: dict[str, Any] = {
        "month_to_date_fee_count": to_date,
        "month_forecast_fee_count": worked.forecast if worked is not None and same_month else None,
        "monthly_budget_fee_count": settings.budget_of(app_id),
    }
    price = settings.price()
    if price is not None:
        fields["month_to_date_cost"] = None if to_date is None else float(cost(to_date, price))
        fields["currency"] = settings.currency
    return fields


def _app(app_id: str, sends: Any, callbacks: Any, state: State, day: str) -> dict[str, Any]:
    assert sends is None or isinstance(sends, Record)
    assert callbacks is None or isinstance(callbacks, CallbackRecord)
    fired = [f for f in state.fired if f.get("app_id") == app_id and f.get("date") == day]
    return {
        "app_id": app_id,
        "request_count": sends.counts.request_count if sends else None,
        "request_success_count": sends.counts.request_success_count if sends else None,
        "fee_count": sends.counts.fee_count if sends else None,
        "success_rate": sends.success_rate if sends else None,
        "callback_count": callbacks.receipts.callback_count if callbacks else None,
        "callback_success_count": callbacks.receipts.callback_success_count if callbacks else None,
        "delivery_rate": callbacks.delivery_rate if callbacks else None,
        "remaining": state.balance.get(app_id),
        "alerts_fired": len(fired),
    }
