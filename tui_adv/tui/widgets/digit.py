"""28×28 images in 14 text rows, in colour: '▀' with the top pixel as foreground, the bottom as background
(a CIFAR-10 32×32 colour image: 16 rows of 32, in its own colours)."""

from __future__ import annotations

from typing import Sequence

from rich.style import Style
from rich.text import Text
from textual.widget import Widget

SIGN_COLOURS = {0: (15, 15, 15), 1: (128, 128, 128), 2: (245, 245, 245)}  # stored 0/1/2 = −1/0/+1


def _grey(v: float) -> tuple[int, int, int]:
    g = int(round(min(max(v, 0.0), 1.0) * 255))
    return (g, g, g)


def _rgb(c: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*c)


QUADRANTS = " ▗▖▄▝▐▞▟▘▚▌▙▀▜▛█"  # index = TL*8 + TR*4 + BL*2 + BR


def quadrant_text(values: bytes | Sequence[float], *, scale: float = 255.0, sign: bool = False) -> Text:
    """784 values → 14 lines × 14 cells (2×2 pixels a cell, quadrant glyphs), for narrow terminals.
    Colours: the mean grey of the 'on' pixels as foreground, of the 'off' ones as background."""
    vals = list(values)
    text = Text(no_wrap=True, overflow="crop")
    for r in range(0, 28, 2):
        for c in range(0, 28, 2):
            px = [vals[r * 28 + c], vals[r * 28 + c + 1], vals[(r + 1) * 28 + c], vals[(r + 1) * 28 + c + 1]]
            if sign:
                on = [int(v) == 2 for v in px]
                cols = [SIGN_COLOURS.get(int(v), (128, 128, 128)) for v in px]
            else:
                lv = [v / scale for v in px]
                on = [v >= 0.5 for v in lv]
                cols = [_grey(v) for v in lv]
            idx = on[0] * 8 + on[1] * 4 + on[2] * 2 + on[3]
            fg = [col for col, o in zip(cols, on) if o] or cols
            bg = [col for col, o in zip(cols, on) if not o] or cols
            mean = lambda cs: tuple(sum(ch) // len(cs) for ch in zip(*cs))  # noqa: E731
            text.append(QUADRANTS[idx], Style(color=_rgb(mean(fg)), bgcolor=_rgb(mean(bg))))
        if r < 26:
            text.append("\n")
    return text


def image_text(values: bytes | Sequence[float], *, scale: float = 255.0, sign: bool = False) -> Text:
    """784 values → a rich Text of 14 lines × 28 cells.

    The glyphs are those of :func:`tui_adv.views.halfblock` (▀ ▄ █ and ░ ▒ for faint cells), so the
    shape reads without colour (copy/paste, capture-pane); the colours then give each of the two pixels
    of a cell its exact grey (sign images: white +1, black −1, grey 0)."""
    vals = list(values)
    text = Text(no_wrap=True, overflow="crop")
    cache: dict[tuple, Style] = {}

    def style(fg: tuple[int, int, int], bg: tuple[int, int, int]) -> Style:
        key = (fg, bg)
        st = cache.get(key)
        if st is None:
            st = cache[key] = Style(color=_rgb(fg), bgcolor=_rgb(bg))
        return st

    for r in range(0, 28, 2):
        for c in range(28):
            a, b = vals[r * 28 + c], vals[(r + 1) * 28 + c]
            if sign:
                top_c, bot_c = SIGN_COLOURS.get(int(a), (128, 128, 128)), SIGN_COLOURS.get(int(b), (128, 128, 128))
                t_on, b_on = int(a) == 2, int(b) == 2
                lt = lb = 0.0
            else:
                lt, lb = a / scale, b / scale
                top_c, bot_c = _grey(lt), _grey(lb)
                t_on, b_on = lt >= 0.5, lb >= 0.5
            if t_on and b_on:
                avg = tuple((x + y) // 2 for x, y in zip(top_c, bot_c))
                text.append("█", style(avg, avg))
            elif t_on:
                text.append("▀", style(top_c, bot_c))
            elif b_on:
                text.append("▄", style(bot_c, top_c))
            else:
                level = max(lt, lb)
                glyph = "▒" if level > 0.3 else "░" if level > 0.08 else " "
                hi, lo = (top_c, bot_c) if lt >= lb else (bot_c, top_c)
                if glyph == " ":
                    text.append(" ", style(hi, tuple((x + y) // 2 for x, y in zip(top_c, bot_c))))
                else:
                    text.append(glyph, style(hi, lo))
        if r < 26:
            text.append("\n")
    return text


def colour_image_text(values: bytes | Sequence[float], *, sign: bool = False) -> Text:
    """3072 values (R, G, B planes of 32×32) → a rich Text of 16 lines × 32 '▀' cells in the image's own
    colours (a sign image: each channel's −1/0/+1 as 0/128/255)."""
    from ...views import colour_cells

    text = Text(no_wrap=True, overflow="crop")
    rows = colour_cells(values, sign=sign)
    for i, row in enumerate(rows):
        for top, bot in row:
            text.append("▀", Style(color=_rgb(top), bgcolor=_rgb(bot)))
        if i < len(rows) - 1:
            text.append("\n")
    return text


class Digit(Widget):
    """One image with a caption of up to three lines below it."""

    DEFAULT_CSS = """
    Digit { width: 30; height: 18; padding: 0 1; }
    """

    def __init__(self, caption: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self._values: bytes | Sequence[float] | None = None
        self._opts: dict = {}
        self._caption = caption

    def show(self, values: bytes | Sequence[float] | None, caption: str = "", *, scale: float = 255.0, sign: bool = False) -> None:
        if values is not None and (len(values) not in (784, 3072) or not all(isinstance(v, (int, float)) for v in values)):
            values, caption = None, "[red](damaged image: not 28×28 or 32×32 colour)[/red]\n" + caption  # a bad stored blob, not a crash
        if values is not None and len(values) == 3072:  # a 32×32 colour image needs 4 more columns and 2 more rows
            self.styles.width, self.styles.height = 34, 20
        self._values = values
        self._opts = {"scale": scale, "sign": sign}
        self._caption = caption
        self.refresh(layout=True)

    @property
    def compact(self) -> bool:
        """Quadrant glyphs (14 columns) when the terminal is too narrow for three 28-column images."""
        return self.screen.has_class("-narrow")

    def render(self) -> Text:
        out = Text(no_wrap=False, overflow="fold")
        if self._values is not None and len(self._values) == 3072:
            out.append_text(colour_image_text(self._values, sign=self._opts.get("sign", False)))
        elif self._values is not None:
            out.append_text((quadrant_text if self.compact else image_text)(self._values, **self._opts))
        else:
            out.append("\n" * 13)
        out.append("\n")
        out.append(Text.from_markup(self._caption) if self._caption else Text(""))
        return out
