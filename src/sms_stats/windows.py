"""Hour windows in the statistics' time zone.

SendStatusStatistics counts whole hours named `yyyymmddhh` in Beijing time (the docs never say
so, hence a setting). A window is a run of whole hours, both ends included as the API reads them;
`window_end` is exclusive. All arithmetic goes through UTC so that a zone with daylight saving
gets hours of real length and the right offsets, and so that month and year ends need no care.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone, tzinfo
from functools import cached_property
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
            f"unknown time zone {name!r}; use an IANA name like 'Asia/Shanghai'"
        ) from exc


def parse_hour(text: str, tz: tzinfo) -> datetime:
    """`yyyymmddhh` -> the aware start of that hour; ValueError names the rule broken."""
    if not isinstance(text, str) or not _HOUR_RE.fullmatch(text):
        raise ValueError(f"must be 10 digits yyyymmddhh, like 2021050113; got {text!r}")
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
    return moment.strftime("%Y%m%d%H")


REPEAT_MARK = "~2"


def is_repeat(moment: datetime) -> bool:
    """True for the second pass of a wall-clock time that a fall-back transition repeats."""
    if not moment.fold:
        return False
    return moment.replace(fold=0).utcoffset() != moment.utcoffset()


def hour_label(moment: datetime) -> str:
    """`yyyymmddhh`, plus `~2` for the second of two hours with the same wall-clock name."""
    return format_hour(moment) + (REPEAT_MARK if is_repeat(moment) else "")


class Window:
    """Whole hours [start, end) in one zone; `begin_time`/`end_time` are what the API is sent.

    Equal and hashed by instants, not wall clocks: Python compares two times of one tzinfo by
    wall clock, so the two 01:00 hours of a fall-back night would otherwise be one dict key.

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
        """`BeginTime-EndTime` as keys, ids and reports name the window: unique, unlike the API's
        two hours. On a fall-back night the repeated wall-clock hour (01:00 EDT, then 01:00 EST
        on 2021-11-07 in America/New_York) is one `yyyymmddhh` for the API, so the second
        occurrence is marked `~2` (`2021110701~2-2021110701~2`): otherwise its record would
        overwrite the first one's and one hour of counts would be lost."""
        return f"{hour_label(self.start)}-{hour_label(_shift(self.end, -1))}"

    @property
    def hours(self) -> int:
        # Through UTC: Python subtracts two times of one tzinfo as wall clocks, ignoring DST.
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
        """`day` only for a whole local calendar day (00:00 to the next 00:00, however many
        hours daylight saving gives it); a clipped day is a `range`."""
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
    """For ordering: Python compares two times of one tzinfo by wall clock, ignoring `fold`, so
    the two 01:00 hours of a fall-back night would look equal."""
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
