"""Deterministic traffic figures for the emulator.

Every answer is a pure function of ``(app_id, hour)`` so a test can predict the numbers the
emulator will send without sharing state with it, and so that re-running a job against the
emulator yields byte-identical records (the idempotency the real pipeline must prove).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
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


def hour_counts(app_id: str, hour: str) -> dict[str, int]:
    """Counts for one hour, shaped like real traffic so edge cases show up in tests.

    About one hour in twelve is silent (zero requests: a client must not divide by it); a few
    percent of submissions fail; long messages bill extra parts, so FeeCount >= successes.
    """
    parse_hour(hour)
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


def range_counts(app_id: str, begin: str, end: str) -> dict[str, int]:
    """A range is the plain sum of its hours, so any split of a range adds back up."""
    total = {"RequestCount": 0, "RequestSuccessCount": 0, "FeeCount": 0}
    for hour in hours_between(begin, end):
        for key, value in hour_counts(app_id, hour).items():
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


def final_callback_counts(app_id: str, hour: str) -> dict[str, int]:
    """The receipts an hour ends up with once all have arrived.

    A few receipts never come back (CallbackCount <= RequestSuccessCount even when settled);
    a few percent of those that come are failures, split over the five reasons.
    """
    success_submits = hour_counts(app_id, hour)["RequestSuccessCount"]
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
) -> dict[str, int]:
    """One hour's receipts as the API answers them at ``now``, in the SDK model's field order.

    Every part (successes and each reason) settles by the same share, rounded down; the
    totals are their sums, so CallbackSuccessCount + CallbackFailCount == CallbackCount and
    the reasons add up to CallbackFailCount at every moment. ``late`` receipts (successes)
    arrived after the hour had settled: what a test sets to change one stored hour.
    """
    numerator, denominator = settled_share(hour, now, settle_after)
    final = final_callback_counts(app_id, hour)
    settled = {name: value * numerator // denominator for name, value in final.items()}
    settled["CallbackSuccessCount"] += late
    fail = sum(settled[name] for name in CALLBACK_REASONS)
    success = settled["CallbackSuccessCount"]
    return {
        "CallbackCount": success + fail,
        "RequestSuccessCount": hour_counts(app_id, hour)["RequestSuccessCount"],
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
) -> dict[str, int]:
    """A range is the plain sum of its hours, each settled as far as ``now`` allows."""
    total: dict[str, int] = {}
    extra = late or {}
    for hour in hours_between(begin, end):
        counts = hour_callback_counts(app_id, hour, now, settle_after, extra.get((app_id, hour), 0))
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


def aware(moment: datetime) -> datetime:
    """A naive clock reading is taken as UTC, the SCF runtime's clock."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)
