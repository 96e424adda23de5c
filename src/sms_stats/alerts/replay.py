"""A dry run: the rules judged hour by hour over a range of the store, notifying no one.

An operator tunes thresholds against history before turning them on: what would have fired,
when, for how long. The replay starts from an empty state, feeds the 4 weeks before the range
as history (the runway's usage, and the hours a surge is judged against), then judges each
stored hour in order, exactly as the timer would have (the same engine), and returns the
notices it would have sent. The month's figures (month to date, forecast, budget) are not
replayed: they are the API's, as of each run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sms_stats.alerts.engine import judge, note_usage
from sms_stats.alerts.state import State
from sms_stats.core.notices import Notice
from sms_stats.core.records import KINDS, AnyRecord, Record, day_folder, from_dict
from sms_stats.core.rules import Rule
from sms_stats.money.forecast import WEEKS
from sms_stats.money.update import Money
from sms_stats.store.base import SinkError, Store


def read_days(
    store: Store, app_ids: Sequence[str], first: date, last: date, deadline: float | None = None
) -> tuple[list[AnyRecord], list[str]]:
    """Every hour record (and balance) of the apps on the local days first..last; and the keys
    that could not be read as records (named, skipped)."""
    records: list[AnyRecord] = []
    bad: list[str] = []
    day = first
    while day <= last:
        for app_id in app_ids:
            for kind in KINDS:
                for key in store.keys(day_folder(kind, app_id, day), deadline):
                    try:
                        data = store.get(key, deadline)
                        if data is not None:
                            records.append(from_dict(json.loads(data)))
                    except (ValueError, SinkError):
                        bad.append(key)
        day += timedelta(days=1)
    return records, bad


def replay(
    rules: Sequence[Rule],
    records: Sequence[AnyRecord],
    start: datetime,
    zone_name: str,
) -> list[Notice]:
    """The notices the rules would have sent for the hours at or after `start`; the records
    before it only feed the usage history."""
    state = State()
    ordered = sorted(records, key=_moment)
    before = [r for r in ordered if _moment(r) < start]
    note_usage(state, before)
    hours: dict[str, dict[str, tuple[int, int]]] = {}  # app -> label -> (requests, fee)
    _remember(hours, before)
    notices: list[Notice] = []
    hour: list[AnyRecord] = []

    def judged(batch: list[AnyRecord]) -> list[Notice]:
        money = {app: Money(None, held) for app, held in hours.items()}
        found = judge(rules, batch, state, zone_name, money)
        _remember(hours, batch)
        return found

    for record in (r for r in ordered if _moment(r) >= start):
        if hour and _moment(record) != _moment(hour[0]):
            notices += judged(hour)
            hour = []
        hour.append(record)
    if hour:
        notices += judged(hour)
    return notices


def _remember(hours: dict[str, dict[str, tuple[int, int]]], records: Sequence[AnyRecord]) -> None:
    for record in records:
        if isinstance(record, Record) and record.window.grain == "hour":
            counts = record.counts
            held = hours.setdefault(record.sms_sdk_app_id, {})
            held[record.window.begin_time] = (counts.request_count, counts.fee_count)


def _moment(record: AnyRecord) -> datetime:
    return record.window.start


HISTORY_DAYS = WEEKS * 7  # read before the range: the surge rule's weeks (and the usage)
