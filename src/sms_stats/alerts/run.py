"""After a scheduled run: judge the rules on its records, make the digest when it is due, and
deliver every notice owed (this run's and any an earlier run left), through the alert state.

Called by the handler with the run's records; it reads the store, never the pipeline's insides.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

from ..client import StatsClient
from ..errors import UpstreamError
from ..log import logger
from ..notices import Notice
from ..records import AnyRecord
from ..settings import Settings
from ..sinks import Delivery, Sink
from ..sinks.base import SinkError, Store, find_store
from ..sinks.notify import notify_all, topics_of
from . import digest
from .engine import judge, note_usage
from .rules import rules_in_force
from .state import Pending, State, load, save

RECENT = timedelta(hours=3)  # a timer's newest hour ended at most an hour before its `Time`


def state_store(sinks: Sequence[Sink]) -> Store:
    """The first store sink; without one, a directory in /tmp (kept per container only)."""
    store = find_store(sinks)
    if store is not None:
        return store
    from ..sinks.file import FileSink  # noqa: PLC0415

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
    rules = rules_in_force(settings.alerts)
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
    notices = judge(rules, recent, state, settings.timezone) if rules else []
    if not rules:
        note_usage(state, recent)
    if with_digest:
        notices += _digest(state, settings, client, now, app_ids, kinds, deadline)
    for notice in notices:
        owed = [sink.name for sink in sinks if notice.topic in topics_of(sink)]
        logger.info(
            "alert.notice",
            id=notice.id,
            type=notice.type,
            app_id=notice.app_id or None,
            sinks=len(owed),
        )
        if owed:
            state.pending.append(Pending(notice, owed))
    try:
        state = save(state, store, deadline)  # before any is sent: a stop now loses nothing
    except SinkError as exc:
        logger.warning("alerts.state_unavailable", store=store.name, error=str(exc))
    deliveries = _deliver(state, sinks, deadline)
    if deliveries:
        try:
            save(state, store, deadline)
        except SinkError as exc:  # sent, but still marked owed: sent again, same ids
            logger.warning("alerts.state_unavailable", store=store.name, error=str(exc))
    return deliveries


def _digest(
    state: State,
    settings: Settings,
    client: StatsClient,
    now: datetime,
    app_ids: Sequence[str],
    kinds: Sequence[str],
    deadline: float | None,
) -> list[Notice]:
    day = digest.due(state, now, settings.timezone, settings.digest_hour)
    if day is None or not app_ids:
        return []
    try:
        notice = digest.make(day, app_ids, kinds, client, state, settings.timezone, now, deadline)
    except UpstreamError as exc:
        logger.warning(
            "digest.not_made", date=day.local_date.isoformat(), code=exc.code, message=exc.message
        )
        return []
    state.digest = day.local_date.isoformat()
    return [notice]


def _deliver(state: State, sinks: Sequence[Sink], deadline: float | None) -> list[Delivery]:
    """Every pending notice to the sinks it is owed to; what arrives is struck."""

    by_name = {sink.name: sink for sink in sinks}
    outcomes: list[Delivery] = []
    left: list[Pending] = []
    for item in state.pending:
        gone = [name for name in item.owed if name not in by_name]
        if gone:
            logger.warning("alerts.sink_gone", id=item.notice.id, sinks=gone)
        targets = [by_name[name] for name in item.owed if name in by_name]
        done = notify_all([item.notice], targets, deadline)
        outcomes += done
        delivered = {d.sink for d in done if d.ok}
        item.owed = [name for name in item.owed if name in by_name and name not in delivered]
        if item.owed:
            left.append(item)
        else:
            state.sent.append(item.notice.id)
    state.pending = left
    return outcomes
