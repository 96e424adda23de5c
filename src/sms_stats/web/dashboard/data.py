"""Reading a range of hours for the dashboard from the store, fast enough for a page.

The store is one small object per app, kind and hour: a month of five apps is ~11,000 objects,
and COS answers each GET in tens of milliseconds with a few milliseconds of CPU on our side.
Read 16 at a time, that is still several views' worth of time. So:

- the keys come first, with their versions (`Store.listing`: an ETag, a file's inode and
  times): on COS, which lists any prefix, one request per app, kind and month (a month of one
  kind is at most 744 keys, one page); on a file store, one folder a day (cheap there);
- every hour read is folded into one rollup object per app and local month,
  `dashboard/app=<id>/month=<yyyy-mm>.json`, holding each point by the key it came from and
  that key's version. Later views (from any container) read that one object instead of ~2,200
  and use of it only what the listing still names at the same version: an hour backfilled
  since is read, an hour written again (receipts that settled, `backfill --force`) is read
  again, and the rollup is rewritten. The records stay the truth; the rollup is a copy to skip,
  checked as strictly as a record (a count that is no count discards it), so it may hold
  receipts still settling: when they change, their object does;
- points are kept in this container's memory with their version, so a warm container reads
  no rollup and only what is new or written again;
- reads stop a little before the deadline (`WRITE_RESERVE_S`), so that what they found is
  folded into rollups even when a first view of a month cannot read it all: the next view goes
  on from there instead of starting over.

A gap stays a gap: hours with no record are absent from the series, never zeros. An object that
cannot be read or parsed is named in the app's `problems` and left out; the rest still renders.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone, tzinfo
from datetime import time as clock_time
from typing import Any, TypeVar

from sms_stats.core.log import logger
from sms_stats.core.records import (
    KIND_FOLDERS,
    MAX_COUNT,
    BalanceRecord,
    CallbackRecord,
    Record,
    from_dict,
)
from sms_stats.store.base import SinkError, Store

ROLLUP_PREFIX = "dashboard/"
ROLLUP_SCHEMA = "sms-stats-dashboard-month/v3"
WORKERS = 16  # requests in flight at once: COS takes far more, the function's CPU does not
CACHE_LIMIT = 50_000  # points kept in memory (~200 bytes each)
WRITE_RESERVE_S = 5.0  # at most: a quarter of the time left when the view starts
REASONS = (
    ("internal_error_count", "carrier error"),
    ("invalid_number_count", "invalid number"),
    ("shutdown_error_count", "phone off"),
    ("black_list_count", "blocklist"),
    ("frequency_limit_count", "frequency limit"),
)
_KINDS = ("send", "callback", "packages")
T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class SendPoint:
    """One stored hour of sends, as the charts draw it (only what they need, so the container's
    memory of final hours stays small)."""

    start: int  # Unix seconds: real time, so a 23- or 25-hour day spaces its hours truly
    end: int
    requests: int
    successes: int
    fee: int
    rate: float | None


@dataclass(frozen=True)
class ReceiptPoint:
    """One stored hour of receipts, as the charts draw it."""

    start: int
    end: int
    callbacks: int
    delivered: int
    failed: int
    reasons: tuple[int, ...]  # in REASONS order
    rate: float | None


@dataclass(frozen=True)
class BalancePoint:
    """A package balance known at a moment, as the balance chart draws it."""

    at: int
    remaining: int


Point = SendPoint | ReceiptPoint | BalancePoint
Versioned = tuple[str, Point]  # a point and the version of the object it was read from


@dataclass
class AppSeries:
    """One app's points over the viewed range, and what could not be read, so the page shows a
    gap as a gap with its reason."""

    app_id: str
    send: list[SendPoint] = field(default_factory=list)
    receipts: list[ReceiptPoint] = field(default_factory=list)
    balance: list[BalancePoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


@dataclass
class Stats:
    """What a read cost, for the logs and the benchmark."""

    listed: int = 0
    rollups_used: int = 0
    rollups_written: int = 0
    objects_read: int = 0
    cached: int = 0


_cache: dict[tuple[str, str], tuple[str, Point]] = {}  # (store, key) -> (version, point)
_cache_lock = threading.Lock()


def clear_cache() -> None:
    with _cache_lock:
        _cache.clear()


def local_dates(start: datetime, end: datetime, tz: tzinfo) -> list[date]:
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def day_end(day: date, tz: tzinfo) -> datetime:
    """The next local midnight, as a real instant (a 23- or 25-hour day included)."""
    return datetime.combine(day + timedelta(days=1), clock_time(0), tz).astimezone(timezone.utc)


def read(  # noqa: PLR0915 - four phases, read top to bottom
    store: Store,
    app_ids: Sequence[str],
    start: datetime,
    end: datetime,
    tz: tzinfo,
    *,
    deadline: float | None = None,
    stats: Stats | None = None,
) -> dict[str, AppSeries]:
    """Each app's hours in [start, end), read as described above. Never raises for the
    store's sake: what could not be read is in each app's `problems`. `deadline` is a
    `time.monotonic()` reading."""
    stats = stats if stats is not None else Stats()
    read_by = deadline
    if deadline is not None:
        left = max(deadline - time.monotonic(), 0.0)
        read_by = deadline - min(WRITE_RESERVE_S, left / 4)
    days = local_dates(start, end, tz)
    series = {app: AppSeries(app) for app in app_ids}
    lo, hi = int(start.timestamp()), int(end.timestamp())

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="dashboard") as pool:
        # 1. the keys of every day, with their versions
        pairs = [(app, d) for app in app_ids for d in days]
        day_keys: dict[tuple[str, date], dict[str, str]] = {pair: {} for pair in pairs}
        tasks = _listings(store, app_ids, days)
        listed = _map(pool, lambda t: store.listing(t.prefix, read_by), tasks)
        stats.listed += len(tasks)
        for task, found in zip(tasks, listed, strict=True):
            if isinstance(found, SinkError):
                _problem(series[task.app_id], f"the store did not answer for {task.span}: {found}")
                continue
            for key, version in found.items():
                asked = task.day_of(key)
                if asked is not None:
                    day_keys[(task.app_id, asked)][key] = version
        # 2. the rollups of the months whose days this container does not hold as listed (a
        #    warm one holds every day it showed before, but the hours written since)
        with _cache_lock:
            wanted = [
                pair
                for pair in pairs
                if any(
                    (hit := _cache.get((store.name, key))) is None or hit[0] != version
                    for key, version in day_keys[pair].items()
                )
            ]
        months = sorted({(app, _month(d)) for app, d in wanted})
        rollups = _map(pool, lambda t: _rollup(store, t[0], t[1], read_by), months)
        held: dict[tuple[str, str], dict[str, Versioned]] = {}
        for app_month, rollup in zip(months, rollups, strict=True):
            held[app_month] = rollup if isinstance(rollup, dict) else {}
            stats.rollups_used += 1 if held[app_month] else 0
        covered: dict[tuple[str, date], dict[str, Versioned]] = {pair: {} for pair in pairs}
        for app, d in wanted:
            # only what is still listed, as it was: a record deleted since is not shown, one
            # written again since is read again
            month_held = held.get((app, _month(d)), {})
            covered[(app, d)] = {
                k: month_held[k]
                for k, version in day_keys[(app, d)].items()
                if k in month_held and month_held[k][0] == version
            }

        # 3. what no rollup holds, from this container's memory, else from the store
        to_read = [
            (app, d, key)
            for (app, d), keys in day_keys.items()
            for key in keys
            if key not in covered[(app, d)]
        ]
        found_points: list[Point | str | None] = []
        misses: list[int] = []
        with _cache_lock:
            for n, (app, d, key) in enumerate(to_read):
                hit = _cache.get((store.name, key))
                fresh_hit = hit is not None and hit[0] == day_keys[(app, d)][key]
                found_points.append(hit[1] if hit is not None and fresh_hit else None)
                if not fresh_hit:
                    misses.append(n)
        stats.cached += len(to_read) - len(misses)
        fetched = _map(
            pool, lambda n: _read_point(store, to_read[n][0], to_read[n][2], read_by), misses
        )
        stats.objects_read += len(misses)
        unread: dict[str, list[str]] = {}  # app -> what the store did not answer, by key
        for n, answer in zip(misses, fetched, strict=True):
            if isinstance(answer, SinkError):
                unread.setdefault(to_read[n][0], []).append(f"{to_read[n][2]}: {answer}")
            else:
                found_points[n] = answer
        # what each day now holds, by key, with the version listed before the read: were an
        # object written again in between, the next view sees a newer version and reads it
        # again. What the rollups held is kept in memory too: the next view here needs none.
        now_held: dict[tuple[str, date], dict[str, Versioned]] = {
            pair: dict(c) for pair, c in covered.items()
        }
        gained: set[tuple[str, str]] = set()  # months whose rollup lacks what was found
        for (app, d, key), got in zip(to_read, found_points, strict=True):
            if got is None:
                continue  # the store did not answer: said below, once per app
            if isinstance(got, str):
                _problem(series[app], f"{key}: {got}")
                continue
            now_held[(app, d)][key] = (day_keys[(app, d)][key], got)
            gained.add((app, _month(d)))
        _remember(
            {(store.name, k): v for pair_held in now_held.values() for k, v in pair_held.items()}
        )
        points = {pair: [p for _v, p in pair_held.values()] for pair, pair_held in now_held.items()}
        for app, failed in unread.items():
            if len(failed) <= 3:
                for text in failed:
                    _problem(series[app], text)
            else:
                _problem(
                    series[app],
                    f"{len(failed)} hours could not be read, such as {failed[0]}; what was "
                    "read is kept, so reloading the page reads the rest",
                )

        # 4. rollups that can now hold more hours, for the next view: the month's other days
        #    as they were, the days in view as they are now
        in_view = {d.isoformat() for d in days}
        to_write = []
        for app, month in months:
            if (app, month) not in gained:
                continue
            body = {k: v for k, v in held[(app, month)].items() if _key_day(k) not in in_view}
            for d in days:
                if _month(d) == month:
                    body.update(now_held[(app, d)])
            to_write.append(((app, month), body))
        written = _map(
            pool, lambda t: _write_rollup(store, t[0][0], t[0][1], t[1], deadline), to_write
        )
        stats.rollups_written += sum(1 for ok in written if ok is True)

    for (app, _d), held_points in points.items():
        target = series[app]
        for point in held_points:
            if isinstance(point, SendPoint) and lo <= point.start < hi:
                target.send.append(point)
            elif isinstance(point, ReceiptPoint) and lo <= point.start < hi:
                target.receipts.append(point)
            elif isinstance(point, BalancePoint) and lo <= point.at < hi:
                target.balance.append(point)
    for target in series.values():
        target.send.sort(key=lambda p: p.start)
        target.receipts.sort(key=lambda p: p.start)
        target.balance.sort(key=lambda p: p.at)
    return series


def _map(pool: ThreadPoolExecutor, fn: Callable[[T], R], items: Iterable[T]) -> list[R | SinkError]:
    """`fn` over `items` in the pool, in order; a SinkError is returned in its place."""

    def guarded(item: T) -> R | SinkError:
        try:
            return fn(item)
        except SinkError as exc:
            return exc

    return list(pool.map(guarded, items))


def _problem(target: AppSeries, text: str) -> None:
    if text not in target.problems and len(target.problems) < 20:
        target.problems.append(text)


@dataclass(frozen=True)
class Listing:
    """One listing request: an app's kind, for one day (its folder) or for the days asked of
    one month (the month's prefix, on a store that lists by any prefix)."""

    app_id: str
    kind: str
    days: tuple[date, ...]
    by_month: bool

    @property
    def base(self) -> str:
        return f"{KIND_FOLDERS[self.kind]}app={self.app_id}/dt="

    @property
    def prefix(self) -> str:
        first = self.days[0].isoformat()
        return f"{self.base}{first[:7]}" if self.by_month else f"{self.base}{first}/"

    @property
    def span(self) -> str:
        first, last = self.days[0].isoformat(), self.days[-1].isoformat()
        return first if first == last else f"{first}..{last}"

    def day_of(self, key: str) -> date | None:
        """The asked day an hour's key (`<base><date>/<hour>.json`) belongs to; None for
        anything else under the prefix (another day of the month, a stray file)."""
        day_text, slash, name = key[len(self.base) :].partition("/")
        if not slash or not _is_hour(name):
            return None
        try:
            day = date.fromisoformat(day_text)
        except ValueError:
            return None
        return day if day in self.days else None


MONTH_LISTING_DAYS = 4  # asked of a month from this many days, one listing beats one a day


def _listings(store: Store, app_ids: Sequence[str], days: Sequence[date]) -> list[Listing]:
    """The listing requests for `days`. COS lists any prefix of a key, and its pages hold
    1,000 keys (a month of one kind is at most 744 hours): a month's days then cost one request
    per app and kind instead of 31. A file store lists by folder: one per day (cheap there)."""
    from sms_stats.store.cos import CosSink  # noqa: PLC0415 - the module loads no COS SDK by itself

    months: dict[tuple[int, int], list[date]] = {}
    for day in days:
        months.setdefault((day.year, day.month), []).append(day)
    by_prefix = isinstance(store, CosSink)
    out: list[Listing] = []
    for app in app_ids:
        for kind in _KINDS:
            for month_days in months.values():
                if by_prefix and len(month_days) >= MONTH_LISTING_DAYS:
                    out.append(Listing(app, kind, tuple(month_days), by_month=True))
                else:
                    out.extend(Listing(app, kind, (day,), by_month=False) for day in month_days)
    return out


def _is_hour(name: str) -> bool:
    """`B-E.json` with B == E: an hour (or a balance snapshot's hour), not a stray file."""
    if "/" in name or not name.endswith(".json"):
        return False
    stem = name[: -len(".json")]
    if "-" not in stem:
        return len(stem) == 10 and stem.isdigit()  # packages: `<yyyymmddhh>.json`
    begin, _, end = stem.partition("-")
    return begin == end


def _month(day: date) -> str:
    return day.isoformat()[:7]


def _key_day(key: str) -> str | None:
    """The local date an hour's key names (`.../dt=2026-11-05/...`)."""
    at = key.find("/dt=")
    return key[at + 4 : at + 14] if at >= 0 else None


def _rollup_key(app_id: str, month: str) -> str:
    return f"{ROLLUP_PREFIX}app={app_id}/month={month}.json"


def _rollup(store: Store, app_id: str, month: str, deadline: float | None) -> dict[str, Versioned]:
    """The month's points by the key they were read from, with the version read; {} when there
    is none, or it is unreadable or of an older schema (it is then rebuilt from the records).
    Its content is checked as strictly as a record's: a count that is no count is not shown."""
    key = _rollup_key(app_id, month)
    data = store.get(key, deadline)
    if data is None:
        return {}
    try:
        payload = json.loads(data)
        if not isinstance(payload, dict) or payload.get("schema") != ROLLUP_SCHEMA:
            raise ValueError("not a rollup of this version")
        points = payload["points"]
        if not isinstance(points, dict):
            raise ValueError("points: not an object")
        return {str(k): _rolled(item) for k, item in points.items()}
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        logger.warning("dashboard.rollup_unreadable", key=key, error=str(exc)[:200])
        return {}


def _rolled(item: Any) -> Versioned:
    """One rollup entry as (version, point), or ValueError naming what is wrong."""
    if not isinstance(item, dict):
        raise ValueError("a point is not an object")
    kind, version = item.get("kind"), item.get("version")
    if not isinstance(version, str):
        raise ValueError("version: not text")
    fields = {k: v for k, v in item.items() if k not in ("kind", "version")}
    if kind == "send":
        names = ("start", "end", "requests", "successes", "fee")
        start, end, requests, successes, fee = _counts(fields, names)
        rate = _rate(fields, len(names) + 1)
        return version, SendPoint(start, end, requests, successes, fee, rate)
    if kind == "callback":
        names = ("start", "end", "callbacks", "delivered", "failed")
        start, end, callbacks, delivered, failed = _counts(fields, names)
        reasons = fields.get("reasons")
        if not isinstance(reasons, list) or len(reasons) != len(REASONS):
            raise ValueError(f"reasons: not {len(REASONS)} counts")
        counted = tuple(_counts(dict(enumerate(reasons)), range(len(REASONS))))
        rate = _rate(fields, len(names) + 2)
        return version, ReceiptPoint(start, end, callbacks, delivered, failed, counted, rate)
    if kind == "packages":
        if set(fields) != {"at", "remaining"}:
            raise ValueError("a balance point: not at and remaining")
        at, remaining = _counts(fields, ("at", "remaining"))
        return version, BalancePoint(at, remaining)
    raise ValueError(f"kind: {str(kind)[:20]!r}")


def _counts(fields: dict[Any, Any], names: Sequence[Any]) -> list[int]:
    values = [fields.get(name) for name in names]
    for name, value in zip(names, values, strict=True):
        if type(value) is not int or not 0 <= value <= MAX_COUNT:  # as records' counts
            raise ValueError(f"{name}: not a count ({str(value)[:20]})")
    return [int(v) for v in values if isinstance(v, int)]


def _rate(fields: dict[str, Any], size: int) -> float | None:
    if len(fields) != size:
        raise ValueError(f"{sorted(fields)[:8]}: not the fields of a point")
    rate = fields.get("rate")
    if rate is None:
        return None
    if type(rate) not in (int, float) or not 0 <= rate <= 1:
        raise ValueError(f"rate: not a share ({str(rate)[:20]})")
    return float(rate)


_KIND_OF = {SendPoint: "send", ReceiptPoint: "callback", BalancePoint: "packages"}


def _write_rollup(
    store: Store, app_id: str, month: str, held: dict[str, Versioned], deadline: float | None
) -> bool:
    body = {
        "schema": ROLLUP_SCHEMA,
        "app_id": app_id,
        "month": month,
        "points": {
            key: {"kind": _KIND_OF[type(p)], "version": v, **p.__dict__}
            for key, (v, p) in sorted(held.items())
        },
    }
    try:
        data = json.dumps(body, separators=(",", ":")).encode()
        store.put(_rollup_key(app_id, month), data, deadline)
    except SinkError as exc:  # a copy to skip reads: the page does not need it
        key = _rollup_key(app_id, month)
        logger.warning("dashboard.rollup_unwritten", key=key, error=str(exc))
        return False
    return True


def _read_point(store: Store, app_id: str, key: str, deadline: float | None) -> Point | str:
    """The object as a point, or what is wrong with it (never raises for its content)."""
    data = store.get(key, deadline)
    if data is None:
        return "gone before it could be read"
    try:
        record = from_dict(json.loads(data))
    except (ValueError, RecursionError) as exc:
        return f"not a record this version reads ({str(exc)[:120]})"
    if record.sms_sdk_app_id != app_id:
        return f"holds app {record.sms_sdk_app_id}, not {app_id}"
    return to_point(record)


def to_point(record: Record | CallbackRecord | BalanceRecord) -> Point:
    if isinstance(record, BalanceRecord):
        return BalancePoint(int(record.as_of.timestamp()), record.remaining)
    start = int(record.window.start.timestamp())
    end = int(record.window.end.timestamp())
    if isinstance(record, CallbackRecord):
        r = record.receipts
        return ReceiptPoint(
            start,
            end,
            r.callback_count,
            r.callback_success_count,
            r.callback_fail_count,
            tuple(int(getattr(r, name)) for name, _label in REASONS),
            record.delivery_rate,
        )
    c = record.counts
    return SendPoint(
        start, end, c.request_count, c.request_success_count, c.fee_count, record.success_rate
    )


def _remember(found: dict[tuple[str, str], Versioned]) -> None:
    with _cache_lock:
        if len(_cache) + len(found) > CACHE_LIMIT:
            _cache.clear()  # simple and rare: a container that views a year of many apps
        _cache.update(found)


def reasons_total(points: Sequence[ReceiptPoint]) -> list[tuple[str, int]]:
    """Receipt failures by reason over the range, largest first."""
    totals = [0] * len(REASONS)
    for point in points:
        for n, value in enumerate(point.reasons):
            totals[n] += value
    return sorted(
        ((label, total) for (_name, label), total in zip(REASONS, totals, strict=True)),
        key=lambda item: -item[1],
    )
