"""The figures a rule reads, from one app's records of one hour (or its newest balance).

A figure is `Judged(value, volume)`, or None when the hour gives the rule nothing to judge:
no record of that kind, fewer messages than the rule's `min_volume`, a rate with nothing to
divide, a runway before a day of usage is known. Not judged is not healthy: a firing alert
stays as it is until an hour is judged again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from sms_stats.core.records import AnyRecord, BalanceRecord, CallbackRecord, Record
from sms_stats.core.rules import METRICS, Rule
from sms_stats.money.forecast import volume_ratio

if TYPE_CHECKING:
    from sms_stats.money.update import Money

HOURS_OF_USAGE = 24 * 7  # package_runway_days: remaining / average daily fee over 7 days
MIN_USAGE_HOURS = 24  # fewer hours of usage known: the runway is not judged yet


class Judged(NamedTuple):
    """What a rule's metric came to for one app and hour; `volume` (the messages behind a share)
    lets a rule ignore an hour too small to judge."""

    value: float | None  # None: unbounded (a runway with no usage at all)
    volume: int | None


_SHARES = {
    "black_list_share": "black_list_count",
    "frequency_limit_share": "frequency_limit_count",
    "invalid_number_share": "invalid_number_count",
    "shutdown_error_share": "shutdown_error_count",
    "internal_error_share": "internal_error_count",
}


def figure(
    rule: Rule,
    record: AnyRecord,
    usage: dict[str, int] | None = None,
    money: Money | None = None,
) -> Judged | None:
    """The rule's figure in `record` (of the rule's source), or None when not judged.
    `usage`: fee_count by hour label over the last 7 days (the runway, unused packages);
    `money`: the app's month and hour history (money and surge metrics)."""
    metric = rule.metric
    found = _value(metric, record, usage or {}, money)
    if found is None:
        return None
    volume_name = METRICS[metric].volume
    volume = None if volume_name is None else int(record.to_dict()[volume_name])
    if volume is not None and volume < rule.min_volume:
        return None  # a quiet hour: 3 messages, 1 failed, is not an incident
    return found


def _value(
    metric: str, record: AnyRecord, usage: dict[str, int], money: Money | None
) -> Judged | None:
    if isinstance(record, Record) and metric in _MONEY:
        return _money(metric, record, money)
    if isinstance(record, Record):
        counts = record.counts
        values: dict[str, float | None] = {
            "success_rate": record.success_rate,
            "request_count": counts.request_count,
            "fee_count": counts.fee_count,
        }
        return _judged(values.get(metric), counts.request_count)
    if isinstance(record, CallbackRecord):
        receipts = record.receipts
        total = receipts.callback_count
        if metric == "delivery_rate":
            return _judged(record.delivery_rate, total)
        count = getattr(receipts, _SHARES[metric])
        return _judged(None if total == 0 else count / total, total)
    assert isinstance(record, BalanceRecord)
    return _balance(metric, record, usage)


_MONEY = frozenset(
    {"volume_ratio", "month_to_date_fee_count", "month_forecast_fee_count", "budget_forecast_ratio"}
)


def _money(metric: str, record: Record, money: Money | None) -> Judged | None:
    """Not judged without the app's money (a store that did not answer, a month the API
    could not give), nor without a budget for the budget's ratio."""
    if money is None:
        return None
    requests = record.counts.request_count
    if metric == "volume_ratio":
        return _judged(volume_ratio(money.hours, record.window.begin_time, requests), requests)
    worked = money.month
    if worked is None:
        return None
    if metric == "month_to_date_fee_count":
        return Judged(float(worked.to_date), None)
    if metric == "month_forecast_fee_count":
        return Judged(float(worked.forecast), None)
    return _judged(worked.budget_ratio, requests)


def _judged(value: Any, volume: int) -> Judged | None:
    return None if value is None else Judged(float(value), volume)


def _balance(metric: str, record: BalanceRecord, usage: dict[str, int]) -> Judged | None:
    if metric == "package_remaining":
        return Judged(float(record.remaining), None)
    if metric == "package_expiry_days":
        expiry = record.next_expiry
        if expiry is None:
            return None  # nothing left to expire
        return Judged(round((expiry[0] - record.as_of).total_seconds() / 86400, 2), None)
    daily = daily_usage(usage)
    if daily is None:
        return None
    if metric == "package_unused_at_expiry":
        return _unused(record, daily)
    return Judged(None if daily == 0 else round(record.remaining / daily, 2), None)


def _unused(record: BalanceRecord, daily: float) -> Judged | None:
    """Messages the soonest-expiring packages will still hold when they expire, at the pace of
    the last 7 days, all of it taken from them (the kindest order: if even then messages are
    left, they are lost whatever order the platform uses)."""
    expiry = record.next_expiry
    if expiry is None:
        return Judged(0.0, None)  # nothing left to expire unused
    when, holding = expiry
    days = max(0.0, (when - record.as_of).total_seconds() / 86400)
    return Judged(float(max(0, round(holding - daily * days))), None)


def daily_usage(usage: dict[str, int]) -> float | None:
    """Average billed parts a day over the hours known (at most the last 7 days); None with
    less than a day known (a new deployment: no runway judged yet)."""
    if len(usage) < MIN_USAGE_HOURS:
        return None
    return sum(usage.values()) * 24 / len(usage)
