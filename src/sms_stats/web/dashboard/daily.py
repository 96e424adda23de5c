"""Days from hours: what the charts draw for a long range.

A month of hours is 744 points per line, two pixels apart at a column's width: noise. Past
`HOURLY_DAYS` days the charts draw one point per local day instead: its sums (a rate from the
day's sums, not an average of hourly rates, so a quiet hour weighs what it sent) and its last
balance. A day with no stored hour has no point (a gap), never a zero; a day with some hours
missing sums those it has, and the page's summary says how many are missing.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import tzinfo

from sms_stats.web.dashboard.data import AppSeries
from sms_stats.web.dashboard.ticks import local_midnights

HOURLY_DAYS = 7  # up to a week, hour by hour (168 points); longer, day by day


@dataclass(frozen=True)
class Day:
    """One local day's sums over the hours stored for it."""

    start: int
    end: int
    send_hours: int = 0
    requests: int = 0
    successes: int = 0
    fee: int = 0
    receipt_hours: int = 0
    callbacks: int = 0
    delivered: int = 0
    balance: int | None = None

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.requests if self.requests else None

    @property
    def delivery_rate(self) -> float | None:
        return self.delivered / self.callbacks if self.callbacks else None


def bounds(lo: int, hi: int, tz: tzinfo) -> list[tuple[int, int]]:
    """The local days over [lo, hi) as (start, end), a daylight-saving day 23 or 25 hours."""
    cuts = [lo, *(t for t in local_midnights(lo, hi, tz) if t > lo), hi]
    return list(itertools.pairwise(cuts))


def by_day(series: AppSeries, days: Sequence[tuple[int, int]]) -> list[Day]:
    """Each day's sums, in order; days without any stored point are left out."""
    starts = [start for start, _end in days]
    send: dict[int, list[int]] = {}  # day -> [hours, requests, successes, fee]
    receipts: dict[int, list[int]] = {}  # day -> [hours, callbacks, delivered]
    balance: dict[int, tuple[int, int]] = {}  # day -> (at, remaining) of its last snapshot

    def slot(t: int) -> int | None:
        n = bisect_right(starts, t) - 1
        return n if n >= 0 and t < days[n][1] else None

    for p in series.send:
        n = slot(p.start)
        if n is not None:
            _add(send.setdefault(n, [0, 0, 0, 0]), (1, p.requests, p.successes, p.fee))
    for r in series.receipts:
        n = slot(r.start)
        if n is not None:
            _add(receipts.setdefault(n, [0, 0, 0]), (1, r.callbacks, r.delivered))
    for b in series.balance:
        n = slot(b.at)
        if n is not None and (n not in balance or b.at >= balance[n][0]):
            balance[n] = (b.at, b.remaining)
    out = []
    for n in sorted({*send, *receipts, *balance}):
        hours, requests, successes, fee = send.get(n, [0, 0, 0, 0])
        receipt_hours, callbacks, delivered = receipts.get(n, [0, 0, 0])
        out.append(
            Day(
                *days[n],
                send_hours=hours,
                requests=requests,
                successes=successes,
                fee=fee,
                receipt_hours=receipt_hours,
                callbacks=callbacks,
                delivered=delivered,
                balance=balance[n][1] if n in balance else None,
            )
        )
    return out


def _add(total: list[int], values: Sequence[int]) -> None:
    for n, value in enumerate(values):
        total[n] += value
