"""Inline SVG charts: drawn on the server as text, so the page needs no script, no library and
nothing the Content-Security-Policy would have to let in.

x is real time (Unix seconds), so a 23- or 25-hour day takes the room it really took, and a
missing hour is a gap: a line is broken wherever a point does not start where the one before it
ended, never drawn down to zero. A point alone between gaps is drawn as a dot. Every chart says
how many points it holds (`data-points`), which is what the browser test counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo
from html import escape

WIDTH, HEIGHT = 640, 180
LEFT, RIGHT, TOP, BOTTOM = 56, 8, 10, 24
COLORS = ("#2563eb", "#d97706", "#059669", "#dc2626", "#7c3aed")


@dataclass(frozen=True)
class Line:
    """One series: (start, end, value) per point; `end` is where the next point must start for
    the line to go on (hours: the hour's end; snapshots: the latest time still continuous)."""

    name: str
    points: Sequence[tuple[int, int, float]]


def segments(points: Sequence[tuple[int, int, float]]) -> list[list[tuple[int, float]]]:
    """The runs of points with no gap between them."""
    runs: list[list[tuple[int, float]]] = []
    previous_end: int | None = None
    for start, end, value in points:
        if previous_end is None or start != previous_end:
            runs.append([])
        runs[-1].append((start, value))
        previous_end = end
    return runs


def line_chart(
    title: str,
    lines: Sequence[Line],
    lo: int,
    hi: int,
    tz: tzinfo,
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}",
    y_max: float | None = None,
    chart_id: str = "",
) -> str:
    """An SVG line chart over [lo, hi) with a legend; `y_max` fixes the scale (rates: 1)."""
    count = sum(len(line.points) for line in lines)
    values = [v for line in lines for _s, _e, v in line.points]
    top = y_max if y_max is not None else max(values, default=0.0)
    top = top if top > 0 else 1.0
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    span = max(hi - lo, 1)

    def x(t: int) -> float:
        return LEFT + (t - lo) * plot_w / span

    def y(v: float) -> float:
        return TOP + plot_h - min(max(v, 0.0), top) * plot_h / top

    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'data-chart="{escape(chart_id)}" data-points="{count}" '
        f'aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        *_grid(lo, hi, tz, x, top, y, fmt),
    ]
    for n, line in enumerate(lines):
        color = COLORS[n % len(COLORS)]
        for run in segments(line.points):
            if len(run) == 1:
                (t, v) = run[0]
                parts.append(
                    f'<circle class="pt" data-series="{escape(line.name)}" cx="{x(t):.1f}" '
                    f'cy="{y(v):.1f}" r="2.5" fill="{color}"/>'
                )
            else:
                coords = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in run)
                parts.append(
                    f'<polyline class="ln" data-series="{escape(line.name)}" fill="none" '
                    f'stroke="{color}" stroke-width="1.5" points="{coords}"/>'
                )
    if count == 0:
        parts.append(
            f'<text x="{WIDTH / 2:.0f}" y="{HEIGHT / 2:.0f}" text-anchor="middle" '
            'class="none">no data in this range</text>'
        )
    parts.append("</svg>")
    legend = "".join(
        f'<span class="key"><i style="background:{COLORS[n % len(COLORS)]}"></i>'
        f"{escape(line.name)}</span>"
        for n, line in enumerate(lines)
    )
    return (
        f'<figure><figcaption>{escape(title)} <span class="legend">{legend}</span>'
        f"</figcaption>{''.join(parts)}</figure>"
    )


def _grid(
    lo: int,
    hi: int,
    tz: tzinfo,
    x: Callable[[int], float],
    top: float,
    y: Callable[[float], float],
    fmt: Callable[[float], str],
) -> list[str]:
    out = [
        f'<line class="ax" x1="{LEFT}" y1="{y(0):.1f}" x2="{WIDTH - RIGHT}" y2="{y(0):.1f}"/>',
        f'<text class="yl" x="{LEFT - 4}" y="{y(top) + 4:.1f}" text-anchor="end">'
        f"{escape(fmt(top))}</text>",
        f'<text class="yl" x="{LEFT - 4}" y="{y(0):.1f}" text-anchor="end">{escape(fmt(0))}</text>',
        f'<line class="gr" x1="{LEFT}" y1="{y(top):.1f}" x2="{WIDTH - RIGHT}" y2="{y(top):.1f}"/>',
    ]
    midnights = local_midnights(lo, hi, tz)
    step = max(1, len(midnights) // 8)  # at most ~8 labels: a month stays legible on a phone
    for n, t in enumerate(midnights):
        out.append(f'<line class="gr" x1="{x(t):.1f}" y1="{TOP}" x2="{x(t):.1f}" y2="{y(0):.1f}"/>')
        if n % step == 0:
            label = datetime.fromtimestamp(t, tz).strftime("%a %m-%d")
            out.append(
                f'<text class="xl" x="{x(t) + 2:.1f}" y="{HEIGHT - 8}">{escape(label)}</text>'
            )
    return out


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


def bars(title: str, items: Sequence[tuple[str, int]], chart_id: str = "") -> str:
    """Horizontal bars (receipt failures by reason): a label, a bar, the number."""
    total = max((v for _l, v in items), default=0)
    if total == 0:
        return (
            f'<figure><figcaption>{escape(title)}</figcaption><p class="none" '
            f'data-chart="{escape(chart_id)}" data-points="0">none in this range</p></figure>'
        )
    row_h = 22
    height = row_h * len(items) + 4
    rows = []
    for n, (label, value) in enumerate(items):
        width = 0 if total == 0 else value * (WIDTH - 260) / total
        yy = n * row_h + 4
        rows.append(
            f'<text x="0" y="{yy + 14}">{escape(label)}</text>'
            f'<rect class="bar" x="130" y="{yy}" width="{width:.1f}" height="16" fill="#dc2626"/>'
            f'<text x="{136 + width:.1f}" y="{yy + 14}">{value:,}</text>'
        )
    return (
        f"<figure><figcaption>{escape(title)}</figcaption>"
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" role="img" '
        f'data-chart="{escape(chart_id)}" data-points="{len(items)}" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(rows)}</svg>'
        "</figure>"
    )


def percent(value: float) -> str:
    return f"{value * 100:.0f}%"
