"""Line charts (textual-plotext) whose background, text and series colours follow the app theme.

A plotext build of a few hundred points costs tens of milliseconds, so it never runs on the UI thread:
``render`` returns the last finished build (or a placeholder) at once and, when the data, the size or
the theme changed, starts a build in a thread worker that swaps the new picture in when it is done.
Long series are thinned to a few points per character cell first.

The title and the legend are drawn above the plot, never over the data (plotext's legend sits inside
the canvas); a series on ``yside="right"`` gets the right axis, with its own scale (FGSM error ~90%
beside clean errors ~1%); ``integer_x`` makes the x ticks whole numbers (epochs, steps).
"""

from __future__ import annotations

import math
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
    yside: str = "left"  # "right": plotted against the right axis, with its own scale


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


def integer_ticks(lo: float, hi: float, most: int) -> list[int]:
    """Whole-number ticks within [lo, hi], at most ``most`` of them, on a round step (1, 2, 5, 10, 20, …):
    1 2 3 … for a 10-epoch run, 0 500 1000 … for batch steps, never 3.2 or 1390.5."""
    a, b = math.ceil(lo), math.floor(hi)
    if b <= a:
        return [round((lo + hi) / 2)]
    gaps = max(1, most - 1)
    step = next(s * 10**e for e in range(0, 15) for s in (1, 2, 5) if (b - a) / (s * 10**e) <= gaps)
    return list(range(math.ceil(a / step) * step, b + 1, step)) or [a]


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
        integer_x: bool = False,
        ylabel_right: str = "",
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.title = title
        self.xlabel, self.ylabel, self.ylim, self.empty = xlabel, ylabel, ylim, empty
        self.integer_x, self.ylabel_right = integer_x, ylabel_right
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
            spec = [(s.label, *thin(s.xs, s.ys, limit), self._rgb(s.colour), s.marker, s.scatter, s.yside) for s in self.series if len(s.xs)]
            theme = self._get_plotext_theme_name(self.app.theme)
            self.run_worker(lambda: self._build(key, spec, theme), thread=True, exclusive=True, group=f"chart-{id(self)}", exit_on_error=False)
        return self._cache if self._cache is not None else Text(f"{self.title}\n\ndrawing…", style="dim")

    def _header(self, spec: list, width: int) -> list[Text]:
        """The title, then one entry per labelled series (its colour, its axis when two are used),
        wrapped into as many lines as ``width`` needs."""
        lines: list[Text] = []
        if self.title:
            lines.append(Text(self.title, style="bold", no_wrap=True, overflow="ellipsis", justify="center"))
        two_sides = len({s[-1] for s in spec}) > 1
        entries = []
        for label, _xs, _ys, colour, _marker, _scatter, yside in spec:
            if not label:
                continue
            name = f"{label} (right axis)" if two_sides and yside == "right" else label
            entries.append(Text.assemble(("━━ ", f"rgb({colour[0]},{colour[1]},{colour[2]})"), name))
        line = Text()
        for e in entries:
            if line.cell_len and line.cell_len + 3 + e.cell_len > width:
                lines.append(line)
                line = Text()
            if line.cell_len:
                line.append("   ")
            line.append_text(e)
        if line.cell_len:
            lines.append(line)
        return lines

    def _build(self, key: tuple, spec: list, theme: str) -> None:
        w, h = key[0], key[1]
        header = self._header(spec, w)
        ph = max(4, h - len(header))
        header = header[: max(0, h - ph)]
        with self._lock:
            plt = self.plt
            plt.clear_figure()
            plt.clear_data()
            plt.plotsize(w, ph)
            plt._set_size(w, ph)
            plt.theme(theme)
            xs_all = [x for s in spec for x in s[1]]
            for _label, xs, ys, colour, marker, scatter, yside in spec:
                if scatter or len(xs) == 1:
                    plt.scatter(xs, ys, color=colour, marker=marker, yside=yside)
                else:
                    plt.plot(xs, ys, color=colour, marker=marker, yside=yside)
            if self.ylim:
                plt.ylim(*self.ylim)
            else:
                self._flat_sides(plt, spec)
            if self.integer_x and xs_all:
                ticks = integer_ticks(min(xs_all), max(xs_all), max(2, w // 10))
                plt.xticks(ticks, [str(t) for t in ticks])
            if self.xlabel:
                plt.xlabel(self.xlabel)
            if self.ylabel:
                plt.ylabel(self.ylabel)
            if self.ylabel_right and any(s[-1] == "right" for s in spec):
                plt.ylabel(self.ylabel_right, yside="right")
            plot = Text.from_ansi(plt.build())
        text = Text("\n").join([*header, plot]) if header else plot
        try:
            self.app.call_from_thread(self._built, key, text)
        except RuntimeError:  # the app is shutting down
            pass

    def _flat_sides(self, plt, spec: list) -> None:  # noqa: ANN001
        """A side whose values are all equal (one epoch: one point) gets a narrow range around them instead
        of plotext's ±50%, and a percent chart never reaches past 0 or 100 (an FGSM error of 99.6% read
        49.8–149.4)."""
        percent = "%" in " ".join(str(t) for t in (self.title, self.ylabel, getattr(self, "ylabel_right", "")) if t)
        for side in ("left", "right"):
            ys = [y for s in spec if s[-1] == side for y in s[2]]
            if not ys or max(ys) - min(ys) > 1e-9:
                continue
            y = ys[0]
            pad = max(abs(y) * 0.05, 0.5)
            lo, hi = y - pad, y + pad
            if percent and 0.0 <= y <= 100.0:
                lo, hi = max(lo, 0.0), min(hi, 100.0)
            plt.ylim(lo, hi, yside=side)

    def _built(self, key: tuple, text: Text) -> None:
        self.builds += 1
        if key == self._wanted or self._cache is None:  # an older build finishing late is dropped
            self._cache_key, self._cache = key, text
            self.refresh()
