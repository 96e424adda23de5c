"""Reading the store back: the newest stored records of each app, and the stored hours of a window.

`/metrics`, the read-through of `GET /stats` and the dashboard read what the timer wrote, never
the API, so that looking costs no call against the API's 10 requests a second. The store is many
small objects (a COS GET is ~20 ms), so what is read is chosen by key before anything is fetched:
the newest hour is found by listing only today's and yesterday's `dt=` folders of each app, and a
window's hours are named by `records.store_key`, not found by listing the whole store.

A store that cannot be reached raises `StoreUnavailable` (503: a scrape shows `up == 0`); an
object that is not a record of the kind and app its key names is skipped and reported in
`unreadable`, so one corrupt file never hides the other apps.
"""

from __future__ import annotations

import contextvars
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import TypeVar

from sms_stats.core.errors import SmsStatsError
from sms_stats.core.log import logger
from sms_stats.core.records import (
    AnyRecord,
    BalanceRecord,
    CallbackRecord,
    Kind,
    Record,
    day_folder,
    read_back,
    store_key,
)
from sms_stats.core.windows import Window
from sms_stats.store.base import ObjectRefused, Sink, SinkError, Store, find_store

NO_STORE = "ResourceUnavailable.NoStore"
STORE_UNREACHABLE = "ResourceUnavailable.StoreUnreachable"
# Reads in flight at once: a COS GET waits ~20 ms on the network, not on this process.
READERS = 8
# The names a day folder's records have: one hour (`BeginTime` = `EndTime`), or a balance.
_HOUR_NAME = re.compile(r"([0-9]{10})-\1\.json")
_BALANCE_NAME = re.compile(r"[0-9]{10}\.json")
T = TypeVar("T")
R = TypeVar("R")
A = TypeVar("A", Record, CallbackRecord, BalanceRecord)


class StoreUnavailable(SmsStatsError):
    """There is no store to read, or it did not answer: 503, since another try (or a store
    configured) may well succeed, and the caller should not read it as "no traffic"."""

    code = STORE_UNREACHABLE
    status = 503


def the_store(sinks: Sequence[Sink]) -> Store:
    """The first store sink (where the timer keeps its records), or StoreUnavailable."""
    store = find_store(sinks)
    if store is None:
        raise StoreUnavailable(
            "nothing to read: this reads the store, the first file:// or cos:// sink of "
            "SMS_STATS_SINKS, and none is configured",
            code=NO_STORE,
        )
    return store


@dataclass
class Newest:
    """One app's newest stored record of each kind (None: none in the days looked at)."""

    app_id: str
    send: Record | None = None
    callback: CallbackRecord | None = None
    balance: BalanceRecord | None = None


@dataclass
class Reading:
    """What `newest` found: per app, in the order asked, and the keys it had to skip."""

    apps: list[Newest]
    unreadable: list[str] = field(default_factory=list)


def newest(
    store: Store,
    app_ids: Sequence[str],
    today: date,
    *,
    days: int = 2,
    deadline: float | None = None,
) -> Reading:
    """Each app's newest stored send hour, receipts hour and balance, from the `days` local
    days up to `today` (today and yesterday by default: the timer writes every hour, so an app
    with nothing there has not been collected lately, and listing further back would cost a
    listing per day for every scrape). StoreUnavailable when the store does not answer."""
    results = _parallel(lambda app_id: _newest_of(store, app_id, today, days, deadline), app_ids)
    reading = Reading([found for found, _ in results])
    for _, skipped in results:
        reading.unreadable.extend(skipped)
    return reading


def _newest_of(
    store: Store, app_id: str, today: date, days: int, deadline: float | None
) -> tuple[Newest, list[str]]:
    found = Newest(app_id)
    skipped: list[str] = []
    found.send = _newest_kind(store, "send", Record, app_id, today, days, skipped, deadline)
    found.callback = _newest_kind(
        store, "callback", CallbackRecord, app_id, today, days, skipped, deadline
    )
    found.balance = _newest_kind(
        store, "packages", BalanceRecord, app_id, today, days, skipped, deadline
    )
    return found, skipped


def _newest_kind(
    store: Store,
    kind: Kind,
    cls: type[A],
    app_id: str,
    today: date,
    days: int,
    skipped: list[str],
    deadline: float | None,
) -> A | None:
    """Newest first, by key (the keys name the hours); a key that does not hold a record of
    this kind and app is skipped for the next older one. Only names this kind writes in the
    folder are candidates (`<BeginTime>-<EndTime>.json` of one hour, a balance's
    `<yyyymmddhh>.json`): a stray file is never read, so 2,000 of them in the newest folder cost
    nothing (each read is a COS request, paid for)."""
    name = _BALANCE_NAME if kind == "packages" else _HOUR_NAME
    for back in range(days):
        folder = day_folder(kind, app_id, today - timedelta(days=back))
        listed = store_call(store, functools.partial(store.keys, folder, deadline))
        tails = [k[len(folder) :] for k in listed if k.startswith(folder)]
        for tail in sorted((t for t in tails if name.fullmatch(t)), reverse=True):
            key = folder + tail
            record = record_at(store, key, deadline)
            if isinstance(record, cls) and _belongs(record, app_id, key):
                return record
            skipped.append(key)
    return None


def _belongs(record: AnyRecord, app_id: str, key: str) -> bool:
    """A record of another app, or of a window other than one hour, is not this key's record
    (a hand-copied file, an older layout): counting it would show the wrong app's traffic."""
    if record.sms_sdk_app_id != app_id or record.key != key:
        return False
    return isinstance(record, BalanceRecord) or record.window.grain == "hour"


def record_at(store: Store, key: str, deadline: float | None) -> AnyRecord | None:
    """The record under `key`; None when the object is absent or not a record of ours (a
    corrupt one, or one the store refuses to give: a link, a huge object), so one bad object
    is skipped, not taken for a store that does not answer."""
    return read_back(store_call(store, lambda: _get(store, key, deadline)))


def _get(store: Store, key: str, deadline: float | None) -> bytes | None:
    try:
        return store.get(key, deadline)
    except ObjectRefused as exc:
        logger.warning("store.object_refused", store=store.name, key=key, error=str(exc))
        return None


@dataclass
class StoredHours:
    """A window's stored hour records of one kind and app, in order; `missing` are the hours
    the store does not hold (absent, or an object that is not that hour's record)."""

    records: list[Record | CallbackRecord]
    missing: list[Window]


def stored_hours(
    store: Store,
    kind: Kind,
    app_id: str,
    window: Window,
    deadline: float | None = None,
) -> StoredHours:
    """Every hour of `window` as stored, read in parallel by key. StoreUnavailable when the
    store does not answer."""
    if kind == "packages":
        raise ValueError("balances are snapshots, not hours")
    hours = list(window.iter_hours())
    read = _parallel(lambda hour: record_at(store, store_key(app_id, hour, kind), deadline), hours)
    result = StoredHours([], [])
    for hour, record in zip(hours, read, strict=True):
        wanted = Record if kind == "send" else CallbackRecord
        if isinstance(record, wanted) and record.sms_sdk_app_id == app_id and record.window == hour:
            result.records.append(record)
        else:
            result.missing.append(hour)
    return result


def listed_hours(
    store: Store, app_id: str, window: Window, deadline: float | None = None
) -> list[Record]:
    """The send hours of `window` the store holds, found by listing its day folders (one
    listing a day) and reading only what is there: for a long window mostly empty, far fewer
    requests than reading every hour's key. StoreUnavailable when the store does not answer."""
    hours = {hour.begin_time: hour for hour in window.iter_hours()}
    days = sorted({hour.local_date for hour in hours.values()})
    keys: list[str] = []
    for day in days:
        folder = day_folder("send", app_id, day)
        for key in store_call(store, functools.partial(store.keys, folder, deadline)):
            label = key.rsplit("/", 1)[-1].removesuffix(".json")
            begin, _, end = label.partition("-")
            if begin == end and begin in hours:
                keys.append(key)
    read = _parallel(lambda key: record_at(store, key, deadline), keys)
    return [
        record
        for record in read
        if isinstance(record, Record)
        and record.sms_sdk_app_id == app_id
        and record.window == hours.get(record.window.begin_time)
    ]


def holds(store: Store, key: str, kind: Kind, app_id: str, deadline: float | None = None) -> bool:
    """Whether `key` holds a record of that kind and app that reads back whole: a truncated
    or foreign object is a gap to fill, not a record (gaps and backfill count by this, not by
    the object's existence). The store's errors are raised (SinkError) to the caller."""
    record = read_back(_get(store, key, deadline))
    return (
        record is not None
        and record.kind == kind
        and record.sms_sdk_app_id == app_id
        and record.key == key
    )


def held_keys(
    store: Store, wanted: Sequence[tuple[str, Kind, str]], deadline: float | None = None
) -> set[str]:
    """Which of `wanted` ((key, kind, app)) hold their record (see `holds`), read in parallel."""
    found = _parallel(lambda item: holds(store, item[0], item[1], item[2], deadline), wanted)
    return {item[0] for item, ok in zip(wanted, found, strict=True) if ok}


def store_call(store: Store, read: Callable[[], T]) -> T:
    """`read()`, with a store that does not answer said as StoreUnavailable (503), its detail
    in the log only."""
    try:
        return read()
    except SinkError as exc:
        # The transport's detail (a path, a host) is for the operator's log, not the answer.
        logger.warning("store.unreachable", store=store.name, error=str(exc))
        raise StoreUnavailable(
            "the store did not answer; the function's log (store.unreachable) says why"
        ) from None


def _parallel(fn: Callable[[T], R], items: Sequence[T]) -> list[R]:
    """`fn` over `items`, in their order; in threads when there is more than one read to wait
    for. The first StoreUnavailable is raised."""
    if len(items) <= 1:
        return [fn(item) for item in items]
    # Imported here: a read of one object needs no pool.
    from concurrent.futures import ThreadPoolExecutor  # noqa: PLC0415

    with ThreadPoolExecutor(min(READERS, len(items)), thread_name_prefix="sms-stats-read") as pool:
        # Each read in a copy of this context, so its log lines keep the request's ids.
        futures = [pool.submit(contextvars.copy_context().run, fn, item) for item in items]
        return [future.result() for future in futures]
