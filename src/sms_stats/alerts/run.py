"""After a scheduled run: judge the rules on its records, make the digest when it is due, and
deliver every notice owed (this run's and any an earlier run left), through the alert state.

Called by the handler with the run's records; it reads the store, never the pipeline's insides.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

from sms_stats.alerts.engine import judge, note_usage, reconcile
from sms_stats.alerts.state import Pending, State, load, owed_now, save
from sms_stats.collect.client import StatsClient
from sms_stats.core.errors import UpstreamError
from sms_stats.core.log import logger
from sms_stats.core.notices import Notice
from sms_stats.core.records import AnyRecord, Record
from sms_stats.core.rules import rules_in_force
from sms_stats.core.settings import Settings
from sms_stats.core.windows import zone
from sms_stats.deliver.notify import notify_all, topics_of
from sms_stats.deliver.sinks import Delivery, Sink
from sms_stats.money.update import Money, update
from sms_stats.store.base import SinkError, Store, find_store

RECENT = timedelta(hours=3)  # a timer's newest hour ended at most an hour before its `Time`
CORRECTION_ROUNDS = 2
"""A write after sending can find that another run dropped what this one just sent as never
sent: the correction is sent at once (and the write after it may find the same again)."""


def state_store(sinks: Sequence[Sink]) -> Store:
    """The first store sink; without one, a directory in /tmp (kept per container only)."""
    store = find_store(sinks)
    if store is not None:
        return store
    from sms_stats.store.file import FileSink  # noqa: PLC0415

    local = Path(tempfile.gettempdir()) / "sms-stats"
    return FileSink(local, name=f"file:{local}")


def after_run(
    records: Sequence[AnyRecord],
    settings: Settings,
    sinks: Sequence[Sink],
    client: StatsClient,
    *,
    now: datetime,
    app_ids: Sequence[str],
    kinds: Sequence[str],
    deadline: float | None,
    with_digest: bool,
) -> list[Delivery]:
    rules = rules_in_force(settings.alerts, settings.budgets)
    store = state_store(sinks)
    try:
        state = load(store, deadline)
    except SinkError as exc:
        logger.warning("alerts.state_unavailable", store=store.name, error=str(exc))
        return []
    # Only hours that ended lately are judged: a direct invocation fetching last month (a
    # backfill by hand) must not fire alerts for it; its billed parts still count as usage.
    recent = [r for r in records if r.window.end >= now - RECENT]
    note_usage(state, [r for r in records if r.window.end < now - RECENT])
    money = _money(records, recent, settings, store, client, now, deadline)
    notices = judge(rules, recent, state, settings.timezone, money) if rules else []
    if not rules:
        note_usage(state, recent)
    if with_digest:
        notices += _digest(state, settings, client, now, app_ids, kinds, deadline, money)
    for notice in notices:
        _owe(state, notice, sinks)
    corrections: list[str] = []

    def settle(merged: State) -> None:
        """Another run may have written since: receivers are brought to the merged state."""
        for correction in reconcile(merged, rules, settings.timezone):
            _owe(merged, correction, sinks)
            corrections.append(correction.id)

    state = _save(state, store, deadline, settle)  # before any is sent: a stop loses nothing
    deliveries: list[Delivery] = []
    only: set[str] | None = None  # the first round sends everything owed; later, corrections
    for _ in range(1 + CORRECTION_ROUNDS):
        done = _deliver(state, store, sinks, deadline, only)
        deliveries += done
        if not done:
            break
        corrections.clear()
        state = _save(state, store, deadline, settle)  # sent, or still owed: same ids again
        if not corrections:
            break
        only = set(corrections)
    return deliveries


def _money(
    records: Sequence[AnyRecord],
    recent: Sequence[AnyRecord],
    settings: Settings,
    store: Store,
    client: StatsClient,
    now: datetime,
    deadline: float | None,
) -> dict[str, Money]:
    """Each app's hour history takes the run's send hours; the apps with a recent hour get
    their month worked out through it (and the summary `/metrics` and the dashboard read)."""
    newest = {
        record.sms_sdk_app_id: record.window.start
        for record in sorted(recent, key=lambda r: r.window.start)
        if isinstance(record, Record) and record.window.grain == "hour"
    }
    return update(records, newest, settings, store, client, now, deadline)


def _owe(state: State, notice: Notice, sinks: Sequence[Sink]) -> None:
    owed = [sink.name for sink in sinks if notice.topic in topics_of(sink)]
    logger.info(
        "alert.notice",
        id=notice.id,
        type=notice.type,
        app_id=notice.app_id or None,
        sinks=len(owed),
    )
    state.owe(notice, owed)


def _save(
    state: State, store: Store, deadline: float | None, settle: Callable[[State], None]
) -> State:
    """The merged state once written; `state` itself when the store cannot take it (what is
    owed is still sent, and written by a later run)."""
    try:
        return save(state, store, deadline, settle)
    except SinkError as exc:
        logger.warning("alerts.state_unavailable", store=store.name, error=str(exc))
        return state


def _digest(
    state: State,
    settings: Settings,
    client: StatsClient,
    now: datetime,
    app_ids: Sequence[str],
    kinds: Sequence[str],
    deadline: float | None,
    money: dict[str, Money],
) -> list[Notice]:
    """Every digest due and not made yet, oldest first; the first that cannot be made stops
    the rest (a later run makes them, in order, so `state.digest` says how far it got)."""
    if not app_ids:
        return []
    notices: list[Notice] = []
    yesterday = now.astimezone(zone(settings.timezone)).date() - timedelta(days=1)
    if state.digest == yesterday.isoformat():
        return []  # made already: nothing is due before tomorrow (23 runs of 24)
    from sms_stats.alerts import digest  # noqa: PLC0415 - loaded when one may be due

    for day in digest.due(state, now, settings.timezone, settings.digest_hour):
        try:
            notice = digest.make(day, app_ids, kinds, client, state, settings, now, deadline, money)
        except UpstreamError as exc:
            logger.warning(
                "digest.not_made",
                date=day.local_date.isoformat(),
                code=exc.code,
                message=exc.message,
            )
            break
        state.digest = day.local_date.isoformat()
        notices.append(notice)
    return notices


def _deliver(
    state: State,
    store: Store,
    sinks: Sequence[Sink],
    deadline: float | None,
    only: set[str] | None,
) -> list[Delivery]:
    """Every pending notice (of `only`, when given) to the sinks it is owed to; what arrives is
    struck. What this run wrote but the store no longer owes (another run sent it, or dropped
    it as a judgement that lost) is not sent: the store is read again first."""
    if not any(only is None or item.notice.id in only for item in state.pending):
        return []
    still = owed_now(store, deadline)
    by_name = {sink.name: sink for sink in sinks}
    outcomes: list[Delivery] = []
    left: list[Pending] = []
    for item in state.pending:
        nid = item.notice.id
        if only is not None and nid not in only:
            left.append(item)
            continue
        if still is not None and nid in state.seen and nid not in still:
            left.append(item)  # the next write drops it
            continue
        gone = [name for name in item.owed if name not in by_name]
        if gone:
            logger.warning("alerts.sink_gone", id=nid, sinks=gone)
        targets = [by_name[name] for name in item.owed if name in by_name]
        done = notify_all([item.notice], targets, deadline)
        outcomes += done
        delivered = {d.sink for d in done if d.ok}
        if delivered:
            item.out = True
            state.out.add(nid)
        item.owed = [name for name in item.owed if name in by_name and name not in delivered]
        if item.owed:
            left.append(item)
        else:
            state.sent.append(nid)
    state.pending = left
    return outcomes
