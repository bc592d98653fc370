"""Geometry of the site's hand-written SVG charts (the templates draw them; no external assets)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

WIDTH, HEIGHT = 640, 400
MARGIN = {"left": 64, "right": 24, "top": 20, "bottom": 52}
#: A longer series is thinned to about this many points per line.
MAX_LINE_POINTS = 400
PALETTE = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b",
           "#e377c2"]


@dataclass
class Axis:
    lo: float
    hi: float
    start: float  # pixel of lo
    end: float  # pixel of hi
    title: str
    ticks: list[tuple[float, str]] = field(default_factory=list)

    def pixel(self, value: float) -> float:
        span = self.hi - self.lo
        return round(self.start + (value - self.lo) / span * (self.end - self.start), 2)


@dataclass
class Marker:
    x: float
    y: float
    label: str
    href: str
    front: bool
    tooltip: str
    anchor: str = "start"  # where the label sits: right of the point, or left near the edge
    show_label: bool = True
    #: Interval whiskers in pixels: (x_low, x_high) horizontally, (y_low, y_high) vertically.
    x_whisker: tuple[float, float] | None = None
    y_whisker: tuple[float, float] | None = None
    baseline: bool = False
    #: Pixels the marker was moved sideways so that points at one place stay visible.
    shift: float = 0.0


@dataclass(frozen=True)
class TradeoffPoint:
    """One entry: privacy and utility with their interval ends, in display units."""

    x: float
    x_low: float
    x_high: float
    y: float
    y_low: float
    y_high: float
    label: str
    href: str
    front: bool
    baseline: bool = False


@dataclass
class Chart:
    width: int
    height: int
    x: Axis
    y: Axis
    markers: list[Marker] = field(default_factory=list)
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (label, colour, "x,y ...")
    front_path: str = ""
    #: Dotted guides through the `none` baseline: (x pixel, y pixel).
    baseline: tuple[float, float] | None = None


def nice_ticks(lo: float, hi: float, count: int = 5) -> tuple[float, float, list[float]]:
    """Round axis limits and about ``count`` evenly spaced ticks covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        lo, hi = 0.0, 1.0
    if hi - lo < 1e-12:
        pad = abs(lo) * 0.05 or 0.5
        lo, hi = lo - pad, hi + pad
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    start, stop = math.floor(lo / step) * step, math.ceil(hi / step) * step
    ticks = [round(start + i * step, 10) for i in range(int(round((stop - start) / step)) + 1)]
    return start, stop, ticks


def tick_label(value: float) -> str:
    return f"{value:.6g}"


def _axis(values: list[float], start: float, end: float, title: str,
          bounds: tuple[float, float] | None = None, min_span: float | None = None) -> Axis:
    low, high = min(values), max(values)
    if min_span is not None and high - low < min_span:
        # Never stretch a tiny difference over the whole axis: show at least min_span.
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
        if bounds is not None:
            if low < bounds[0]:
                low, high = bounds[0], bounds[0] + min_span
            if high > bounds[1]:
                low, high = bounds[1] - min_span, bounds[1]
    lo, hi, ticks = nice_ticks(low, high)
    if bounds is not None:  # e.g. a percentage axis never goes past 0 or 100
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        ticks = [t for t in ticks if lo <= t <= hi]
    return Axis(lo, hi, start, end, title, [(t, tick_label(t)) for t in ticks])


def _frame(xs: list[float], ys: list[float], x_title: str, y_title: str,
           x_bounds: tuple[float, float] | None = None,
           y_bounds: tuple[float, float] | None = None, x_min_span: float | None = None,
           y_min_span: float | None = None) -> Chart:
    x = _axis(xs, MARGIN["left"], WIDTH - MARGIN["right"], x_title, x_bounds, x_min_span)
    y = _axis(ys, HEIGHT - MARGIN["bottom"], MARGIN["top"], y_title, y_bounds, y_min_span)
    return Chart(WIDTH, HEIGHT, x, y)


#: Markers closer than this (pixels) count as one place: spread apart and labelled together.
OVERLAP_PX = 8.0


def tradeoff_chart(points: list[TradeoffPoint], x_title: str, y_title: str,
                   x_bounds: tuple[float, float] | None = None,
                   y_bounds: tuple[float, float] | None = None,
                   x_min_span: float | None = None, y_min_span: float | None = None) -> Chart:
    """Scatter of entries with interval whiskers; the front joined by a line; the baseline
    marked with guides; points at one place spread sideways and labelled together."""
    chart = _frame([v for p in points for v in (p.x_low, p.x_high, p.x)],
                   [v for p in points for v in (p.y_low, p.y_high, p.y)], x_title, y_title,
                   x_bounds, y_bounds, x_min_span, y_min_span)
    for p in points:
        x, y = chart.x.pixel(p.x), chart.y.pixel(p.y)
        interval = (f"; {tick_label(p.y_low)}–{tick_label(p.y_high)}, "
                    f"{tick_label(p.x_low)}–{tick_label(p.x_high)}")
        chart.markers.append(Marker(
            x, y, p.label + (" (baseline)" if p.baseline else ""), p.href, p.front,
            f"{p.label}: {tick_label(p.y)}, {tick_label(p.x)}{interval}",
            "end" if x > 0.6 * WIDTH else "start",
            x_whisker=(chart.x.pixel(p.x_low), chart.x.pixel(p.x_high)),
            y_whisker=(chart.y.pixel(p.y_low), chart.y.pixel(p.y_high)), baseline=p.baseline))
        if p.baseline:
            chart.baseline = (x, y)
    front = sorted((m for m in chart.markers if m.front), key=lambda m: (m.x, -m.y))
    chart.front_path = " ".join(f"{m.x},{m.y}" for m in front)
    _spread(chart.markers)
    return chart


def _spread(markers: list[Marker]) -> None:
    """Markers at (nearly) one place: moved apart sideways by a few pixels (their whiskers
    still mark the true value) and labelled once, with every label."""
    clusters: list[list[Marker]] = []
    for marker in sorted(markers, key=lambda m: (m.x, m.y)):
        for cluster in clusters:
            if (abs(cluster[0].x - marker.x) < OVERLAP_PX
                    and abs(cluster[0].y - marker.y) < OVERLAP_PX):
                cluster.append(marker)
                break
        else:
            clusters.append([marker])
    for cluster in clusters:
        if len(cluster) == 1:
            continue
        for index, marker in enumerate(cluster):
            marker.shift = round((index - (len(cluster) - 1) / 2) * OVERLAP_PX, 2)
            marker.show_label = index == 0
            marker.tooltip += " (moved sideways: it shares its place with others)"
        cluster[0].label = ", ".join(m.label for m in cluster)


def line_chart(series: list[tuple[str, list[float]]], x_title: str, y_title: str) -> Chart:
    """One polyline per (label, values); x is the logged step."""
    finite = [v for _, values in series for v in values if math.isfinite(v)]
    longest = max(len(values) for _, values in series)
    chart = _frame([0, max(longest - 1, 1)], finite or [0.0], x_title, y_title)
    for index, (label, values) in enumerate(series):
        stride = max(1, len(values) // MAX_LINE_POINTS)  # keeps the page light
        steps = [*range(0, len(values), stride), len(values) - 1] if values else []
        coords = " ".join(f"{chart.x.pixel(step)},{chart.y.pixel(values[step])}"
                          for step in dict.fromkeys(steps) if math.isfinite(values[step]))
        chart.lines.append((label, PALETTE[index % len(PALETTE)], coords))
    return chart
