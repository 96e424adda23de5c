"""A dry run: the rules judged hour by hour over a range of the store, notifying no one.

An operator tunes thresholds against history before turning them on: what would have fired,
when, for how long. The replay starts from an empty state, feeds the 7 days before the range
as usage (for the runway), then judges each stored hour in order, exactly as the timer would
have (the same engine), and returns the notices it would have sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timedelta

from sms_stats.alerts.engine import judge, note_usage
from sms_stats.alerts.metrics import HOURS_OF_USAGE
from sms_stats.alerts.state import State
from sms_stats.core.notices import Notice
from sms_stats.core.records import KINDS, AnyRecord, day_folder, from_dict
from sms_stats.core.rules import Rule
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
    note_usage(state, [r for r in ordered if _moment(r) < start])
    notices: list[Notice] = []
    hour: list[AnyRecord] = []
    for record in (r for r in ordered if _moment(r) >= start):
        if hour and _moment(record) != _moment(hour[0]):
            notices += judge(rules, hour, state, zone_name)
            hour = []
        hour.append(record)
    if hour:
        notices += judge(rules, hour, state, zone_name)
    return notices


def _moment(record: AnyRecord) -> datetime:
    return record.window.start


USAGE_DAYS = HOURS_OF_USAGE // 24
