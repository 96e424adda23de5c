"""Deterministic traffic figures for the emulator.

Every answer is a pure function of ``(app_id, hour)`` so a test can predict the numbers the
emulator will send without sharing state with it, and so that re-running a job against the
emulator yields byte-identical records (the idempotency the real pipeline must prove).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

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
