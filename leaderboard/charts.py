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


@dataclass
class Chart:
    width: int
    height: int
    x: Axis
    y: Axis
    markers: list[Marker] = field(default_factory=list)
    lines: list[tuple[str, str, str]] = field(default_factory=list)  # (label, colour, "x,y ...")
    front_path: str = ""


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
          bounds: tuple[float, float] | None = None) -> Axis:
    lo, hi, ticks = nice_ticks(min(values), max(values))
    if bounds is not None:  # e.g. a percentage axis never goes past 0 or 100
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
        ticks = [t for t in ticks if lo <= t <= hi]
    return Axis(lo, hi, start, end, title, [(t, tick_label(t)) for t in ticks])


def _frame(xs: list[float], ys: list[float], x_title: str, y_title: str,
           x_bounds: tuple[float, float] | None = None,
           y_bounds: tuple[float, float] | None = None) -> Chart:
    x = _axis(xs, MARGIN["left"], WIDTH - MARGIN["right"], x_title, x_bounds)
    y = _axis(ys, HEIGHT - MARGIN["bottom"], MARGIN["top"], y_title, y_bounds)
    return Chart(WIDTH, HEIGHT, x, y)


def tradeoff_chart(points: list[tuple[float, float, str, str, bool]], x_title: str,
                   y_title: str, x_bounds: tuple[float, float] | None = None,
                   y_bounds: tuple[float, float] | None = None) -> Chart:
    """Scatter of (privacy, utility, label, href, on_front); the front joined by a line."""
    chart = _frame([p[0] for p in points], [p[1] for p in points], x_title, y_title,
                   x_bounds, y_bounds)
    for px, py, label, href, front in points:
        x, y = chart.x.pixel(px), chart.y.pixel(py)
        chart.markers.append(Marker(x, y, label, href, front,
                                    f"{label}: {tick_label(py)}, {tick_label(px)}",
                                    "end" if x > 0.6 * WIDTH else "start"))
    front = sorted((m for m in chart.markers if m.front), key=lambda m: (m.x, -m.y))
    chart.front_path = " ".join(f"{m.x},{m.y}" for m in front)
    # Points at the same place share one label instead of printing over each other.
    shared: dict[tuple[float, float], Marker] = {}
    for marker in front:
        first = shared.setdefault((marker.x, marker.y), marker)
        if first is not marker:
            first.label = f"{first.label}, {marker.label}"
            marker.show_label = False
    return chart


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
