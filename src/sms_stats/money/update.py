"""After a timer run: each app's hour history takes the run's send hours, its month is worked
out (month to date, exactly; the forecast), and the summary is written. What the money and
surge rules judge comes out, read once per app and run whatever the number of rules.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta

from sms_stats.collect.client import StatsClient
from sms_stats.core.errors import SmsStatsError, UpstreamError
from sms_stats.core.log import logger
from sms_stats.core.records import AnyRecord, Record
from sms_stats.core.settings import Settings
from sms_stats.core.windows import Window
from sms_stats.money import history, month, summary
from sms_stats.money.forecast import Hours
from sms_stats.store.base import SinkError, Store


class Money:
    """What the rules read of one app: its month (None when it could not be worked out) and
    its hour history (for the hour's usual volume). A plain class: a NamedTuple's is compiled
    at every cold start."""

    __slots__ = ("hours", "month")

    def __init__(self, month: summary.AppMonth | None, hours: Hours) -> None:
        self.month = month
        self.hours = hours


SEEDS_PER_RUN = 20  # histories seeded from the store's hour records by one run, at most


def _hours(records: Iterable[AnyRecord]) -> dict[str, list[Record]]:
    by_app: dict[str, list[Record]] = {}
    for record in records:
        if isinstance(record, Record) and record.window.grain == "hour":
            by_app.setdefault(record.sms_sdk_app_id, []).append(record)
    return by_app


def update(
    records: Iterable[AnyRecord],
    newest: Mapping[str, datetime],
    settings: Settings,
    store: Store,
    client: StatsClient,
    now: datetime,
    deadline: float | None,
) -> dict[str, Money]:
    """`records`: the run's (healed ones too); `newest`: each app's newest full hour to work
    its month out through (the run's own hour). Apps not in `newest` only keep their hours."""
    by_app = _hours(records)
    apps = sorted(set(by_app) | set(newest))
    seeds = _Seeds(SEEDS_PER_RUN)

    def one(app_id: str) -> tuple[str, Money | None]:
        hours, through = by_app.get(app_id, []), newest.get(app_id)
        return app_id, _one(app_id, hours, through, settings, store, client, seeds, deadline)

    if len(apps) > 1:
        from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415 - one app needs none

        with ThreadPoolExecutor(max_workers=settings.concurrency) as pool:
            done = list(pool.map(one, apps))
    else:
        done = [one(app_id) for app_id in apps]
    found = {app_id: money for app_id, money in done if money is not None}
    months = [money.month for money in found.values() if money.month is not None]
    try:
        summary.write(store, months, settings.timezone, now, deadline)
    except SinkError as exc:
        logger.warning("money.summary_not_written", store=store.name, error=str(exc))
    return found


def _one(
    app_id: str,
    hours: list[Record],
    through: datetime | None,
    settings: Settings,
    store: Store,
    client: StatsClient,
    seeds: _Seeds,
    deadline: float | None,
) -> Money | None:
    try:
        held = history.load(store, app_id, deadline)
    except SinkError as exc:
        logger.warning("money.history_unavailable", app_id=app_id, error=str(exc))
        return None
    if through is not None and not held.seeded:
        _seed(held, through, store, seeds, deadline)
    for record in hours:
        counts = record.counts
        held.note(record.window.begin_time, counts.request_count, counts.fee_count)
    worked: summary.AppMonth | None = None
    if through is not None:
        try:
            worked = month.of_app(held, through, client, settings.budget_of(app_id), deadline)
        except UpstreamError as exc:
            logger.warning("money.month_unknown", app_id=app_id, code=exc.code, message=exc.message)
    try:
        history.save(store, held, deadline)
    except SinkError as exc:
        logger.warning("money.history_not_written", app_id=app_id, error=str(exc))
    return Money(worked, held.hours)  # this run's own: the rules only read it


class _Seeds:
    """How many more histories this run may seed: each reads up to 5 weeks of one app's hour
    records (a listing a day, then what is there), so a deployment of 1,000 apps that
    backfilled seeds them over many runs, not in one that would outlast its invocation."""

    def __init__(self, left: int) -> None:
        self.left = left
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


def _seed(
    held: history.History, through: datetime, store: Store, seeds: _Seeds, deadline: float | None
) -> None:
    """A history's first run reads the weeks before from the store's hour records, once: a
    deployment that backfilled its last month judges surges and forecasts by its week at
    once, not weeks later. What the store lacks is left to the runs to come."""
    if not seeds.take():
        return  # a later run seeds it
    from sms_stats.store.reading import listed_hours  # noqa: PLC0415 - once per history

    first = through - timedelta(hours=history.KEEP_HOURS - 1)
    window = Window.through(first, through - timedelta(hours=1))
    try:
        found = listed_hours(store, held.app_id, window, deadline)
    except SmsStatsError as exc:  # the store did not answer: seeded by a later run
        logger.warning("money.history_unseeded", app_id=held.app_id, error=exc.message)
        return
    for record in found:
        counts = record.counts
        held.hours.setdefault(record.window.begin_time, (counts.request_count, counts.fee_count))
    held.seeded = held.changed = True
