"""The money of every app in one object (`money/summary.json`), written by each timer run and
read by `/metrics` and the dashboard: one read a scrape or a page, whatever the number of apps.

Counts only: money is counts times `SMS_STATS_PRICE_PER_PART`, applied by the reader, so a
new price shows at once without a run.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sms_stats.core.log import logger
from sms_stats.core.records import MAX_COUNT
from sms_stats.core.windows import isoformat
from sms_stats.store.base import SinkError, Store

KEY = "money/summary.json"
CENT = Decimal("0.01")
SCHEMA = "sms-stats-money/v1"


class AppMonth(NamedTuple):
    """One app's month as a timer run worked it out: what the dashboard and /metrics show."""

    app_id: str
    month: str  # yyyy-mm
    through: str  # yyyymmddhh
    to_date: int  # billed parts from the month's first hour through `through`, exactly
    forecast: int  # billed parts at the month's end, at this pace
    budget: int | None

    @property
    def budget_ratio(self) -> float | None:
        return None if not self.budget else round(self.forecast / self.budget, 4)


def cost(parts: int, price: Decimal) -> Decimal:
    """`parts` at `price`, exactly, to the cent (half up): the one rounding of money, for the
    digest and the dashboard alike."""
    return (price * parts).quantize(CENT, rounding=ROUND_HALF_UP)


def _count(value: Any, name: str) -> int:
    if type(value) is not int or not 0 <= value <= MAX_COUNT:
        raise ValueError(f"{name}: not a count ({str(value)[:20]})")
    return value


def parse(data: bytes) -> dict[str, AppMonth]:
    """Each app's month in a summary's bytes; ValueError saying what is wrong (checked as
    strictly as a record: a count is a whole number from 0 to 2^63-1)."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise ValueError(f"{KEY} is not JSON") from None
    if not isinstance(body, dict) or body.get("schema") != SCHEMA:
        raise ValueError(f"{KEY} is not a money summary this version reads ({SCHEMA})")
    apps = body.get("apps")
    if not isinstance(apps, dict):
        raise ValueError(f"{KEY}: apps is not an object")
    found = {}
    for app_id, item in apps.items():
        if not isinstance(item, dict):
            raise ValueError(f"{KEY}: app {str(app_id)[:20]} is not an object")
        try:
            budget = item.get("monthly_budget_fee_count")
            found[str(app_id)] = AppMonth(
                str(app_id),
                str(item["month"])[:7],
                str(item["through"])[:10],
                _count(item["month_to_date_fee_count"], "month_to_date_fee_count"),
                _count(item["month_forecast_fee_count"], "month_forecast_fee_count"),
                None if budget is None else _count(budget, "monthly_budget_fee_count"),
            )
        except KeyError as exc:
            raise ValueError(f"{KEY}: app {str(app_id)[:20]} lacks {exc}") from None
        except ValueError as exc:
            raise ValueError(f"{KEY}: app {str(app_id)[:20]}: {exc}") from None
    return found


def read(store: Store, deadline: float | None) -> dict[str, AppMonth]:
    """Each app's month as the newest run left it; {} when none was written. SinkError when
    the store does not answer; an unreadable object is logged and read as none."""
    data = store.get(KEY, deadline)
    if data is None:
        return {}
    try:
        return parse(data)
    except ValueError as exc:
        logger.warning("money.summary_unreadable", key=KEY, error=str(exc)[:200])
        return {}


def write(
    store: Store, months: list[AppMonth], timezone: str, now: datetime, deadline: float | None
) -> None:
    """This run's apps over what the summary held (another run's apps stay; an app's older
    month or hour never replaces a newer one)."""
    if not months:
        return
    try:
        held = read(store, deadline)
    except SinkError:
        held = {}
    before = dict(held)
    for item in months:
        there = held.get(item.app_id)
        if there is None or (there.month, there.through) <= (item.month, item.through):
            held[item.app_id] = item
    if held == before:
        return  # a retry of the same hour: nothing new to write
    body = {
        "schema": SCHEMA,
        "timezone": timezone,
        "updated_at": isoformat(now),
        "apps": {
            app_id: {
                "month": m.month,
                "through": m.through,
                "month_to_date_fee_count": m.to_date,
                "month_forecast_fee_count": m.forecast,
                "monthly_budget_fee_count": m.budget,
            }
            for app_id, m in sorted(held.items())
        },
    }
    store.put(KEY, json.dumps(body, indent=1).encode() + b"\n", deadline)
