"""Reading a range of hours for the dashboard from the store, fast enough for a page.

The store is one small object per app, kind and hour: a week of five apps is ~2,500 objects,
and COS answers each GET in tens of milliseconds. Read one by one, that is a minute; read 16 at
a time it is still ~10 s here (each request costs CPU on both sides). So:

- every request goes through a bounded thread pool (`WORKERS`), listings first, then objects;
- a local day that has ended and settled (its receipts are no longer re-fetched: the day's end
  plus `SMS_STATS_SETTLE_HOURS` and an hour) is folded, the first time the dashboard reads it,
  into one rollup object `dashboard/app=<id>/dt=<date>.json` in the store, naming the keys it
  was made from and each one's version (`Store.listing`: an ETag, a file's inode and times).
  Later views (from any container) read that one object instead of ~72, and use of it only
  what the day's listing still names at the same version: an hour backfilled since is read,
  an hour written again (`backfill --force`) is read again, and the rollup is rewritten. The
  records stay the truth; the rollup is a copy to skip;
- hours that are final (sends and balances once stored, receipts once settled) are kept in this
  container's memory with their version, so a warm container re-reads only what is new, still
  settling or written again.

A gap stays a gap: hours with no record are absent from the series, never zeros. An object that
cannot be read or parsed is named in the app's `problems` and left out; the rest still renders.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, timezone, tzinfo
from typing import TypeVar

from ..log import logger
from ..records import (
    KIND_FOLDERS,
    MAX_COUNT,
    BalanceRecord,
    CallbackRecord,
    Record,
    from_dict,
)
from ..sinks.base import SinkError, Store

ROLLUP_PREFIX = "dashboard/"
ROLLUP_SCHEMA = "sms-stats-dashboard-day/v2"
_OLD_ROLLUP_SCHEMA = "sms-stats-dashboard-day/v1"  # named no versions: rebuilt
WORKERS = 16  # requests in flight at once: COS takes far more, the function's CPU does not
CACHE_LIMIT = 50_000  # final hours kept in memory (~200 bytes each)
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
    return datetime.combine(day + timedelta(days=1), time(0), tz).astimezone(timezone.utc)


def read(  # noqa: PLR0915 - three phases, read top to bottom
    store: Store,
    app_ids: Sequence[str],
    start: datetime,
    end: datetime,
    tz: tzinfo,
    *,
    settle_hours: int,
    now: datetime,
    deadline: float | None = None,
    stats: Stats | None = None,
) -> dict[str, AppSeries]:
    """Each app's hours in [start, end), read as described above. Never raises for the
    store's sake: what could not be read is in each app's `problems`."""
    stats = stats if stats is not None else Stats()
    settle = timedelta(hours=settle_hours + 1)
    days = local_dates(start, end, tz)
    series = {app: AppSeries(app) for app in app_ids}
    lo, hi = int(start.timestamp()), int(end.timestamp())

    with ThreadPoolExecutor(WORKERS, thread_name_prefix="dashboard") as pool:
        # 1. every day's listing per kind, and every day's rollup
        listings = [(app, d, kind) for app in app_ids for d in days for kind in _KINDS]
        listed = _map(pool, lambda t: _list(store, t[0], t[1], t[2], deadline), listings)
        pairs = [(app, d) for app in app_ids for d in days]
        rollups = _map(pool, lambda t: _rollup(store, t[0], t[1], deadline), pairs)
        stats.listed += len(listings)

        day_keys: dict[tuple[str, date], dict[str, str]] = {pair: {} for pair in pairs}
        for (app, d, _kind), found in zip(listings, listed, strict=True):
            if isinstance(found, SinkError):
                _problem(series[app], f"the store did not answer for {d}: {found}")
                continue
            day_keys[(app, d)].update(found)
        covered: dict[tuple[str, date], dict[str, Versioned]] = {}
        for pair, rollup in zip(pairs, rollups, strict=True):
            held = rollup if isinstance(rollup, dict) else {}
            if held:
                stats.rollups_used += 1
            # only what is still listed, as it was: a record deleted since is not shown, one
            # written again since is read again
            listed_now = day_keys[pair]
            covered[pair] = {k: v for k, v in held.items() if listed_now.get(k) == v[0]}

        # 2. what no rollup holds, from this container's memory when final, else the store
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
            pool, lambda n: _read_point(store, to_read[n][0], to_read[n][2], deadline), misses
        )
        stats.objects_read += len(misses)
        for n, answer in zip(misses, fetched, strict=True):
            found_points[n] = answer if not isinstance(answer, SinkError) else f"{answer}"
        fresh: dict[tuple[str, str], Versioned] = {}
        newly_final: dict[tuple[str, date], dict[str, Versioned]] = {}
        points: dict[tuple[str, date], list[Point]] = {
            pair: [point for _, point in held.values()] for pair, held in covered.items()
        }
        for (app, d, key), got in zip(to_read, found_points, strict=True):
            if isinstance(got, str) or got is None:
                _problem(series[app], f"{key}: {got or 'not readable'}")
                continue
            points[(app, d)].append(got)
            if _final(got, now, settle):
                # the version listed before the read: were it written again in between, the
                # next view sees a newer version and reads it again
                versioned = (day_keys[(app, d)][key], got)
                fresh[(store.name, key)] = versioned
                newly_final.setdefault((app, d), {})[key] = versioned
        _remember(fresh)

        # 3. rollups that can now hold more final hours, for the next view
        to_write = [(pair, {**covered[pair], **more}) for pair, more in newly_final.items()]
        written = _map(
            pool, lambda t: _write_rollup(store, t[0][0], t[0][1], t[1], deadline), to_write
        )
        stats.rollups_written += sum(1 for ok in written if ok is True)

    for (app, _d), day in points.items():
        target = series[app]
        for point in day:
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


def _list(
    store: Store, app_id: str, day: date, kind: str, deadline: float | None
) -> dict[str, str]:
    prefix = f"{KIND_FOLDERS[kind]}app={app_id}/dt={day.isoformat()}/"
    listed = store.listing(prefix, deadline)
    return {k: v for k, v in listed.items() if _is_hour(k[len(prefix) :])}


def _is_hour(name: str) -> bool:
    """`B-E.json` with B == E: an hour (or a balance snapshot's hour), not a stray file."""
    if "/" in name or not name.endswith(".json"):
        return False
    stem = name[: -len(".json")]
    if "-" not in stem:
        return len(stem) == 10 and stem.isdigit()  # packages: `<yyyymmddhh>.json`
    begin, _, end = stem.partition("-")
    return begin == end


def _rollup_key(app_id: str, day: date) -> str:
    return f"{ROLLUP_PREFIX}app={app_id}/dt={day.isoformat()}.json"


def _rollup(store: Store, app_id: str, day: date, deadline: float | None) -> dict[str, Versioned]:
    """The day's final points by the key they were read from, with the version read; {} when
    there is none (or it is unreadable, or of an older schema: it is then rebuilt from the
    records)."""
    data = store.get(_rollup_key(app_id, day), deadline)
    if data is None:
        return {}
    try:
        payload = json.loads(data)
        if payload.get("schema") == _OLD_ROLLUP_SCHEMA:
            return {}  # names no versions: rebuilt quietly, once
        if payload.get("schema") != ROLLUP_SCHEMA:
            raise ValueError("not a rollup")
        held: dict[str, Versioned] = {}
        for key, item in payload["points"].items():
            kind, version = item.pop("kind"), str(item.pop("version"))
            if kind == "send":
                held[str(key)] = (version, _checked(SendPoint(**item)))
            elif kind == "callback":
                point = ReceiptPoint(**{**item, "reasons": tuple(item["reasons"])})
                held[str(key)] = (version, _checked(point))
            else:
                held[str(key)] = (version, _checked(BalancePoint(**item)))
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError) as exc:
        logger.warning("dashboard.rollup_unreadable", key=_rollup_key(app_id, day), error=str(exc))
        return {}
    return held


def _checked(point: Point) -> Point:
    """A rollup's point as strictly as a record's counts (`records.from_dict`): whole numbers
    from 0 to 2^63-1 (times too), rates from 0 to 1 or null. A string or a 4,300-digit count
    in a rollup made the whole page a 500; now the rollup is set aside (ValueError) and the
    day is read from its records, which are the truth."""
    for name, value in point.__dict__.items():
        if name == "rate":
            ok = value is None or (
                isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value <= 1
            )
        elif name == "reasons":
            ok = len(value) == len(REASONS) and all(_is_count(v) for v in value)
        else:
            ok = _is_count(value)
        if not ok:
            raise ValueError(f"a {type(point).__name__} whose {name} is no count or rate")
    return point


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_COUNT


_KIND_OF = {SendPoint: "send", ReceiptPoint: "callback", BalancePoint: "packages"}


def _write_rollup(
    store: Store, app_id: str, day: date, held: dict[str, Versioned], deadline: float | None
) -> bool:
    body = {
        "schema": ROLLUP_SCHEMA,
        "app_id": app_id,
        "date": day.isoformat(),
        "points": {
            key: {"kind": _KIND_OF[type(p)], "version": v, **p.__dict__}
            for key, (v, p) in sorted(held.items())
        },
    }
    try:
        data = json.dumps(body, separators=(",", ":")).encode()
        store.put(_rollup_key(app_id, day), data, deadline)
    except SinkError as exc:  # a copy to skip reads: the page does not need it
        logger.warning("dashboard.rollup_unwritten", key=_rollup_key(app_id, day), error=str(exc))
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


def _final(point: Point, now: datetime, settle: timedelta) -> bool:
    """Sends and balances do not change once stored; receipts do until they settle."""
    if isinstance(point, ReceiptPoint):
        return point.end + settle.total_seconds() <= now.timestamp()
    return True


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
