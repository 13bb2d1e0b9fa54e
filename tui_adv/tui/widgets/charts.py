"""Line charts (textual-plotext) whose background, text and series colours follow the app theme."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from rich.text import Text
from textual.color import Color
from textual_plotext import PlotextPlot

# series colours by role, resolved from the current theme's variables
ROLES = ("primary", "warning", "success", "error", "accent", "secondary")


@dataclass
class Series:
    label: str
    xs: Sequence[float]
    ys: Sequence[float]
    colour: str | tuple[int, int, int] = "primary"  # a theme role or an RGB tuple (per-run colours)
    marker: str = "braille"
    scatter: bool = False


class Chart(PlotextPlot):
    """A plot that is redrawn only when its data, size or the theme changes."""

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
        self._cache_key: tuple | None = None
        self._cache: Text | None = None
        self._version = 0

    def on_mount(self) -> None:
        # (the base class on_mount runs too: Textual calls every class's handler in the MRO)
        self.app.theme_changed_signal.subscribe(self, lambda _theme: self._invalidate())

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
        if not any(len(s.xs) for s in self.series):
            text = Text(f"{self.title}\n\n{self.empty}" if self.title else self.empty, style="dim", justify="center")
            self._cache_key, self._cache = key, text
            return text
        plt = self.plt
        plt.clear_figure()
        plt.clear_data()
        for s in self.series:
            if not len(s.xs):
                continue
            colour = self._rgb(s.colour)
            if s.scatter or len(s.xs) == 1:
                plt.scatter(list(s.xs), list(s.ys), label=s.label or None, color=colour, marker=s.marker)
            else:
                plt.plot(list(s.xs), list(s.ys), label=s.label or None, color=colour, marker=s.marker)
        if self.ylim:
            plt.ylim(*self.ylim)
        if self.title:
            plt.title(self.title)
        if self.xlabel:
            plt.xlabel(self.xlabel)
        if self.ylabel:
            plt.ylabel(self.ylabel)
        text = super().render()
        self._cache_key, self._cache = key, text
        return text
