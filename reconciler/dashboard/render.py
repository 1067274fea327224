"""Jinja2 rendering with a cache keyed by the board's state version.

A page is rendered once per state change and per set of query parameters, whoever asks and
however often: with 10,000 devices a render costs tens of milliseconds, a cache hit a dict
lookup. The cache is bounded (least recently used entries go first).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

from reconciler.dashboard.views import fmt_time

__all__ = ["PageCache", "environment"]


def _bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop always returns


def _seconds(value: float) -> str:
    for limit, unit, size in ((120, "s", 1), (7200, "min", 60), (172800, "h", 3600)):
        if value < limit:
            return f"{value / size:.1f} {unit}"
    return f"{value / 86400:.1f} d"


def environment() -> Environment:
    """The dashboard's template environment: autoescaped, undefined names are errors."""
    env = Environment(
        loader=PackageLoader("reconciler.dashboard", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = fmt_time
    env.filters["bytes"] = _bytes
    env.filters["seconds"] = _seconds
    env.filters["short"] = lambda sha: (sha or "-")[:12]
    return env


class PageCache:
    """Rendered pages by (key, state version); at most ``size`` entries."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._pages: OrderedDict[tuple[Hashable, int], str] = OrderedDict()
        self.renders = 0
        """How many times a page was actually rendered (tests and benches read it)."""

    def lookup(self, key: Hashable, version: int) -> str | None:
        """The page for ``key`` at ``version`` if it was rendered."""
        slot = (key, version)
        page = self._pages.get(slot)
        if page is not None:
            self._pages.move_to_end(slot)
        return page

    def store(self, key: Hashable, version: int, page: str) -> None:
        """Keep a freshly rendered page (the least recently used goes when full)."""
        self.renders += 1
        self._pages[(key, version)] = page
        while len(self._pages) > self.size:
            self._pages.popitem(last=False)
