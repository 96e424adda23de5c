"""Hour windows in the statistics' time zone.

SendStatusStatistics counts whole hours named `yyyymmddhh` in Beijing time (the docs never say
so, hence a setting). A window is a run of whole hours, both ends included as the API reads them;
`window_end` is exclusive. All arithmetic goes through UTC, so that month and year ends need no
care and an hour is always a real hour.

The API's zone has no daylight saving, so the setting accepts only a zone that keeps one UTC
offset over every year `parse_hour` accepts (`api_zone`): in a zone whose clocks go back, two
real hours share one `yyyymmddhh` and the API would be asked for that hour twice; where they go
forward, one `yyyymmddhh` names no real hour and would never be asked for.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import cached_property
from itertools import accumulate, chain, pairwise, repeat
from operator import add
from typing import Literal, NamedTuple
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sms_stats.core.redact import short

HOUR = timedelta(hours=1)
_HOUR_RE = re.compile(r"[0-9]{10}")
Granularity = Literal["hour", "day"]
# What a window is, for where it is stored: one hour, one whole local day, or anything else.
Grain = Literal["hour", "day", "range"]


def zone(name: str) -> ZoneInfo:
    """Resolve a zone name, or raise ValueError saying what is wrong with it."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {short(name)}; use an IANA name like 'Asia/Shanghai'"
        ) from exc


def parse_hour(text: str, tz: tzinfo) -> datetime:
    """`yyyymmddhh` -> the aware start of that hour; ValueError names the rule broken."""
    if not isinstance(text, str) or not _HOUR_RE.fullmatch(text):
        raise ValueError(f"must be 10 digits yyyymmddhh, like 2021050113; got {short(text)}")
    try:
        day = date(int(text[:4]), int(text[4:6]), int(text[6:8]))
    except ValueError:
        raise ValueError(f"{text[:8]} is not a calendar date (yyyymmdd); got {text!r}") from None
    hour = int(text[8:])
    if hour > 23:
        raise ValueError(f"hour must be 00-23; got {text!r}")
    if not 2000 <= day.year <= 2100:
        raise ValueError(f"year must be 2000 to 2100; got {text!r}")
    return datetime(day.year, day.month, day.day, hour, tzinfo=tz)


def format_hour(moment: datetime) -> str:
    """`yyyymmddhh` (a third of strftime's time: the forecast names 700 hours a run)."""
    return f"{moment.year:04d}{moment.month:02d}{moment.day:02d}{moment.hour:02d}"


# Zones known to keep one offset (tests/test_zones.py checks these hour by hour), besides `Etc/`
# ones, which are fixed offsets by definition: the default costs a cold start no scan. Any other
# name is scanned once per container.
_KNOWN_FIXED = ("Asia/Shanghai", "UTC")
_found_fixed: set[str] = set()
_FIRST_DAY = datetime(2000, 1, 1)
_DAYS = (date(2101, 1, 1) - date(2000, 1, 1)).days  # 36,890 local midnights, 2000 to 2100
_LAST_MOMENT = datetime(2100, 12, 31, 23, 59, 59)
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)


class OffsetChange(NamedTuple):
    """A change of a zone's UTC offset: at `at` (UTC), from `before` to `after`."""

    at: datetime
    before: timedelta
    after: timedelta


def api_zone(name: str, now: datetime | None = None) -> ZoneInfo:
    """`zone`, refusing (ValueError with the reason and the fix) a zone whose UTC offset changes
    between 2000 and 2100: the API names its hours in a zone without daylight saving, so in such a
    zone an hour would be fetched twice or never. `now` picks the example the message gives (the
    next change after it); the clock by default."""
    tz = zone(name)
    if not changes_offset(name):
        return tz
    change = offset_change(tz, now or datetime.now(timezone.utc))
    assert change is not None  # the scan that found a change finds it again
    raise ValueError(_refusal(name, tz, change))


def changes_offset(name: str) -> bool:
    """Whether the zone `name` changes its UTC offset between 2000 and 2100 (ValueError for a
    name that is not a zone). A container scans a name at most once."""
    if name in _KNOWN_FIXED or name.startswith("Etc/") or name in _found_fixed:
        return False
    if keeps_one_offset(zone(name)):
        _found_fixed.add(name)
        return False
    return True


def keeps_one_offset(tz: tzinfo) -> bool:
    """Whether `tz` has one UTC offset at every local midnight of 2000 to 2100 (and the last
    second): ~37,000 `utcoffset` calls in one C-level pass, ~3 ms."""
    return len(set(map(tz.utcoffset, _local_midnights()))) == 1


def _local_midnights() -> Iterator[datetime]:
    """Every local midnight from 2000-01-01 to 2100-12-31, then the last second of 2100.

    Why a sample a day is enough: a zone's offset is in force for at least a day before it
    changes again (the shortest in tzdata for these years is a week: daylight saving of 8 to 15
    October 2000 in America/Recife, and Ramadan breaks forecast for Asia/Gaza), and 24 hours of
    one offset are 24 wall-clock hours, which hold a midnight. A month would not do: a week like
    Recife's fits between two firsts of a month.
    """
    return chain(accumulate(repeat(_DAY, _DAYS - 1), add, initial=_FIRST_DAY), (_LAST_MOMENT,))


def offset_change(tz: tzinfo, near: datetime) -> OffsetChange | None:
    """The first change of `tz`'s UTC offset between 2000 and 2100 after `near` (else the last
    one before it), to the second; None when the zone keeps one offset."""
    days = list(_local_midnights())
    offsets = list(map(tz.utcoffset, days))
    changed = [i for i, (a, b) in enumerate(pairwise(offsets), 1) if a != b]
    if not changed:
        return None
    local_near = near.astimezone(tz).replace(tzinfo=None)
    i = next((i for i in changed if days[i] > local_near), changed[-1])
    # Between the two midnights, in UTC. A midnight the clocks skip reads with the offset from
    # before the skip, so the search starts a day early and ends a day late.
    lo = (days[i - 1] - (offsets[i - 1] or timedelta(0))).replace(tzinfo=timezone.utc) - _DAY
    hi = (days[i] - (offsets[i] or timedelta(0))).replace(tzinfo=timezone.utc) + _DAY
    before = _offset_at(lo, tz)
    moment = lo
    while moment < hi and _offset_at(moment + HOUR, tz) == before:
        moment += HOUR
    first, last = moment, moment + HOUR  # `before` at first, another offset at last
    while last - first > _SECOND:
        middle = first + (last - first) // 2
        if _offset_at(middle, tz) == before:
            first = middle
        else:
            last = middle
    return OffsetChange(last, before, _offset_at(last, tz))


def _offset_at(moment: datetime, tz: tzinfo) -> timedelta:
    return moment.astimezone(tz).utcoffset() or timedelta(0)


def _refusal(name: str, tz: tzinfo, change: OffsetChange) -> str:
    """Why `name` cannot name the API's hours, with a real hour it would get wrong, and the fix."""
    was = (change.at + change.before).replace(tzinfo=None)  # the clocks' reading at the change
    set_to = (change.at + change.after).replace(tzinfo=None)  # and what they are set to
    step = change.after - change.before
    back = step < timedelta(0)
    way = "back" if back else "forward"
    if abs(step) % HOUR:
        minutes = int(abs(step).total_seconds()) // 60
        harm = (
            f"the hours from {_wall(was)} on would not line up with the API's (its clocks go "
            f"{way} {minutes} minutes"
        )
    else:
        # Back: the hour the clocks return into starts twice. Forward: the first whole hour
        # the clocks skip never starts (the one they jump from, if they jump at its start).
        first = (set_to if back else was + HOUR - _SECOND).replace(minute=0, second=0)
        hours = int(abs(step) / HOUR)
        last = first + (hours - 1) * HOUR
        named = f"the hour {_wall(first)}"
        if hours > 1:
            named = f"the hours {_wall(first)} to {_wall(last, first)}"
        harm = (
            f"{named} would {'be fetched twice' if back else 'never be fetched'} "
            f"(at {_wall(was)} its clocks go {way} to {_wall(set_to, was)}"
        )
    local = change.at.astimezone(tz)
    standard = (local.utcoffset() or timedelta(0)) - (local.dst() or timedelta(0))
    etc = _etc_zone(standard)
    example = (
        f"{etc} is {_utc_offset(standard)}, {name}'s standard time"
        if etc
        else "Etc/GMT-8 is UTC+08:00"
    )
    return (
        "must keep one UTC offset from 2000 to 2100, since the API names its hours yyyymmddhh "
        f"in a zone without daylight saving: in {name} {harm}, "
        f"{_utc_offset(change.before)} to {_utc_offset(change.after)}). Use the zone the API "
        "names its hours in, which keeps one offset: Asia/Shanghai (the default: Tencent's "
        f"hours are Beijing time), UTC, or the Etc/GMT zone of that offset ({example}: the "
        "sign is reversed)"
    )


def _wall(moment: datetime, same_day_as: datetime | None = None) -> str:
    """`2026-11-01 01:00`, or `01:00` on the day of `same_day_as`."""
    if same_day_as is not None and moment.date() == same_day_as.date():
        return moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d %H:%M")


def _utc_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    hours, rest = divmod(abs(minutes), 60)
    return f"UTC{'-' if minutes < 0 else '+'}{hours:02d}:{rest:02d}"


def _etc_zone(offset: timedelta) -> str | None:
    """The `Etc/GMT±N` zone of a whole-hour offset; its sign is POSIX's, the reverse of ISO's."""
    if offset % HOUR or not -12 <= offset / HOUR <= 14:
        return None
    hours = int(offset / HOUR)
    return f"Etc/GMT{-hours:+d}" if hours else "Etc/GMT"


class Window:
    """Whole hours [start, end) in one zone; `begin_time`/`end_time` are what the API is sent.

    Equal and hashed by instants and the zone: two windows of one real range are one key, however
    their ends were written.

    Immutable. Written out rather than a frozen dataclass, whose generated methods are compiled
    from source on every cold start (equality and hashing are its own here anyway).
    """

    start: datetime
    end: datetime

    def __init__(self, start: datetime, end: datetime) -> None:
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if _utc(end) <= _utc(start):
            raise ValueError("window end must be after its start")
        vars(self).update(start=start, end=end)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"a Window is immutable (cannot set {name})")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"a Window is immutable (cannot delete {name})")

    def __repr__(self) -> str:
        return f"Window(start={self.start!r}, end={self.end!r})"

    @cached_property
    def _identity(self) -> tuple[datetime, datetime, str]:
        return _utc(self.start), _utc(self.end), str(self.start.tzinfo)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Window):
            return NotImplemented
        return self._identity == other._identity

    def __hash__(self) -> int:
        return hash(self._identity)

    @classmethod
    def from_api(cls, begin_time: str, end_time: str, tz: tzinfo) -> Window:
        """The API's inclusive `BeginTime`..`EndTime` as a window; ValueError if reversed."""
        start = parse_hour(begin_time, tz)
        last = parse_hour(end_time, tz)
        if last < start:
            raise ValueError(
                f"EndTime {end_time} is before BeginTime {begin_time}; "
                "both hours are included, so one hour is BeginTime = EndTime"
            )
        return cls.through(start, last)

    @classmethod
    def through(cls, first: datetime, last: datetime) -> Window:
        """The hours from `first` through `last`, both included (starts of hours, one zone)."""
        return cls(first, _shift(last, 1))

    @property
    def tz(self) -> tzinfo:
        tz = self.start.tzinfo
        assert tz is not None
        return tz

    @cached_property
    def begin_time(self) -> str:
        return format_hour(self.start)

    @cached_property
    def end_time(self) -> str:
        return format_hour(_shift(self.end, -1))

    @cached_property
    def label(self) -> str:
        """`BeginTime-EndTime`, as keys, ids and reports name the window."""
        return f"{self.begin_time}-{self.end_time}"

    @property
    def hours(self) -> int:
        # Through UTC: Python subtracts two times of one tzinfo as wall clocks.
        return int((self.end.astimezone(timezone.utc) - self.start.astimezone(timezone.utc)) / HOUR)

    def iter_hours(self) -> Iterator[Window]:
        moment = self.start
        while _utc(moment) < _utc(self.end):
            after = _shift(moment, 1)
            yield Window(moment, after)
            moment = after

    def split(self, by: Granularity) -> list[Window]:
        """Hours, or local calendar days clipped to this window."""
        if by == "hour":
            return list(self.iter_hours())
        days: list[Window] = []
        moment = self.start
        while _utc(moment) < _utc(self.end):
            next_day = datetime.combine(
                moment.date() + timedelta(days=1), datetime.min.time(), self.tz
            )
            cut = next_day if _utc(next_day) < _utc(self.end) else self.end
            days.append(Window(moment, cut))
            moment = cut
        return days

    @property
    def local_date(self) -> date:
        return self.start.date()

    @cached_property
    def grain(self) -> Grain:
        """`day` only for a whole local calendar day (00:00 to the next 00:00); a clipped day is
        a `range`."""
        if self.hours == 1:
            return "hour"
        midnight = datetime.combine(self.local_date, datetime.min.time(), self.tz)
        next_midnight = datetime.combine(
            self.local_date + timedelta(days=1), datetime.min.time(), self.tz
        )
        if _utc(self.start) == _utc(midnight) and _utc(self.end) == _utc(next_midnight):
            return "day"
        return "range"

    def __str__(self) -> str:
        return self.label


def _utc(moment: datetime) -> datetime:
    """For ordering by instant: Python compares two times of one tzinfo by wall clock."""
    return moment.astimezone(timezone.utc)


def _shift(moment: datetime, hours: int) -> datetime:
    """Move by real hours (through UTC), landing back in the moment's own zone."""
    tz = moment.tzinfo
    assert tz is not None
    return (moment.astimezone(timezone.utc) + hours * HOUR).astimezone(tz)


def last_full(now: datetime, tz: tzinfo, by: Granularity = "hour", count: int = 1) -> list[Window]:
    """The `count` whole hours (or local days) that ended at or before `now`, oldest first.

    A timer that fires at 19:05 Beijing time collects 18:00-19:00; one that fires at exactly 19:00
    collects the same hour, which has just ended.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if count < 1:
        raise ValueError("count must be at least 1")
    local = now.astimezone(tz)
    if by == "hour":
        end = local.replace(minute=0, second=0, microsecond=0)
        start = _shift(end, -count)
        return Window(start, end).split("hour")
    end_day = local.date()
    start_day = end_day - timedelta(days=count)
    start = datetime.combine(start_day, datetime.min.time(), tz)
    end = datetime.combine(end_day, datetime.min.time(), tz)
    return Window(start, end).split("day")


def isoformat(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")
