"""Deterministic traffic figures for the emulator.

Every answer is a pure function of ``(app_id, hour)`` (and of the surges passed in, see
`Surge`) so a test can predict the numbers the emulator will send without sharing state with
it, and so that re-running a job against the emulator yields byte-identical records (the
idempotency the real pipeline must prove).

Two shapes of traffic:

- **Uniform apps** (every app id but the reserved range below): each hour's requests are a
  hash-drawn 1..2000, about one hour in twelve silent. No rhythm, so nothing in a test depends
  on the time of day.
- **Rhythm apps**: app ids ``1400009000`` to ``1400009099`` are RESERVED for traffic with an
  office rhythm (`RHYTHM_FIRST`..`RHYTHM_LAST`): busy weekday mornings and afternoons, a lunch
  dip, quiet nights, weekends at a third, never a silent hour. They exist so alerts, charts and
  anomaly rules can be tested against a week that looks like a real one (Monday 09:00 is ten
  times 08:00 and three times Sunday 09:00). Do not use ids in this range for tests that need
  the uniform figures.

A `Surge` multiplies one app's sends over some hours (a campaign, a runaway loop): the
emulator passes the surges registered on it, tests pass the same ones to predict its answers.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

HOUR_DIGITS = 10
"""``yyyymmddhh``: the API's hour precision, nothing finer."""

MAX_RANGE_HOURS = 31 * 24
"""The emulator refuses ranges longer than 31 days (744 hours, both ends included).

The public docs give no cap; a cap exists so a client bug (e.g. a swapped year) surfaces as an
``EndTimeVerifyFail`` instead of a silent multi-year sum.
"""

_ONE_HOUR = timedelta(hours=1)
_ZERO_TRAFFIC_ONE_IN = 12


def parse_hour(value: str) -> datetime:
    """Parse ``yyyymmddhh`` strictly.

    ``strptime`` is avoided on purpose: it accepts single-digit fields and non-ASCII digits,
    which would let malformed times through that the real API rejects.
    """
    if len(value) != HOUR_DIGITS or not value.isascii() or not value.isdigit():
        raise ValueError(f"expected 10 digits yyyymmddhh, got {value!r}")
    return datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[8:10]))


def format_hour(moment: datetime) -> str:
    return moment.strftime("%Y%m%d%H")


def hours_between(begin: str, end: str) -> list[str]:
    """Every hour from ``begin`` to ``end``, both included (the API's current semantics)."""
    first, last = parse_hour(begin), parse_hour(end)
    if last < first:
        raise ValueError(f"end {end} is before begin {begin}")
    hours: list[str] = []
    moment = first
    while moment <= last:
        hours.append(format_hour(moment))
        moment += _ONE_HOUR
    return hours


def range_hours(begin: str, end: str) -> int:
    """How many hours an inclusive range covers, without materialising them."""
    span = parse_hour(end) - parse_hour(begin)
    return int(span.total_seconds() // 3600) + 1


RHYTHM_FIRST = 1400009000
RHYTHM_LAST = 1400009099
"""The reserved range of rhythm apps, both ends included (see the module docstring)."""

WEEKDAY_WEIGHTS: tuple[float, ...] = (
    *(0.04,) * 7,  # 00-06: night, a trickle of verification codes
    0.06,  # 07
    0.10,  # 08
    *(1.0,) * 3,  # 09-11: the morning peak
    *(0.7,) * 2,  # 12-13: lunch
    *(0.95,) * 4,  # 14-17: the afternoon
    0.5,  # 18
    *(0.3,) * 2,  # 19-20
    *(0.1,) * 3,  # 21-23
)
"""A rhythm app's share of its base rate in each hour (00..23) of a weekday, Monday to Friday."""

WEEKEND_SHARE = 1 / 3
"""Saturday and Sunday send this share of the same weekday hour."""

RHYTHM_BASE = 2000
RHYTHM_BASE_STEP = 37
"""A rhythm app's base rate: RHYTHM_BASE + RHYTHM_BASE_STEP x its id's last two digits, so the
apps of the range differ (2000 to 5663 requests in a peak hour)."""

RHYTHM_NOISE = 0.08
"""Each hour's requests are base x weight x (1 +- up to this), drawn from the hash."""

_NOISE_STEPS = 65535
_RATIO_SCALE = 10_000


def is_rhythm_app(app_id: str) -> bool:
    """Whether ``app_id`` is in the reserved range that sends with an office rhythm."""
    return app_id.isascii() and app_id.isdigit() and RHYTHM_FIRST <= int(app_id) <= RHYTHM_LAST


def rhythm_weight(hour: str) -> float:
    """The weight of a ``yyyymmddhh`` hour: it is a Beijing hour already (the API's hours are
    Asia/Shanghai), so the weekday and hour of the day come straight from the string."""
    moment = parse_hour(hour)
    weight = WEEKDAY_WEIGHTS[moment.hour]
    return weight * WEEKEND_SHARE if moment.weekday() >= 5 else weight


def rhythm_base(app_id: str) -> int:
    return RHYTHM_BASE + RHYTHM_BASE_STEP * (int(app_id) % 100)


@dataclass(frozen=True)
class Surge:
    """One app's sends times ``factor`` for ``hours`` hours from ``begin`` (``yyyymmddhh``,
    Beijing): a campaign or a runaway loop, which alerts must notice.

    Requests, successes and billed parts are each multiplied and rounded, so the invariants of
    `hour_counts` hold (rounding never reverses an order); a silent hour stays silent. A factor
    below 1 makes a dip; surges that overlap multiply. ``end`` is the first hour after it.
    """

    app_id: str
    begin: str
    hours: int
    factor: float
    end: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not (len(self.app_id) == 10 and self.app_id.isascii() and self.app_id.isdigit()):
            raise ValueError(f"app id must be 10 digits (1400xxxxxx), got {self.app_id!r}")
        first = parse_hour(self.begin)
        if type(self.hours) is not int or self.hours < 1:
            raise ValueError(f"hours must be an integer >= 1, got {self.hours!r}")
        factor = float(self.factor)
        if not (math.isfinite(factor) and factor >= 0):
            raise ValueError(f"factor must be a finite number >= 0, got {self.factor!r}")
        try:
            end = format_hour(first + self.hours * _ONE_HOUR)
        except OverflowError:
            message = f"{self.hours} hours from {self.begin} run past the year 9999"
            raise ValueError(message) from None
        object.__setattr__(self, "factor", factor)
        object.__setattr__(self, "end", end)

    def covers(self, app_id: str, hour: str) -> bool:
        # same-width digit strings order like the hours they name
        return app_id == self.app_id and self.begin <= hour < self.end


def surge_factor(app_id: str, hour: str, surges: Sequence[Surge] = ()) -> float:
    """What the surges make of this app's hour: 1.0 when none covers it."""
    factor = 1.0
    for surge in surges:
        if surge.covers(app_id, hour):
            factor *= surge.factor
    return factor


def hour_counts(app_id: str, hour: str, surges: Sequence[Surge] = ()) -> dict[str, int]:
    """Counts for one hour, shaped like real traffic so edge cases show up in tests.

    Uniform apps: about one hour in twelve is silent (zero requests: a client must not divide
    by it); a few percent of submissions fail; long messages bill extra parts, so FeeCount >=
    successes. Rhythm apps (`is_rhythm_app`): see `_rhythm_counts`. Then ``surges`` scale it.
    """
    parse_hour(hour)
    if is_rhythm_app(app_id):
        figures = _rhythm_counts(app_id, hour)
    else:
        figures = _uniform_counts(app_id, hour)
    factor = surge_factor(app_id, hour, surges)
    if factor == 1.0:
        return figures
    return {name: round(value * factor) for name, value in figures.items()}


def _uniform_counts(app_id: str, hour: str) -> dict[str, int]:
    """Unchanged since the first emulator: many tests pin these exact figures."""
    digest = hashlib.sha256(f"{app_id}:{hour}".encode()).digest()
    if digest[0] % _ZERO_TRAFFIC_ONE_IN == 0:
        return {"RequestCount": 0, "RequestSuccessCount": 0, "FeeCount": 0}
    requests = 1 + int.from_bytes(digest[1:3], "big") % 2000
    failed = int.from_bytes(digest[3:5], "big") % (requests // 20 + 1)
    success = requests - failed
    extra_parts = int.from_bytes(digest[5:7], "big") % (success // 4 + 1)
    return {
        "RequestCount": requests,
        "RequestSuccessCount": success,
        "FeeCount": success + extra_parts,
    }


def _rhythm_counts(app_id: str, hour: str) -> dict[str, int]:
    """round(base x weight x noise) requests, noise within +-8 %; 97-99 % of them accepted;
    5-15 % extra billed parts. The quietest hour (a weekend night) still has ~24 requests."""
    digest = hashlib.sha256(f"rhythm:{app_id}:{hour}".encode()).digest()
    unit = int.from_bytes(digest[0:2], "big") / _NOISE_STEPS  # 0..1
    noise = 1 + RHYTHM_NOISE * (2 * unit - 1)
    requests = round(rhythm_base(app_id) * rhythm_weight(hour) * noise)
    accepted = 9700 + int.from_bytes(digest[2:4], "big") % 201  # 97.00..99.00 %
    success = requests * accepted // _RATIO_SCALE
    extra = 500 + int.from_bytes(digest[4:6], "big") % 1001  # 5.00..15.00 %
    return {
        "RequestCount": requests,
        "RequestSuccessCount": success,
        "FeeCount": success + success * extra // _RATIO_SCALE,
    }


def range_counts(app_id: str, begin: str, end: str, surges: Sequence[Surge] = ()) -> dict[str, int]:
    """A range is the plain sum of its hours, so any split of a range adds back up."""
    total = {"RequestCount": 0, "RequestSuccessCount": 0, "FeeCount": 0}
    for hour in hours_between(begin, end):
        for key, value in hour_counts(app_id, hour, surges).items():
            total[key] += value
    return total


# -- delivery receipts (CallbackStatusStatistics) ------------------------------------------

API_ZONE = timezone(timedelta(hours=8), "Asia/Shanghai")
"""The zone the emulator reads ``yyyymmddhh`` in, to tell how long ago an hour ended.

Beijing time, as the real service is believed to use; a fixed offset (China has had no DST
since 1991) so the standard library needs no tz database.
"""

CALLBACK_MAX_SPAN = timedelta(days=32)
"""CallbackStatusStatistics: "EndTime >= BeginTime, and they differ by no more than 32 days"
(the 2021-01-11 API text). Read literally: ``EndTime - BeginTime <= 32 days``."""

SETTLE_AFTER = timedelta(hours=6)
"""Every receipt that will ever arrive for an hour has arrived this long after the hour ended."""

SETTLED_AT_ONCE = (4, 5)
"""The share of an hour's eventual receipts already there when the hour ends: 4/5 (80 %)."""

CALLBACK_REASONS = (
    "InternalErrorCount",
    "InvalidNumberCount",
    "ShutdownErrorCount",
    "BlackListCount",
    "FrequencyLimitCount",
)


def hour_start(hour: str) -> datetime:
    """The instant an API hour begins (an aware datetime in `API_ZONE`)."""
    return parse_hour(hour).replace(tzinfo=API_ZONE)


def settled_share(
    hour: str, now: datetime, settle_after: timedelta = SETTLE_AFTER
) -> tuple[int, int]:
    """The share (numerator, denominator) of an hour's receipts that have arrived by ``now``.

    80 % the moment the hour ends (and for an hour not yet over), growing linearly to 100 %
    at ``settle_after``; all of them at once when ``settle_after`` is zero (a steady account,
    whose stored hours never change). Integer arithmetic, so each count only grows with ``now``.
    """
    ended = hour_start(hour) + _ONE_HOUR
    age = int((aware(now) - ended).total_seconds())
    span = int(settle_after.total_seconds())
    if span <= 0:
        return (1, 1) if age >= 0 else SETTLED_AT_ONCE
    at_once, whole = SETTLED_AT_ONCE
    elapsed = min(max(age, 0), span)
    # at_once/whole + (1 - at_once/whole) * elapsed/span, over one denominator
    return at_once * span + (whole - at_once) * elapsed, whole * span


def final_callback_counts(app_id: str, hour: str, surges: Sequence[Surge] = ()) -> dict[str, int]:
    """The receipts an hour ends up with once all have arrived.

    A few receipts never come back (CallbackCount <= RequestSuccessCount even when settled);
    a few percent of those that come are failures, split over the five reasons. Derived from
    the hour's accepted submissions, so receipts follow the sends of every kind of app and of
    a surge.
    """
    success_submits = hour_counts(app_id, hour, surges)["RequestSuccessCount"]
    digest = hashlib.sha256(f"callback:{app_id}:{hour}".encode()).digest()
    never = int.from_bytes(digest[0:2], "big") % (success_submits // 50 + 1)
    callbacks = success_submits - never
    failed = int.from_bytes(digest[2:4], "big") % (callbacks // 8 + 1)
    reasons: dict[str, int] = {}
    left = failed
    for index, name in enumerate(CALLBACK_REASONS[:-1]):
        share = int.from_bytes(digest[4 + 2 * index : 6 + 2 * index], "big") % (left + 1)
        reasons[name] = share
        left -= share
    reasons[CALLBACK_REASONS[-1]] = left
    return {"CallbackSuccessCount": callbacks - failed, **reasons}


def hour_callback_counts(
    app_id: str,
    hour: str,
    now: datetime,
    settle_after: timedelta = SETTLE_AFTER,
    late: int = 0,
    surges: Sequence[Surge] = (),
) -> dict[str, int]:
    """One hour's receipts as the API answers them at ``now``, in the SDK model's field order.

    Every part (successes and each reason) settles by the same share, rounded down; the
    totals are their sums, so CallbackSuccessCount + CallbackFailCount == CallbackCount and
    the reasons add up to CallbackFailCount at every moment. ``late`` receipts (successes)
    arrived after the hour had settled: what a test sets to change one stored hour.
    """
    numerator, denominator = settled_share(hour, now, settle_after)
    final = final_callback_counts(app_id, hour, surges)
    settled = {name: value * numerator // denominator for name, value in final.items()}
    settled["CallbackSuccessCount"] += late
    fail = sum(settled[name] for name in CALLBACK_REASONS)
    success = settled["CallbackSuccessCount"]
    return {
        "CallbackCount": success + fail,
        "RequestSuccessCount": hour_counts(app_id, hour, surges)["RequestSuccessCount"],
        "CallbackFailCount": fail,
        "CallbackSuccessCount": success,
        **{name: settled[name] for name in CALLBACK_REASONS},
    }


def range_callback_counts(
    app_id: str,
    begin: str,
    end: str,
    now: datetime,
    settle_after: timedelta = SETTLE_AFTER,
    late: Mapping[tuple[str, str], int] | None = None,
    surges: Sequence[Surge] = (),
) -> dict[str, int]:
    """A range is the plain sum of its hours, each settled as far as ``now`` allows."""
    total: dict[str, int] = {}
    extra = late or {}
    for hour in hours_between(begin, end):
        counts = hour_callback_counts(
            app_id, hour, now, settle_after, extra.get((app_id, hour), 0), surges
        )
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


def aware(moment: datetime) -> datetime:
    """A naive clock reading is taken as UTC, the SCF runtime's clock."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
