"""Judging: each rule on each app's newest hour, against the state; out come the transitions.

Alertmanager's shape, hour by hour: an alert fires once when its rule has been broken for
`for_hours` judged hours in a row, repeats every `repeat_hours` while it fires, and resolves
once at the first judged hour that keeps the rule. An hour not judged (too few messages, no
record of that kind, an hour older than the one last judged) changes nothing.

`reconcile` runs at each write of the state, after the merge with what another run wrote: it
brings what receivers were told of each alert to the judgement that won.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sms_stats.alerts.metrics import HOURS_OF_USAGE, Judged, figure
from sms_stats.alerts.state import FIRED_DAYS, Alert, State, Told, latest
from sms_stats.core.notices import Notice
from sms_stats.core.records import AnyRecord, BalanceRecord, Record
from sms_stats.core.rules import Rule
from sms_stats.core.windows import Window, isoformat, last_full, zone

if TYPE_CHECKING:
    from sms_stats.money.update import Money


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
    rules: Sequence[Rule],
    records: Iterable[AnyRecord],
    state: State,
    zone_name: str,
    money: Mapping[str, Money] | None = None,
) -> list[Notice]:
    """Update `state` with the newest hour of each app for each rule; the notices to send.
    `money`: each app's month and hour history, for the money and surge metrics."""
    records = list(records)
    note_usage(state, records)
    notices: list[Notice] = []
    for (app_id, kind), record in sorted(newest(records).items()):
        for rule in rules:
            if rule.source != kind or not rule.applies_to(app_id):
                continue
            usage = state.usage.get(app_id, {})
            judged = figure(rule, record, usage, (money or {}).get(app_id))
            notice = _step(rule, record, judged, state, zone_name)
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
    if judged is None:
        # Not judged changes nothing, not even the hour: an overlapping run's judgement of an
        # older hour must win the merge over an hour that judged nothing.
        return None
    if alert is None:
        alert = Alert(rule.name, rule.metric, record.sms_sdk_app_id, hour)
    alert.rule, alert.hour = rule.name, hour
    state.alerts[key] = alert
    notice = _transition(rule, alert, window, judged, state, key, zone_name)
    if notice is not None:
        state.told.setdefault(key, []).append(Told.of(notice))
    return notice


def _transition(
    rule: Rule,
    alert: Alert,
    window: Window,
    judged: Judged,
    state: State,
    key: str,
    zone_name: str,
) -> Notice | None:
    hour = alert.hour
    alert.value = judged.value
    bad = rule.is_bad(judged.value)
    if bad:
        alert.streak += 1
        if alert.streak == 1:
            alert.since = hour
        since = alert.since or hour
        if not alert.firing and alert.streak >= rule.for_hours:
            alert.firing, alert.notified = True, hour
            state.fired.append(
                {
                    "alert": rule.name,
                    "app_id": alert.app_id,
                    "since": since,
                    "date": window.start.date().isoformat(),
                }
            )
            _prune_fired(state, window.start)
            return _notice(rule, alert, window, "firing", "firing", since, zone_name)
        if alert.firing and rule.repeat_hours and alert.notified is not None:
            due = _instant(alert.notified) + timedelta(hours=rule.repeat_hours)
            if window.start >= due:
                alert.notified = hour
                # Unique: one hour each (repeat_hours >= 1), as zones with DST are refused.
                suffix = f"repeat_{window.begin_time}"
                return _notice(rule, alert, window, "firing", suffix, since, zone_name)
        return None
    was_firing, since = alert.firing, alert.since or hour
    alert.streak, alert.firing, alert.notified, alert.since = 0, False, None, None
    if not was_firing:
        return None
    suffix = "resolved"
    if _id(rule.ident, alert.app_id, since, suffix) in {t.id for t in state.told.get(key, [])}:
        # Told resolved once already (a run that lost the merge), then firing again to
        # correct it: this resolve needs an id of its own, or receivers drop it as a repeat.
        suffix = f"resolved_{window.begin_time}"
    return _notice(rule, alert, window, "resolved", suffix, since, zone_name)


def reconcile(state: State, rules: Sequence[Rule], zone_name: str) -> list[Notice]:
    """After a merge: for each alert whose receivers would be left showing other than its
    judgement (the newest transition told, sent or owed, says firing and it is not, or the
    reverse), drop that transition while it has reached no sink, else tell the judgement:
    a resolve of the episode they were told of, or the firing again (`repeat_<hour>`). The
    notices made, for the caller to owe to its sinks; `state.told` holds them already.

    An alert whose rule is no longer in force is only ever dropped from, never told again."""
    by_ident = {rule.ident: rule for rule in rules}
    pending = {item.notice.id: item for item in state.pending}
    made: list[Notice] = []
    for key, told in sorted(state.told.items()):
        alert = state.alerts.get(key)
        if alert is None:
            continue
        while (top := latest(told)) is not None and top.firing != alert.firing:
            owed = pending.get(top.id)
            if owed is not None and not owed.out and top.id not in state.out:
                told.remove(top)  # never went out: receivers were told nothing to undo
                state.pending.remove(owed)
                continue
            rule = by_ident.get(key.split(":", 1)[0])
            if rule is not None:
                notice = _correction(rule, alert, top, zone_name)
                told.append(Told.of(notice))
                made.append(notice)
            break
    return made


def _correction(rule: Rule, alert: Alert, told: Told, zone_name: str) -> Notice:
    """The notice that tells `alert`'s judgement to receivers last told `told`; its id names
    the hour judged, so two runs correcting the same judgement make the same notice."""
    tz = zone(zone_name)
    start = _instant(alert.hour).astimezone(tz)
    (window,) = last_full(start + timedelta(hours=1), tz)
    if alert.firing:
        alert.notified = alert.hour  # told now: repeats count from here
        since = alert.since or alert.hour
        suffix = f"repeat_{window.begin_time}"
        return _notice(rule, alert, window, "firing", suffix, since, zone_name)
    since = told.since or alert.hour
    suffix = f"resolved_{window.begin_time}"
    return _notice(rule, alert, window, "resolved", suffix, since, zone_name)


def _notice(
    rule: Rule,
    alert: Alert,
    window: Window,
    state: str,
    suffix: str,
    since: str,
    zone_name: str,
) -> Notice:
    data: dict[str, Any] = {
        "alert": rule.name,
        "metric": rule.metric,
        "app_id": alert.app_id,
        "value": alert.value,
        "threshold": rule.threshold,
        "condition": rule.condition,
        "window_start": isoformat(window.start),
        "window_end": isoformat(window.end),
        "since": since,
    }
    return Notice(
        id=_id(rule.ident, alert.app_id, since, suffix),
        type="alert.firing" if state == "firing" else "alert.resolved",
        timestamp=window.end,
        data=data,
        timezone=zone_name,
    )


def _id(ident: str, app_id: str, since: str, suffix: str) -> str:
    since_label = since[:13].replace("-", "").replace("T", "")
    return f"alert_{ident}_{app_id}_{since_label}_{suffix}"


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _prune_fired(state: State, now: datetime) -> None:
    oldest = (now - timedelta(days=FIRED_DAYS)).date().isoformat()
    state.fired = [item for item in state.fired if item.get("date", "") >= oldest]
