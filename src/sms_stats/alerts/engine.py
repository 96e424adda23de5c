"""Judging: each rule on each app's newest hour, against the state; out come the transitions.

Alertmanager's shape, hour by hour: an alert fires once when its rule has been broken for
`for_hours` judged hours in a row, repeats every `repeat_hours` while it fires, and resolves
once at the first judged hour that keeps the rule. An hour not judged (too few messages, no
record of that kind, an hour older than the one last judged) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..notices import Notice
from ..records import AnyRecord, BalanceRecord, Record
from ..windows import Window, isoformat
from .metrics import HOURS_OF_USAGE, Judged, figure
from .rules import Rule
from .state import FIRED_DAYS, Alert, State


def newest(records: Iterable[AnyRecord]) -> dict[tuple[str, str], AnyRecord]:
    """Each (app, kind)'s record of the newest hour among `records` (whole hours only: a day
    or a range fetched by hand is not an hour to judge)."""
    found: dict[tuple[str, str], AnyRecord] = {}
    for record in records:
        if record.kind != "packages" and record.window.grain != "hour":
            continue
        key = (record.sms_sdk_app_id, record.kind)
        held = found.get(key)
        if held is None or _start(record) > _start(held):
            found[key] = record
    return found


def _start(record: AnyRecord) -> datetime:
    return record.as_of if isinstance(record, BalanceRecord) else record.window.start


def note_usage(state: State, records: Iterable[AnyRecord]) -> None:
    """Billed parts per hour (the runway's history) and each app's newest balance, kept for
    7 days; a re-fetched hour replaces its figure, it is never counted twice."""
    for record in records:
        if isinstance(record, Record) and record.window.grain == "hour":
            hours = state.usage.setdefault(record.sms_sdk_app_id, {})
            hours[record.window.label] = record.counts.fee_count
        elif isinstance(record, BalanceRecord):
            state.balance[record.sms_sdk_app_id] = record.remaining
    for app, hours in state.usage.items():
        if len(hours) > HOURS_OF_USAGE:
            state.usage[app] = dict(sorted(hours.items())[-HOURS_OF_USAGE:])


def judge(
    rules: Sequence[Rule], records: Iterable[AnyRecord], state: State, zone_name: str
) -> list[Notice]:
    """Update `state` with the newest hour of each app for each rule; the notices to send."""
    records = list(records)
    note_usage(state, records)
    notices: list[Notice] = []
    for (app_id, kind), record in sorted(newest(records).items()):
        for rule in rules:
            if rule.source != kind or not rule.applies_to(app_id):
                continue
            usage = state.usage.get(app_id, {})
            notice = _step(rule, record, figure(rule, record, usage), state, zone_name)
            if notice is not None:
                notices.append(notice)
    return notices


def _hour(record: AnyRecord) -> Window:
    return record.window  # a balance's window is the hour of its snapshot


def _step(
    rule: Rule, record: AnyRecord, judged: Judged | None, state: State, zone_name: str
) -> Notice | None:
    window = _hour(record)
    key = f"{rule.ident}:{record.sms_sdk_app_id}"
    hour = isoformat(window.start)
    alert = state.alerts.get(key)
    if alert is not None and _instant(alert.hour) >= window.start:
        return None  # judged already (a retry) or newer (an older run finishing late)
    if alert is None:
        alert = Alert(rule.name, rule.metric, record.sms_sdk_app_id, hour)
    alert.rule, alert.hour = rule.name, hour
    state.alerts[key] = alert
    if judged is None:
        return None
    alert.value = judged.value
    bad = rule.is_bad(judged.value)
    if bad:
        alert.streak += 1
        if alert.streak == 1:
            alert.since = hour
        if not alert.firing and alert.streak >= rule.for_hours:
            alert.firing, alert.notified = True, hour
            state.fired.append(
                {
                    "alert": rule.name,
                    "app_id": alert.app_id,
                    "since": alert.since or hour,
                    "date": window.start.date().isoformat(),
                }
            )
            _prune_fired(state, window.start)
            return _notice(rule, alert, window, judged, "firing", "firing", zone_name)
        if alert.firing and rule.repeat_hours and alert.notified is not None:
            due = _instant(alert.notified) + timedelta(hours=rule.repeat_hours)
            if window.start >= due:
                alert.notified = hour
                return _notice(
                    rule, alert, window, judged, "firing", f"repeat_{window.begin_time}", zone_name
                )
        return None
    was_firing, since = alert.firing, alert.since
    alert.streak, alert.firing, alert.notified = 0, False, None
    alert.since = None
    if not was_firing:
        return None
    alert.since = since  # kept for the notice, then cleared
    notice = _notice(rule, alert, window, judged, "resolved", "resolved", zone_name)
    alert.since = None
    return notice


def _notice(
    rule: Rule,
    alert: Alert,
    window: Window,
    judged: Judged,
    state: str,
    suffix: str,
    zone_name: str,
) -> Notice:
    since = alert.since or isoformat(window.start)
    since_label = since[:13].replace("-", "").replace("T", "")
    data: dict[str, Any] = {
        "alert": rule.name,
        "metric": rule.metric,
        "app_id": alert.app_id,
        "value": judged.value,
        "threshold": rule.threshold,
        "condition": rule.condition,
        "window_start": isoformat(window.start),
        "window_end": isoformat(window.end),
        "since": since,
    }
    return Notice(
        id=f"alert_{rule.ident}_{alert.app_id}_{since_label}_{suffix}",
        type="alert.firing" if state == "firing" else "alert.resolved",
        timestamp=window.end,
        data=data,
        timezone=zone_name,
    )


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _prune_fired(state: State, now: datetime) -> None:
    oldest = (now - timedelta(days=FIRED_DAYS)).date().isoformat()
    state.fired = [item for item in state.fired if item.get("date", "") >= oldest]
