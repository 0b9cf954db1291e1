"""Latency distribution charts: pure geometry for a histogram the template draws as SVG."""

import math
from dataclasses import dataclass

WIDTH, HEIGHT = 640, 240
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 48, 16, 12, 36


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    low: float
    high: float
    count: int


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class HistogramChart:
    width: int
    height: int
    plot_left: float
    plot_bottom: float
    plot_right: float
    plot_top: float
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    count: int


def histogram(values, bins):
    """``bins`` equal-width (low, high, count) bins spanning min..max of ``values``; [] when empty."""
    if not values:
        return []
    low, high = min(values), max(values)
    if high == low:
        return [(low, high, len(values))]
    width = (high - low) / bins
    counts = [0] * bins
    for value in values:
        counts[min(int((value - low) / width), bins - 1)] += 1
    return [(low + i * width, low + (i + 1) * width, count) for i, count in enumerate(counts)]


def _label(value):
    return f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"


def histogram_chart(values, *, bins=20, width=WIDTH, height=HEIGHT) -> HistogramChart | None:
    """The bars and axis ticks of a histogram of ``values`` in a ``width`` × ``height`` SVG; None when empty."""
    counts = histogram(values, bins)
    if not counts:
        return None
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    tallest = max(count for _, _, count in counts)
    slot = (right - left) / len(counts)
    bars = []
    for index, (low, high, count) in enumerate(counts):
        bar_height = (bottom - top) * count / tallest
        bars.append(Bar(
            x=round(left + index * slot + 1, 2), y=round(bottom - bar_height, 2),
            width=round(max(slot - 2, 1), 2), height=round(bar_height, 2), low=low, high=high, count=count,
        ))
    first, last = counts[0][0], counts[-1][1]
    x_ticks = [
        Tick(position=round(left + (right - left) * i / 4, 2), label=_label(first + (last - first) * i / 4))
        for i in range(5)
    ] if last > first else [Tick(position=round((left + right) / 2, 2), label=_label(first))]
    step = max(1, math.ceil(tallest / 4))
    y_ticks = [
        Tick(position=round(bottom - (bottom - top) * n / tallest, 2), label=str(n))
        for n in range(0, tallest + 1, step)
    ]
    return HistogramChart(width, height, left, bottom, right, top, bars, x_ticks, y_ticks, len(values))


def hourly_chart(rows, field, *, width=WIDTH, height=160) -> HistogramChart:
    """One bar per hour of ``rows`` (``endpoints.selectors.task_usage``), as tall as its ``field``; x ticks every 6
    hours (the hour's local time). ``Bar.low`` is the hour, ``Bar.count`` the value."""
    left, right = MARGIN_LEFT, width - MARGIN_RIGHT
    top, bottom = MARGIN_TOP, height - MARGIN_BOTTOM
    values = [row[field] or 0 for row in rows]
    tallest = max(values, default=0) or 1
    slot = (right - left) / max(len(rows), 1)
    bars = [
        Bar(x=round(left + index * slot + 1, 2), y=round(bottom - (bottom - top) * value / tallest, 2),
            width=round(max(slot - 2, 1), 2), height=round((bottom - top) * value / tallest, 2),
            low=row["hour"], high=row["hour"], count=value)
        for index, (row, value) in enumerate(zip(rows, values, strict=True))
    ]
    x_ticks = [Tick(position=round(bar.x + bar.width / 2, 2), label=bar.low) for bar in bars[::6]]
    step = max(1, math.ceil(tallest / 4))
    y_ticks = [Tick(position=round(bottom - (bottom - top) * n / tallest, 2), label=_label(n))
               for n in range(0, tallest + 1, step)]
    return HistogramChart(width, height, left, bottom, right, top, bars, x_ticks, y_ticks, sum(values))
