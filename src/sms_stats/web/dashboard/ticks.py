"""Axis ticks a person can read: chosen for the width a chart is drawn at, never overlapping,
never cut by the chart's edge.

The server cannot measure text, so widths are estimated from the advance widths of DejaVu Sans
(Verdana's metrics, the widest of the common sans-serif faces a browser falls back to), plus a
margin: a label that fits by this estimate fits in any narrower face. A character this table
does not know counts as a full em (a CJK character is one).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

MARGIN = 1.08  # over the table: hinting and a face a little wider than DejaVu Sans
GAP_EM = 0.8  # the least room between two labels on one axis
_WIDTHS = {  # advance width in em, DejaVu Sans Book
    **dict.fromkeys("0123456789", 0.637),
    " ": 0.318,
    ",": 0.318,
    ".": 0.318,
    ":": 0.337,
    "%": 0.950,
    "-": 0.361,
    "\u2013": 0.500,
    "(": 0.391,
    ")": 0.391,
    "/": 0.337,
    **dict.fromkeys("ABCDEFGHKNOPQRSUVXYZ", 0.790),
    **dict.fromkeys("IJ", 0.300),
    "L": 0.557,
    "T": 0.611,
    "M": 0.863,
    "W": 0.989,
    **dict.fromkeys("abcdeghknopqsuvxyz", 0.635),
    **dict.fromkeys("fijlrt", 0.411),
    "m": 0.974,
    "w": 0.818,
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
HOUR = 3600


def text_width(text: str, size: float) -> float:
    """A conservative width of `text` at font size `size`, in the same units."""
    return sum(_WIDTHS.get(ch, 1.0) for ch in text) * size * MARGIN


# -- y: counts and rates ----------------------------------------------------------------------


@dataclass(frozen=True)
class Scale:
    """A value axis: its ends (what the plot's bottom and top mean) and the ticks between."""

    low: float
    high: float
    ticks: tuple[float, ...]
    labels: tuple[str, ...]


def nice_step(span: float, most: int, factors: Sequence[float] = (1, 2, 2.5, 5)) -> float:
    """The smallest step of a factor times a power of ten giving at most `most` steps."""
    raw = span / max(most, 1)
    power = 10.0 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    for factor in (*factors, 10):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def count_scale(values: Sequence[float], marks: Sequence[float] = (), most: int = 5) -> Scale:
    """From zero to a round number at or above the largest value or threshold (`marks`): a
    count's size is read against zero, so zero is always the bottom. A threshold is never
    drawn on the top edge, where it would hide."""
    top = max([*values, *marks], default=0.0)
    if top <= 0:
        top = 1.0
    step = max(nice_step(top, most), 1.0)  # counts are whole: no tick at 0.2 messages
    steps = math.ceil(top / step - 1e-9)
    if any(abs(m - steps * step) < 1e-9 for m in marks):
        steps += 1
    ticks = tuple(round(n * step, 9) for n in range(steps + 1))
    return Scale(0.0, ticks[-1], ticks, tuple(count_label(t, step, ticks[-1]) for t in ticks))


def count_label(value: float, step: float, top: float) -> str:
    """`1,500` while the axis stays below ten thousand, then `250k` or `1.5M` by its top (one
    unit per axis, short labels), with the decimals a tick needs (`2.5k`, `5k`)."""
    if value == 0:
        return "0"
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if top >= max(size, 10_000):
            return f"{value / size:,.{_decimals(value / size)}f}{suffix}"
    return f"{value:,.{_decimals(step)}f}"


def _decimals(step: float) -> int:
    """Decimals that tell ticks `step` apart (0.5 needs one, 0.25 two, 2 none)."""
    for decimals in range(4):
        if abs(step * 10**decimals - round(step * 10**decimals)) < 1e-6:
            return decimals
    return 3


RATE_SPAN = 0.05  # the least a rate axis spans: a flat 99.9% is not magnified into noise


def rate_scale(values: Sequence[float], marks: Sequence[float] = (), most: int = 5) -> Scale:
    """Where the rates and the thresholds drawn with them (`marks`) are, at least `RATE_SPAN`
    wide, within 0..100%: a rate near 100% extends the axis down, never past 100%. A threshold
    is never drawn on an edge (the axis line would hide it): the axis goes a step further."""
    both = [*values, *marks]
    if not values:  # nothing to draw: the whole range, thresholds within it
        low, high = 0.0, 1.0
    else:
        low, high = max(min(both), 0.0), min(max(both), 1.0)
        if high - low < RATE_SPAN:
            low = high - RATE_SPAN
            if low < 0:
                low, high = 0.0, RATE_SPAN
    step = nice_step(high - low, most, (1, 2, 5))  # 2.5 would give 87.5%, 92.5%
    while True:
        first = math.floor(low / step + 1e-9)
        last = math.ceil(high / step - 1e-9)
        if any(abs(m - first * step) < 1e-9 for m in marks) and first > 0:
            first -= 1
        if any(abs(m - last * step) < 1e-9 for m in marks) and last * step < 1 - 1e-9:
            last += 1
        if last - first <= most:
            break
        step = nice_step(step * 1.01, 1, (1, 2, 5))  # rounding out added a step: the next
    ticks = tuple(round(n * step, 9) for n in range(first, last + 1))
    ticks = tuple(t for t in ticks if -1e-9 <= t <= 1 + 1e-9)
    decimals = _decimals(step * 100)
    labels = tuple(f"{t * 100:.{decimals}f}%" for t in ticks)
    return Scale(ticks[0], ticks[-1], ticks, labels)


# -- x: time -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """A tick label: where it stands (its centre, before it is kept inside the chart) and
    its text."""

    at: float
    text: str


def date_text(moment: datetime, weekday: bool = False) -> str:
    """`May 3`, or `Mon May 3`: no leading zeros, no locale (the server's locale is not the
    reader's)."""
    short = f"{MONTHS[moment.month - 1]} {moment.day}"
    return f"{WEEKDAYS[moment.weekday()]} {short}" if weekday else short


def when(moment: datetime, tz: tzinfo, now: datetime) -> str:
    """A moment as a person reads it in the store's zone: `May 3 13:05`, the year added when
    it is not this year's."""
    local = moment.astimezone(tz)
    text = f"{date_text(local)} {local:%H:%M}"
    return text if local.year == now.astimezone(tz).year else f"{text}, {local.year}"


def local_midnights(lo: int, hi: int, tz: tzinfo) -> list[int]:
    """Unix times of the local midnights in [lo, hi): day boundaries in the store's zone,
    found by the calendar, so a daylight-saving day is 23 or 25 hours wide."""
    found: list[int] = []
    day = datetime.fromtimestamp(lo, tz).date()
    while True:
        moment = datetime(day.year, day.month, day.day, tzinfo=tz).astimezone(timezone.utc)
        t = int(moment.timestamp())
        if t >= hi:
            return found
        if t >= lo:
            found.append(t)
        day += timedelta(days=1)


def hour_candidates(lo: int, hi: int, tz: tzinfo) -> list[list[tuple[int, str]]]:
    """Tick sets for an hourly axis, finest first: every 1, 2, 3, 6 or 12 local hours (a
    midnight named by its date), then every 1, 2 or 7 days at midnight."""
    locals_ = [(t, datetime.fromtimestamp(t, tz)) for t in range(lo, hi, HOUR)]  # lo: midnight
    on_hour = [(t, m) for t, m in locals_ if m.minute == 0]
    out: list[list[tuple[int, str]]] = []
    for step in (1, 2, 3, 6, 12):
        out.append(
            [
                (t, date_text(m) if m.hour == 0 else f"{m.hour:02d}:00")
                for t, m in on_hour
                if m.hour % step == 0
            ]
        )
    midnights = local_midnights(lo, hi, tz)
    for weekday in (True, False):
        out.append([(t, date_text(datetime.fromtimestamp(t, tz), weekday)) for t in midnights])
    for every in (2, 7, 14):
        out.append([(t, date_text(datetime.fromtimestamp(t, tz))) for t in midnights[::every]])
    return out


def day_candidates(days: Sequence[tuple[int, datetime]]) -> list[list[tuple[int, str]]]:
    """Tick sets for a daily axis (one point per day, at `days`' positions), finest first:
    every day, every 2, 3, 7 or 14 days, counted back from the last day so that today is
    always named."""
    out: list[list[tuple[int, str]]] = []
    for weekday in (True, False):
        out.append([(at, date_text(day, weekday)) for at, day in days])
    for every in (2, 3, 7, 14):
        out.append([(at, date_text(day)) for at, day in days[::-1][::every][::-1]])
    return out


def fit(
    candidates: Sequence[Sequence[tuple[float, str]]],
    left: float,
    right: float,
    size: float,
) -> list[Placed]:
    """The first candidate whose labels, each centred on its tick (an edge label moved
    inward so it is not cut), all fit between `left` and `right` without overlapping; the
    last candidate thinned until it does."""
    for n, tick_set in enumerate(candidates):
        placed = [_place(at, text, left, right, size) for at, text in tick_set]
        if _clear(placed, size) or n == len(candidates) - 1:
            return _thin(placed, size)
    return []


@dataclass(frozen=True)
class Placed:
    """A label as drawn: its tick, where its text is anchored and how, and the room it takes."""

    tick: float
    x: float
    anchor: str  # SVG text-anchor: middle, or start/end for a label moved inside an edge
    text: str
    left: float
    right: float


def _place(at: float, text: str, left: float, right: float, size: float) -> Placed:
    width = text_width(text, size)
    if at - width / 2 < left:
        return Placed(at, left, "start", text, left, left + width)
    if at + width / 2 > right:
        return Placed(at, right, "end", text, right - width, right)
    return Placed(at, at, "middle", text, at - width / 2, at + width / 2)


def _clear(placed: Sequence[Placed], size: float) -> bool:
    gap = GAP_EM * size
    return all(b.left - a.right >= gap for a, b in itertools.pairwise(placed))


def _thin(placed: Sequence[Placed], size: float) -> list[Placed]:
    """Left to right, each label that clears the one kept before it."""
    kept: list[Placed] = []
    for label in placed:
        if not kept or label.left - kept[-1].right >= GAP_EM * size:
            kept.append(label)
    return kept
