"""The month's billed parts ahead, and how unusual an hour's volume is: pure arithmetic over an
app's hour history, by hour of the week.

Senders keep hours: business hours and weekends differ tenfold, and a Monday 09:00 is tenfold
its 08:00. A month's average, extrapolated, misses by 5-14% on a Monday morning; so the hours
left in the month are each expected at their own slot of the week (Monday 09:00, Monday
10:00, ...): the mean of that slot's last weeks, each week's figure clipped at three times the
slot's median so one surge does not raise a whole month. A slot the history does not hold yet
(a new deployment) is expected at the average hour known.

An hour's `volume_ratio` is its requests against what is usual for it: the top of the same
slot's usual range in the weeks before (at least two of the last four: their median plus three
times their median absolute deviation), and never less than the app's median hour of the week
before. A steady rhythm's range is narrow, so its ordinary hours stay near 1 and SMS pumping
(bots asking for codes to premium numbers, often at night) shows as a multiple; an app whose
hours swing widely has a wide range, and a quiet hour rising to an ordinary one's volume is no
surge (against the slot's median alone, the stand-in's uniformly random apps "surged" five
times a month).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta

from sms_stats.core.windows import format_hour

WEEKS = 4  # how many past weeks of a slot are read
MIN_WEEKS = 2  # fewer known: no usual volume, so no ratio is judged
SPREAD = 3.0  # the usual range's top: the median plus this many median absolute deviations
CLIP = 3.0  # a week's figure counts at most this many times the slot's median
SLOTS = 7 * 24  # the hours of a week

Hours = Mapping[str, tuple[int, int]]  # yyyymmddhh (the store's zone) -> (requests, fee)
REQUESTS, FEE = 0, 1


def moment(label: str) -> datetime:
    """A naive local hour from `yyyymmddhh`: the week's arithmetic needs no zone (zones that
    change offset are refused by the settings)."""
    return datetime(int(label[:4]), int(label[4:6]), int(label[6:8]), int(label[8:10]))


def median(values: list[float] | list[int]) -> float:
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
        held = hours.get(format_hour(hour - timedelta(days=7 * week)))
        if held is not None:
            found.append(held[field])
    return found


def usual(hours: Hours, label: str, field: int = REQUESTS) -> float | None:
    """The top of the usual range of the same hour of the week in the `WEEKS` before `label`
    (median + `SPREAD` median absolute deviations); None with fewer than `MIN_WEEKS` known."""
    found = _weeks_before(hours, moment(label), field)
    if len(found) < MIN_WEEKS:
        return None
    middle = median(found)
    return middle + SPREAD * median([abs(f - middle) for f in found])


def typical_hour(hours: Hours, label: str) -> float:
    """The median requests of the hours held in the week before `label` (0 with none)."""
    hour = moment(label)
    week = (hours.get(format_hour(hour - timedelta(hours=back))) for back in range(1, SLOTS + 1))
    found = [held[REQUESTS] for held in week if held is not None]
    return median(found) if found else 0.0


def volume_ratio(hours: Hours, label: str, requests: int) -> float | None:
    """`requests` against what is usual for the hour (see the module docstring); None when the
    slot's usual range is not known. At least one request: a surge into a silent app still
    shows as a multiple."""
    base = usual(hours, label)
    if base is None:
        return None
    return round(requests / max(base, typical_hour(hours, label), 1.0), 3)


def _slot_means(hours: Hours, through: datetime) -> dict[int, float]:
    """Slot of the week (weekday x 24 + hour) -> the expected billed parts of that slot, from
    the `WEEKS` weeks up to `through` (clipped means). One pass over the hours held: labels
    compare as text, and a day's weekday is worked out once."""
    first = format_hour(through - timedelta(weeks=WEEKS) + timedelta(hours=1))
    last = format_hour(through)
    weekday: dict[str, int] = {}
    by_slot: dict[int, list[int]] = {}
    for label, held in hours.items():
        if first <= label <= last:
            day = label[:8]
            found = weekday.get(day)
            if found is None:
                found = weekday[day] = date(int(day[:4]), int(day[4:6]), int(day[6:])).weekday()
            by_slot.setdefault(found * 24 + int(label[8:]), []).append(held[FEE])
    means: dict[int, float] = {}
    for slot, figures in by_slot.items():
        cap = CLIP * median(figures)
        means[slot] = sum(min(f, cap) for f in figures) / len(figures)
    return means


def _slot_counts(first: datetime, hours: int) -> Iterator[tuple[int, int]]:
    """(slot, how many of the `hours` from `first` fall in it): a month ahead is at most five
    of each slot, counted rather than walked hour by hour."""
    start = first.weekday() * 24 + first.hour
    weeks, rest = divmod(hours, SLOTS)
    for slot in range(SLOTS):
        times = weeks + (1 if (slot - start) % SLOTS < rest else 0)
        if times:
            yield slot, times


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
    left = int((end - last_known) / timedelta(hours=1))
    slots = _slot_counts(last_known + timedelta(hours=1), left)
    ahead = sum(times * means.get(slot, fallback) for slot, times in slots)
    return month_to_date + round(ahead)
