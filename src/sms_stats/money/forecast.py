"""The month's billed parts ahead, and how unusual an hour's volume is: pure arithmetic over an
app's hour history, by hour of the week.

Senders keep hours: business hours and weekends differ tenfold, and a Monday 09:00 is tenfold
its 08:00. A month's average, extrapolated, misses by 5-14% on a Monday morning; so the hours
left in the month are each expected at their own slot of the week (Monday 09:00, Monday
10:00, ...): the mean of that slot's last weeks, each week's figure clipped at three times the
slot's median so one surge does not raise a whole month. A slot the history does not hold yet
(a new deployment) is expected at the average hour known.

An hour's `volume_ratio` is its requests against the median of the same slot in the weeks
before (at least two of the last four): the ordinary rhythm stays near 1, SMS pumping (bots
asking for codes to premium numbers, often at night) shows as a multiple.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta

WEEKS = 4  # how many past weeks of a slot are read
MIN_WEEKS = 2  # fewer known: no usual volume, so no ratio is judged
CLIP = 3.0  # a week's figure counts at most this many times the slot's median

Hours = Mapping[str, tuple[int, int]]  # yyyymmddhh (the store's zone) -> (requests, fee)
REQUESTS, FEE = 0, 1


def moment(label: str) -> datetime:
    """A naive local hour from `yyyymmddhh`: the week's arithmetic needs no zone (zones that
    change offset are refused by the settings)."""
    return datetime(int(label[:4]), int(label[4:6]), int(label[6:8]), int(label[8:10]))


def label_of(hour: datetime) -> str:
    return f"{hour.year:04d}{hour.month:02d}{hour.day:02d}{hour.hour:02d}"


def median(values: list[int]) -> float:
    """The middle value (the mean of the two middle ones): `statistics` would cost every cold
    start its imports (fractions, decimal) for this."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return float(ordered[middle])
    return (ordered[middle - 1] + ordered[middle]) / 2


def _weeks_before(hours: Hours, hour: datetime, field: int) -> list[int]:
    found = []
    for week in range(1, WEEKS + 1):
        held = hours.get(label_of(hour - timedelta(days=7 * week)))
        if held is not None:
            found.append(held[field])
    return found


def usual(hours: Hours, label: str, field: int = REQUESTS) -> float | None:
    """The median of the same hour of the week in the `WEEKS` before `label`; None with fewer
    than `MIN_WEEKS` of them known."""
    found = _weeks_before(hours, moment(label), field)
    return median(found) if len(found) >= MIN_WEEKS else None


def volume_ratio(hours: Hours, label: str, requests: int) -> float | None:
    """`requests` against the hour's usual volume; None when no usual is known. A slot that
    was silent counts as one request, so a surge into silence still shows as a multiple."""
    base = usual(hours, label)
    if base is None:
        return None
    return round(requests / max(base, 1.0), 3)


def _slot_means(hours: Hours, through: datetime) -> dict[tuple[int, int], float]:
    """(weekday, hour) -> the expected billed parts of that slot, from the `WEEKS` weeks up to
    `through` (clipped means)."""
    means: dict[tuple[int, int], float] = {}
    for back in range(7 * 24):
        hour = through - timedelta(hours=back)
        found = [
            h[FEE] for w in range(WEEKS) if (h := hours.get(label_of(hour - timedelta(days=7 * w))))
        ]
        if found:
            cap = CLIP * median(found)
            means[(hour.weekday(), hour.hour)] = sum(min(f, cap) for f in found) / len(found)
    return means


def _slots_after(first: datetime, last: datetime) -> Iterator[tuple[int, int]]:
    """(weekday, hour) of each hour from `first` through `last`, counted, not computed."""
    day, hour = first.weekday(), first.hour
    for _ in range(int((last - first) / timedelta(hours=1)) + 1):
        yield day, hour
        hour += 1
        if hour == 24:
            day, hour = (day + 1) % 7, 0


def month_forecast(hours: Hours, through: str, month_to_date: int, month_last: str) -> int:
    """Billed parts the month will end with: `month_to_date` (through the hour `through`)
    plus each hour left through `month_last` at its slot's expected figure."""
    last_known = moment(through)
    end = moment(month_last)
    if last_known >= end:
        return month_to_date
    means = _slot_means(hours, last_known)
    known = [h[FEE] for h in hours.values()]
    fallback = sum(known) / len(known) if known else 0.0
    ahead = sum(
        means.get(slot, fallback) for slot in _slots_after(last_known + timedelta(hours=1), end)
    )
    return month_to_date + round(ahead)
