"""Line charts (textual-plotext) whose background, text and series colours follow the app theme.

A plotext build of a few hundred points costs tens of milliseconds, so it never runs on the UI thread:
``render`` returns the last finished build (or a placeholder) at once and, when the data, the size or
the theme changed, starts a build in a thread worker that swaps the new picture in when it is done.
Long series are thinned to a few points per character cell first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.color import Color
from textual_plotext import PlotextPlot

# series colours by role, resolved from the current theme's variables
ROLES = ("primary", "warning", "success", "error", "accent", "secondary")
MAX_POINTS_PER_CELL = 2


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: str | tuple[int, int, int] = "primary"  # a theme role or an RGB tuple (per-run colours)
    marker: str = "braille"
    scatter: bool = False


def thin(xs: Sequence[float], ys: Sequence[float], limit: int) -> tuple[list[float], list[float]]:
    """At most ``limit`` points: bucket means (keeps the shape of a noisy loss curve, not its noise)."""
    n = len(xs)
    if n <= limit or limit < 2:
        return list(xs), list(ys)
    out_x, out_y = [], []
    step = n / limit
    for i in range(limit):
        a, b = int(i * step), max(int((i + 1) * step), int(i * step) + 1)
        out_x.append(sum(xs[a:b]) / (b - a))
        out_y.append(sum(ys[a:b]) / (b - a))
    return out_x, out_y


class Chart(PlotextPlot):
    DEFAULT_CSS = """
    Chart { width: 1fr; height: 1fr; min-height: 8; }
    """

    def __init__(
        self,
        title: str = "",
        *,
        xlabel: str = "",
        ylabel: str = "",
        ylim: tuple[float, float] | None = None,
        empty: str = "waiting for data…",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel, self.ylabel, self.ylim, self.empty = xlabel, ylabel, ylim, empty
        self.series: list[Series] = []
        self._version = 0
        self._cache_key: tuple | None = None
        self._cache: Text | None = None
        self._wanted: tuple | None = None
        self._lock = threading.Lock()
        self.builds = 0

    def on_mount(self) -> None:
        # (PlotextPlot.on_mount runs too: Textual calls every class's handler in the MRO)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._invalidate())

    @property
    def pending(self) -> bool:
        """The picture on screen is not the one for the current data, size and theme yet (a build is
        running or due); tests wait for this before a snapshot."""
        w, h = self.size.width, self.size.height
        if w <= 0 or h <= 0 or not self.is_mounted:
            return False
        return (w, h, self.app.theme, self._version) != self._cache_key

    def _invalidate(self) -> None:
        self._version += 1
        self.refresh()

    def set_series(self, series: list[Series], *, title: str | None = None) -> None:
        self.series = series
        if title is not None:
            self.title = title
        self._invalidate()

    def _rgb(self, colour: str | tuple[int, int, int]) -> tuple[int, int, int]:
        if isinstance(colour, tuple):
            return colour
        value = self.app.theme_variables.get(colour) or self.app.theme_variables.get("primary", "#4ea1ff")
        try:
            return Color.parse(value).rgb
        except Exception:  # noqa: BLE001 - an odd theme value must never break a redraw
            return (78, 161, 255)

    def render(self):  # noqa: ANN201
        w, h = self.size.width, self.size.height
        key = (w, h, self.app.theme, self._version)
        if key == self._cache_key and self._cache is not None:
            return self._cache
        if w <= 0 or h <= 0:
            return Text("")
        if not any(len(s.xs) for s in self.series):
            text = Text(f"{self.title}\n\n{self.empty}" if self.title else self.empty, style="dim")
            self._cache_key, self._cache, self._wanted = key, text, key
            return text
        if key != self._wanted:
            self._wanted = key
            limit = max(2, MAX_POINTS_PER_CELL * w)
            spec = [(s.label, *thin(s.xs, s.ys, limit), self._rgb(s.colour), s.marker, s.scatter) for s in self.series if len(s.xs)]
            theme = self._get_plotext_theme_name(self.app.theme)
            self.run_worker(lambda: self._build(key, spec, theme), thread=True, exclusive=True, group=f"chart-{id(self)}", exit_on_error=False)
        return self._cache if self._cache is not None else Text(f"{self.title}\n\ndrawing…", style="dim")

    def _build(self, key: tuple, spec: list, theme: str) -> None:
        w, h = key[0], key[1]
        with self._lock:
            plt = self.plt
            plt.clear_figure()
            plt.clear_data()
            plt.plotsize(w, h)
            plt._set_size(w, h)
            plt.theme(theme)
            for label, xs, ys, colour, marker, scatter in spec:
                if scatter or len(xs) == 1:
                    plt.scatter(xs, ys, label=label or None, color=colour, marker=marker)
                else:
                    plt.plot(xs, ys, label=label or None, color=colour, marker=marker)
            if self.ylim:
                plt.ylim(*self.ylim)
            if self.title:
                plt.title(self.title)
            if self.xlabel:
                plt.xlabel(self.xlabel)
            if self.ylabel:
                plt.ylabel(self.ylabel)
            text = Text.from_ansi(plt.build())
        try:
            self.app.call_from_thread(self._built, key, text)
        except RuntimeError:  # the app is shutting down
            pass

    def _built(self, key: tuple, text: Text) -> None:
        self.builds += 1
        if key == self._wanted or self._cache is None:  # an older build finishing late is dropped
            self._cache_key, self._cache = key, text
            self.refresh()
