"""Server-side SVG charts: geometry computed here, drawn by ``templates/_chart.html``.

A chart is a list of labelled bars with their values; the template draws them as an SVG
(presentation attributes only, so the strict CSP needs no inline style) next to a table
that says the same in text.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "bar_chart"]

_ROW = 26
_LABEL = 150
_WIDTH = 480
_VALUE = 60


@dataclass(frozen=True, slots=True)
class Bar:
    """One horizontal bar: its label, value and geometry in the SVG's user units."""

    label: str
    value: int
    y: int
    width: int
    tone: str


@dataclass(frozen=True, slots=True)
class BarChart:
    """A horizontal bar chart and the table that is its text equivalent."""

    title: str
    bars: tuple[Bar, ...]
    height: int
    width: int = _WIDTH
    label_width: int = _LABEL

    @property
    def value_x(self) -> int:
        """Where the value labels start: after the longest possible bar."""
        return self.width - _VALUE + 6


def bar_chart(title: str, items: Iterable[tuple[str, int, str]]) -> BarChart:
    """A chart of ``(label, value, tone)`` items; ``tone`` names a CSS-free colour class
    (``ok``, ``warn``, ``bad``, ``info``) that the template maps to a fill."""
    rows = list(items)
    top = max((v for _, v, _ in rows), default=0) or 1
    span = _WIDTH - _LABEL - _VALUE
    bars = tuple(
        Bar(label[:28], value, i * _ROW + 4, max(int(value > 0), round(span * value / top)), tone)
        for i, (label, value, tone) in enumerate(rows)
    )
    return BarChart(title, bars, height=max(1, len(bars)) * _ROW + 8)
