"""How far the month's forecast is from the month's real total, day by day (issue 27).

For a rhythm app of the local stand-in (1400009042: business hours tenfold the night, weekends
a third), every hour of a month is forecast the way a timer run does (`money.forecast`), with
the four weeks before the month known (a deployment that has run for a while) and with nothing
known before the 1st (deployed that day). Printed per day: the worst and the mean absolute
error of that day's 24 forecasts against the month's total, and the same for the month's
average extrapolated (what the forecast is there to beat). Pure arithmetic on the stand-in's
figures: no server, no store; it takes about a second.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src")]

from sms_stats.core.windows import format_hour as label_of
from sms_stats.emulator import Emulator
from sms_stats.money.forecast import month_forecast

APP = "1400009042"


def by_day(year: int, month: int, weeks_known: int) -> list[tuple[int, float, float, float, float]]:
    """(day, worst, mean, naive worst, naive mean) absolute errors, as fractions."""
    first = datetime(year, month, 1)
    last = (first + timedelta(days=32)).replace(day=1) - timedelta(hours=1)
    span = int((last - first) / timedelta(hours=1)) + 1
    hour = first - timedelta(weeks=weeks_known)
    figures: dict[str, tuple[int, int]] = {}
    while hour <= last:
        counts = Emulator.counts(APP, label_of(hour))
        figures[label_of(hour)] = (counts["RequestCount"], counts["FeeCount"])
        hour += timedelta(hours=1)
    total = sum(figures[label_of(first + timedelta(hours=h))][1] for h in range(span))
    known = {k: v for k, v in figures.items() if k < label_of(first)}
    rows: dict[int, list[tuple[float, float]]] = {}
    to_date = 0
    for h in range(span):
        hour = first + timedelta(hours=h)
        label = label_of(hour)
        known[label] = figures[label]
        to_date += figures[label][1]
        forecast = month_forecast(known, label, to_date, label_of(last))
        naive = to_date / (h + 1) * span
        rows.setdefault(hour.day, []).append(
            (abs(forecast - total) / total, abs(naive - total) / total)
        )
    return [
        (
            day,
            max(e for e, _ in errs),
            sum(e for e, _ in errs) / len(errs),
            max(n for _, n in errs),
            sum(n for _, n in errs) / len(errs),
        )
        for day, errs in sorted(rows.items())
    ]


def table(year: int = 2026, month: int = 3) -> str:
    """README's table: the forecast's error by day, with four weeks known and with none."""
    with_weeks = by_day(year, month, 4)
    fresh = by_day(year, month, 0)
    lines = [
        "| day | forecast, 4 weeks known: worst / mean | deployed on the 1st: worst / mean "
        "| month's average extrapolated: worst / mean |",
        "|---:|---:|---:|---:|",
    ]
    for (day, worst, mean, nworst, nmean), (_, fworst, fmean, _, _) in zip(
        with_weeks, fresh, strict=True
    ):
        lines.append(
            f"| {day} | {worst:.1%} / {mean:.1%} | {fworst:.1%} / {fmean:.1%} "
            f"| {nworst:.1%} / {nmean:.1%} |"
        )
    return "\n".join(lines)


def worst_from(day: int, year: int = 2026, month: int = 3) -> tuple[float, float]:
    """The worst error of any hour from `day` on: (4 weeks known, deployed on the 1st)."""
    known = max(row[1] for row in by_day(year, month, 4) if row[0] >= day)
    fresh = max(row[1] for row in by_day(year, month, 0) if row[0] >= day)
    return known, fresh


if __name__ == "__main__":
    print(f"Forecast of app {APP}'s billed parts for March 2026 (31 days), error by day:\n")
    print(table())
