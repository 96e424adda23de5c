"""Inline SVG charts: drawn on the server as text, so the page needs no script, no library and
nothing the Content-Security-Policy would have to let in.

Each chart is drawn twice, for the two widths it is designed for (`VARIANTS`): a wide one for
a column of ~600 px and a narrow one for a phone's ~340 px; the page's style shows one of them
by the screen's width. Each scales to its container (a viewBox, width 100%), and inside one
variant every label was placed by its estimated width (see `ticks`): scaling moves nothing
relative to anything else, so what does not overlap or stick out at one width does not at any.

x is real time (Unix seconds), so a 23- or 25-hour day takes the room it really took, and a
missing hour is a gap: a line is broken wherever a point does not start where the one before it
ended, never drawn down to zero. A point alone between gaps is drawn as a dot. Every chart says
how many points it holds (`data-points`), which is what the browser test counts.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, tzinfo
from html import escape
from typing import Literal

from sms_stats.web.dashboard import ticks
from sms_stats.web.dashboard.ticks import Scale, local_midnights, text_width

__all__ = ["local_midnights"]  # the day boundaries, for callers that draw by the day

COLORS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed")
FONT = 12  # px at the size a variant is designed for
TOP, RIGHT, BOTTOM = 10, 12, 28


@dataclass(frozen=True)
class Variant:
    """A width the chart is laid out for, and the screens that show it (see the page's style)."""

    name: Literal["wide", "narrow"]
    width: int
    height: int


VARIANTS = (Variant("wide", 600, 220), Variant("narrow", 340, 200))


@dataclass(frozen=True)
class Line:
    """One series: (start, end, value) per point; `end` is where the next point must start for
    the line to go on (hours: the hour's end; days: the next midnight; snapshots: the latest
    time still continuous)."""

    name: str
    points: Sequence[tuple[int, int, float]]


@dataclass(frozen=True)
class Threshold:
    """Where an alert rule fires, drawn across the chart in its series' colour, dashed."""

    label: str
    value: float
    color_of: int  # the index of the line it is about


@dataclass(frozen=True)
class TimeAxis:
    """The x range [lo, hi) in the store's zone; `daily` puts each point at its day's middle and
    names days, else points stand at their start and ticks fall on local hours."""

    lo: int
    hi: int
    tz: tzinfo
    daily: bool = False

    def position(self, start: int, end: int) -> float:
        return (start + end) / 2 if self.daily else float(start)

    def candidates(self) -> list[list[tuple[float, str]]]:
        """Tick sets, finest first (see `ticks.fit`)."""
        if not self.daily:
            return [
                [(float(t), text) for t, text in tick_set]
                for tick_set in ticks.hour_candidates(self.lo, self.hi, self.tz)
            ]
        midnights = [*local_midnights(self.lo, self.hi, self.tz), self.hi]
        days = [
            (int((a + b) / 2), datetime.fromtimestamp(a, self.tz))
            for a, b in itertools.pairwise(midnights)
        ]
        return [[(float(t), text) for t, text in s] for s in ticks.day_candidates(days)]


def segments(points: Sequence[tuple[int, int, float]]) -> list[list[tuple[int, int, float]]]:
    """The runs of points with no gap between them."""
    runs: list[list[tuple[int, int, float]]] = []
    previous_end: int | None = None
    for start, end, value in points:
        if previous_end is None or start != previous_end:
            runs.append([])
        runs[-1].append((start, end, value))
        previous_end = end
    return runs


def line_chart(
    title: str,
    lines: Sequence[Line],
    axis: TimeAxis,
    *,
    rates: bool = False,
    thresholds: Sequence[Threshold] = (),
    chart_id: str = "",
    note: str = "",
) -> str:
    """A figure: its caption (title, legend, thresholds, `note`) and the chart in each
    variant. Counts are drawn from zero; rates where they are (see `ticks.rate_scale`)."""
    values = [v for line in lines for _s, _e, v in line.points]
    marks = [t.value for t in thresholds]
    scale = ticks.rate_scale(values, marks) if rates else ticks.count_scale(values, marks)
    svgs = "".join(
        _line_svg(variant, title, lines, axis, scale, thresholds, chart_id) for variant in VARIANTS
    )
    return f"<figure>{_caption(title, lines, thresholds, note)}{svgs}</figure>"


def _caption(title: str, lines: Sequence[Line], thresholds: Sequence[Threshold], note: str) -> str:
    keys = "".join(
        f'<span class="key"><i style="background:{_color(n)}"></i>{escape(line.name)}</span>'
        for n, line in enumerate(lines)
    )
    keys += "".join(
        f'<span class="key th"><i style="border-color:{_color(t.color_of)}"></i>'
        f"{escape(t.label)}</span>"
        for t in thresholds
    )
    extra = f' <span class="note">{escape(note)}</span>' if note else ""
    return f'<figcaption>{escape(title)}{extra}<span class="legend">{keys}</span></figcaption>'


def _color(n: int) -> str:
    return COLORS[n % len(COLORS)]


def _line_svg(
    variant: Variant,
    title: str,
    lines: Sequence[Line],
    axis: TimeAxis,
    scale: Scale,
    thresholds: Sequence[Threshold],
    chart_id: str,
) -> str:
    width, height = variant.width, variant.height
    left = int(max(text_width(label, FONT) for label in scale.labels)) + 12
    right, bottom = width - RIGHT, height - BOTTOM
    span = max(axis.hi - axis.lo, 1)
    rise = (scale.high - scale.low) or 1.0

    def x(t: float) -> float:
        return left + (t - axis.lo) * (right - left) / span

    def y(v: float) -> float:
        v = min(max(v, scale.low), scale.high)
        return bottom - (v - scale.low) * (bottom - TOP) / rise

    count = sum(len(line.points) for line in lines)
    parts = [
        f'<svg class="chart {variant.name}" viewBox="0 0 {width} {height}" role="img" '
        f'data-chart="{escape(chart_id)}" data-variant="{variant.name}" data-points="{count}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for value, label in zip(scale.ticks, scale.labels, strict=True):
        parts.append(
            f'<line class="gr" x1="{left}" y1="{y(value):.1f}" x2="{right}" y2="{y(value):.1f}"/>'
            f'<text class="yl" x="{left - 6}" y="{y(value):.1f}" dy="0.35em" '
            f'text-anchor="end">{escape(label)}</text>'
        )
    candidates = [[(x(t), text) for t, text in c] for c in axis.candidates()]
    for placed in ticks.fit(candidates, 2.0, width - 2.0, FONT):
        if left <= placed.tick <= right:
            parts.append(
                f'<line class="gr" x1="{placed.tick:.1f}" y1="{TOP}" x2="{placed.tick:.1f}" '
                f'y2="{bottom}"/>'
            )
        parts.append(
            f'<text class="xl" x="{placed.x:.1f}" y="{height - 6}" '
            f'text-anchor="{placed.anchor}">{escape(placed.text)}</text>'
        )
    parts.append(f'<line class="ax" x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}"/>')
    for threshold in thresholds:
        ty = y(threshold.value)
        parts.append(
            f'<line class="th" data-threshold="{threshold.value:g}" x1="{left}" y1="{ty:.1f}" '
            f'x2="{right}" y2="{ty:.1f}" stroke="{_color(threshold.color_of)}">'
            f"<title>{escape(threshold.label)}</title></line>"
        )
    for n, line in enumerate(lines):
        parts.extend(_draw(line, _color(n), axis.daily, lambda s, e: x(axis.position(s, e)), y))
    if count == 0:
        parts.append(
            f'<text class="none" x="{(left + right) / 2:.0f}" y="{(TOP + bottom) / 2:.0f}" '
            'text-anchor="middle">no data in this range</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _draw(
    line: Line,
    color: str,
    markers: bool,
    x: Callable[[int, int], float],
    y: Callable[[float], float],
) -> list[str]:
    out: list[str] = []
    name = escape(line.name)
    for run in segments(line.points):
        if len(run) == 1:
            start, end, value = run[0]
            out.append(
                f'<circle class="pt" data-series="{name}" cx="{x(start, end):.1f}" '
                f'cy="{y(value):.1f}" r="2.5" fill="{color}"/>'
            )
            continue
        coords = " ".join(f"{x(s, e):.1f},{y(v):.1f}" for s, e, v in run)
        out.append(
            f'<polyline class="ln" data-series="{name}" fill="none" stroke="{color}" '
            f'points="{coords}"/>'
        )
        if markers:  # a day is a point worth seeing: 31 of them are few enough to mark
            out.extend(
                f'<circle class="mk" cx="{x(s, e):.1f}" cy="{y(v):.1f}" r="2" fill="{color}"/>'
                for s, e, v in run
            )
    return out


def bars(title: str, items: Sequence[tuple[str, int]], chart_id: str = "") -> str:
    """Horizontal bars (receipt failures by reason): a label, a bar, the number; the bar's room
    is what the widest label and number leave."""
    total = max((v for _l, v in items), default=0)
    if total == 0:
        return (
            f'<figure><figcaption>{escape(title)}</figcaption><p class="none" '
            f'data-chart="{escape(chart_id)}" data-points="0">none in this range</p></figure>'
        )
    svgs = "".join(_bars_svg(variant, title, items, total, chart_id) for variant in VARIANTS)
    return f"<figure><figcaption>{escape(title)}</figcaption>{svgs}</figure>"


def _bars_svg(
    variant: Variant, title: str, items: Sequence[tuple[str, int]], total: int, chart_id: str
) -> str:
    row, pad = 24, 8
    label_w = max(text_width(label, FONT) for label, _v in items)
    value_w = max(text_width(f"{value:,}", FONT) for _l, value in items)
    bar_x = label_w + pad
    room = variant.width - bar_x - value_w - 2 * pad
    height = row * len(items) + 4
    rows = []
    for n, (label, value) in enumerate(items):
        width = value * room / total
        top = n * row + 4
        rows.append(
            f'<text class="bl" x="0" y="{top + 13}">{escape(label)}</text>'
            f'<rect class="bar" x="{bar_x:.1f}" y="{top}" width="{width:.1f}" height="17" '
            'fill="#dc2626"/>'
            f'<text class="bv" x="{bar_x + width + pad / 2:.1f}" y="{top + 13}">{value:,}</text>'
        )
    return (
        f'<svg class="chart {variant.name}" viewBox="0 0 {variant.width} {height}" role="img" '
        f'data-chart="{escape(chart_id)}" data-variant="{variant.name}" '
        f'data-points="{len(items)}" aria-label="{escape(title)}"><title>{escape(title)}</title>'
        f"{''.join(rows)}</svg>"
    )


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"
