"""One app's month in a run: its billed parts from the local month's first hour through the
run's newest full hour, exactly, and where the month will end at this pace.

Exact: the checkpoint's figure plus the hours the history holds after it, when it holds every
one; otherwise one SendStatusStatistics range call from the month's first hour (at most 31
days, within the API's range), which becomes the new checkpoint. A steady deployment asks once
a month per app (and again after an hour it missed).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sms_stats.core.windows import Window, format_hour
from sms_stats.money.forecast import FEE, moment, month_forecast
from sms_stats.money.history import Checkpoint, History
from sms_stats.money.summary import AppMonth

if TYPE_CHECKING:
    from sms_stats.collect.client import StatsClient


def bounds(through: datetime) -> tuple[datetime, datetime]:
    """(the local month's first hour, its last hour) of the month `through` falls in."""
    first = through.replace(day=1, hour=0)
    following = (first + timedelta(days=32)).replace(day=1)
    return first, following - timedelta(hours=1)


def _from_history(history: History, month: str, through: str) -> int | None:
    mark = history.checkpoint
    if mark is None or mark.month != month or mark.through > through:
        return None
    total, hour = mark.fee, moment(mark.through) + timedelta(hours=1)
    while hour <= moment(through):
        held = history.hours.get(format_hour(hour))
        if held is None:
            return None
        total += held[FEE]
        hour += timedelta(hours=1)
    return total


def of_app(
    history: History,
    through: datetime,
    client: StatsClient,
    budget: int | None,
    deadline: float | None,
) -> AppMonth:
    """The app's month through the full hour starting at `through` (aware, the store's zone).
    UpstreamError when the range call is needed and fails (the caller judges without it)."""
    first, last = bounds(through)
    month, label = first.strftime("%Y-%m"), format_hour(through)
    to_date = _from_history(history, month, label)
    if to_date is None:
        window = Window.through(first, through)
        to_date = client.fetch(history.app_id, window, deadline).fee_count
    if history.checkpoint != Checkpoint(month, label, to_date):
        history.checkpoint = Checkpoint(month, label, to_date)
        history.changed = True
    forecast = month_forecast(history.hours, label, to_date, format_hour(last))
    return AppMonth(history.app_id, month, label, to_date, forecast, budget)
