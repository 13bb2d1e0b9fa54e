"""Plain-text renderings shared by the CLI and the dashboard (no textual/rich here).

- :func:`halfblock` draws a 28×28 image in 14 text rows with ▀/▄/█ (two pixels per character cell),
  using a grey ramp of shade characters when colour is not available.
- :func:`sign_image` draws a sign perturbation: + as █, − as space, 0 as ·.
- :func:`accuracy_chart` draws accuracy-vs-ε curves with plotext and returns the text.
"""

from __future__ import annotations

import re
from typing import Sequence

ANSI = re.compile(r"\x1b\[[0-9;]*m")



def _grid(data: bytes | Sequence[float], scale: float) -> list[list[float]]:
    vals = [v / scale for v in data]
    return [vals[r * 28 : (r + 1) * 28] for r in range(28)]


def halfblock(data: bytes | Sequence[float], *, scale: float = 255.0) -> list[str]:
    """28×28 image (784 values, 0..scale) → 14 lines of 28 characters, two pixel rows per line.

    Each cell shows the top and bottom pixel with the half-block glyphs (a pixel is "on" at ≥ .5); a
    cell with neither pixel on is shaded by its brighter pixel (▒ > .3, ░ > .08), so faint
    perturbations of the background stay visible.
    """
    g = _grid(data, scale)
    lines = []
    for r in range(0, 28, 2):
        row = []
        for c in range(28):
            top, bot = g[r][c], g[r + 1][c]
            t, b = top >= 0.5, bot >= 0.5
            if t and b:
                row.append("█")
            elif t:
                row.append("▀")
            elif b:
                row.append("▄")
            else:
                level = max(top, bot)
                row.append("▒" if level > 0.3 else "░" if level > 0.08 else " ")
        lines.append("".join(row))
    return lines


def sign_image(sign: bytes) -> list[str]:
    """Sign perturbation stored as 0/1/2 (−1/0/+1) → 14 lines: upper/lower pixel per cell."""
    vals = list(sign)
    lines = []
    for r in range(0, 28, 2):
        row = []
        for c in range(28):
            t, b = vals[r * 28 + c] == 2, vals[(r + 1) * 28 + c] == 2
            row.append("█" if t and b else "▀" if t else "▄" if b else " ")
        lines.append("".join(row))
    return lines


def side_by_side(blocks: Sequence[Sequence[str]], titles: Sequence[str], gap: int = 3) -> list[str]:
    width = [max(len(t), *(len(line) for line in b)) for b, t in zip(blocks, titles)]
    out = [(" " * gap).join(t.ljust(w) for t, w in zip(titles, width))]
    for i in range(max(len(b) for b in blocks)):
        out.append((" " * gap).join((b[i] if i < len(b) else "").ljust(w) for b, w in zip(blocks, width)))
    return out


def accuracy_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, width: int = 70, height: int = 18, title: str = "") -> str:
    """Line chart of accuracy (%) vs ε for one or more named series, as text."""
    import plotext as plt

    plt.clear_figure()
    plt.plotsize(width, height)
    plt.theme("clear")
    for name, (xs, ys) in series.items():
        plt.plot(list(xs), [100 * y for y in ys], label=name, marker="braille")
    plt.ylim(0, 100)
    plt.xlabel("epsilon")
    plt.ylabel("accuracy %")
    if title:
        plt.title(title)
    return ANSI.sub("", plt.build())
