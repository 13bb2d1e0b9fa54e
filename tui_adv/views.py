"""Plain-text renderings shared by the CLI and the dashboard (no textual/rich here).

- :func:`halfblock` draws a 28×28 image in 14 text rows with ▀/▄/█ (two pixels per character cell),
  using a grey ramp of shade characters when colour is not available.
- :func:`sign_image` draws a sign perturbation: + as █, − as space, 0 as ·.
- :func:`accuracy_chart` draws accuracy-vs-ε curves with plotext and returns the text.
- :func:`logit_curve_chart` draws the P20 artifact (logits along one FGSM direction, one line per class).
- :func:`weights_view` draws the P21 artifact (first-layer weights: |w| and sign(w) as block images).

Both analysis renderers raise :class:`ValueError` (one-line message) for a malformed artifact, so a
caller can degrade to a note instead of a traceback. plotext keeps global state: every chart is built
under :data:`PLOT_LOCK`, so the dashboard may call these from worker threads.
"""

from __future__ import annotations

import math
import re
import textwrap
import threading
from collections import Counter
from typing import Any, Mapping, Sequence

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PLOT_LOCK = threading.Lock()


IMAGE_SHAPES = {784: (1, 28, 28), 3072: (3, 32, 32)}  # a stored sample's bytes → (channels, height, width)


def image_shape(data: bytes | Sequence[float] | None) -> tuple[int, int, int] | None:
    """The shape of a stored sample image by its length: 784 grey 28×28 (the MNIST family), 3072 colour
    32×32 (CIFAR-10, planes R, G, B); None for anything else (a damaged blob)."""
    return None if data is None else IMAGE_SHAPES.get(len(data))


def grey(data: bytes | Sequence[float]) -> list[float]:
    """A colour image (3072 values, R, G, B planes) as its luminance (1024 values, ITU-R 601 weights);
    a grey image as it is."""
    if len(data) != 3072:
        return list(data)
    r, g, b = data[:1024], data[1024:2048], data[2048:]
    return [0.299 * x + 0.587 * y + 0.114 * z for x, y, z in zip(r, g, b)]


def grey_sign(sign: bytes | Sequence[int]) -> bytes:
    """A colour sign image (stored 0/1/2 per channel) as one sign per pixel, the sign of the channels'
    sum (stored 0/1/2 again); a grey sign image as it is."""
    if len(sign) != 3072:
        return bytes(sign)
    out = bytearray(1024)
    for i in range(1024):
        t = int(sign[i]) + int(sign[1024 + i]) + int(sign[2048 + i]) - 3
        out[i] = 2 if t > 0 else 0 if t < 0 else 1
    return bytes(out)


def colour_cells(data: bytes | Sequence[float], *, sign: bool = False) -> list[list[tuple[tuple[int, int, int], tuple[int, int, int]]]]:
    """A colour image (3072 values, R, G, B planes of 32×32, 0..255) as 16 rows of 32 cells, each the
    (top, bottom) pixel's RGB: drawn as '▀' with the top pixel as foreground and the bottom as background.
    ``sign``: the stored 0/1/2 (−1/0/+1) of each channel shown as 0/128/255, so the perturbation's colour
    is the direction it pushes each channel."""
    if len(data) != 3072:
        raise ValueError(f"a colour image has 3072 values (3×32×32), not {len(data)}")
    level = (lambda v: (0, 128, 255)[min(max(int(v), 0), 2)]) if sign else (lambda v: int(round(min(max(float(v), 0.0), 255.0))))  # noqa: E731
    px = [(level(data[i]), level(data[1024 + i]), level(data[2048 + i])) for i in range(1024)]
    return [[(px[r * 32 + c], px[(r + 1) * 32 + c]) for c in range(32)] for r in range(0, 32, 2)]


def _grid(data: bytes | Sequence[float], scale: float, side: int = 28) -> list[list[float]]:
    vals = [v / scale for v in data]
    return [vals[r * side : (r + 1) * side] for r in range(side)]


def halfblock(data: bytes | Sequence[float], *, scale: float = 255.0) -> list[str]:
    """28×28 image (784 values, 0..scale) → 14 lines of 28 characters, two pixel rows per line (a
    32×32 image, 1024 values, or a colour one, 3072, shown by its luminance: 16 lines of 32).

    Each cell shows the top and bottom pixel with the half-block glyphs (a pixel is "on" at ≥ .5); a
    cell with neither pixel on is shaded by its brighter pixel (▒ > .3, ░ > .08), so faint
    perturbations of the background stay visible.
    """
    vals = grey(data)
    side = 32 if len(vals) == 1024 else 28
    g = _grid(vals, scale, side)
    lines = []
    for r in range(0, side, 2):
        row = []
        for c in range(side):
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
    """Sign perturbation stored as 0/1/2 (−1/0/+1) → 14 lines: upper/lower pixel per cell (a colour one:
    the sign of its channels' sum, 16 lines of 32)."""
    vals = list(grey_sign(sign))
    side = 32 if len(vals) == 1024 else 28
    lines = []
    for r in range(0, side, 2):
        row = []
        for c in range(side):
            t, b = vals[r * side + c] == 2, vals[(r + 1) * side + c] == 2
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

    with PLOT_LOCK:
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


# ------------------------------------------------------------------------------------------------ P20: logit curve
def _finite(v: Any, what: str) -> float:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"{what} is not a finite number: {v!r}")
    return float(v)


def _logit_series(curve: Any) -> tuple[list[float], list[list[float]], int | None]:
    """Validated (epsilons, per-class series, true class or None) of a ``logit_curve`` artifact."""
    if not isinstance(curve, Mapping):
        raise ValueError(f"logit_curve artifact is a {type(curve).__name__}, not an object")
    eps, rows = curve.get("epsilons"), curve.get("logits")
    if not isinstance(eps, list) or not isinstance(rows, list) or len(eps) < 2:
        raise ValueError("logit_curve artifact needs lists 'epsilons' (≥ 2 values) and 'logits'")
    if len(rows) != len(eps):
        raise ValueError(f"logit_curve artifact has {len(eps)} epsilons but {len(rows)} logit rows")
    if not all(isinstance(r, list) for r in rows) or len({len(r) for r in rows}) != 1 or not 2 <= len(rows[0]) <= 10:
        raise ValueError("logit_curve artifact's 'logits' must be rows of 2 to 10 numbers, the same count in each")
    xs = [_finite(e, "an epsilon") for e in eps]
    if max(xs) <= min(xs):
        raise ValueError("logit_curve artifact's epsilons do not span a range")
    k = len(rows[0])
    series = [[_finite(r[c], f"a logit of class {c}") for r in rows] for c in range(k)]
    digit = curve.get("digit")
    true = digit if isinstance(digit, int) and not isinstance(digit, bool) and 0 <= digit < k else None
    return xs, series, true


def logit_winners(curve: Any) -> dict[str, Any]:
    """Which class has the largest logit along the curve: the wrong class winning most often for ε < 0
    and for ε > 0 (None where the true class always wins), and the share of |ε| ≥ 1 won by a wrong class."""
    return _winners(*_logit_series(curve))


def _winners(xs: list[float], series: list[list[float]], true: int | None) -> dict[str, Any]:
    k = len(series)
    winner = [max(range(k), key=lambda c: series[c][i]) for i in range(len(xs))]

    def top_wrong(keep) -> int | None:  # noqa: ANN001
        counts = Counter(w for x, w in zip(xs, winner) if keep(x) and w != true)
        return counts.most_common(1)[0][0] if counts else None

    big = [w for x, w in zip(xs, winner) if abs(x) >= 1]
    return {
        "true": true,
        "wins_negative": top_wrong(lambda x: x < 0),
        "wins_positive": top_wrong(lambda x: x > 0),
        "wrong_fraction_abs_eps_ge_1": (sum(w != true for w in big) / len(big)) if big and true is not None else None,
    }


def logit_curve_chart(curve: Any, *, width: int = 78, height: int = 24) -> str:
    """The P20 artifact as text: the logits of one test image along its FGSM direction (ε on x, from the
    artifact's smallest to largest ε, e.g. −15..15), one line per class drawn with that class's digit,
    the true class and the winning wrong class(es) drawn last (on top), then a key naming every line.

    Raises ValueError for a malformed artifact."""
    import plotext as plt

    xs, series, true = _logit_series(curve)
    win = _winners(xs, series, true)
    labels = {c: str(c) for c in range(len(series))}
    neg, pos = win["wins_negative"], win["wins_positive"]
    if neg is not None and neg == pos:
        labels[neg] = f"{neg} wins (wrong class)"
    else:
        if neg is not None:
            labels[neg] = f"{neg} wins for ε < 0"
        if pos is not None:
            labels[pos] = f"{pos} wins for ε > 0"
    if true is not None:
        labels[true] = f"{true} true class"
    on_top = [c for c in (neg, pos, true) if c is not None]
    order = [c for c in range(len(series)) if c not in on_top] + list(dict.fromkeys(on_top))
    lo, hi = min(xs), max(xs)
    ticks = _ticks(lo, hi)
    digit = curve.get("digit", "?")
    index = curve.get("index")
    title = f"P20: logits of a '{digit}'" + (f" (test image #{index})" if isinstance(index, int) else "") + " along its FGSM direction"
    with PLOT_LOCK:
        plt.clear_figure()
        plt.limit_size(False, False)
        plt.plotsize(width, height)
        plt.theme("clear")
        for c in order:
            plt.plot(xs, series[c], marker=str(c))
        plt.xlim(lo, hi)
        plt.xticks(ticks, [f"{t:g}" for t in ticks])
        plt.xlabel("ε (unclipped)")
        plt.ylabel("logit")
        plt.title(title if len(title) <= width - 4 else "P20: logits along the FGSM direction")
        chart = ANSI.sub("", plt.build()).rstrip("\n")
    key = "lines, each drawn with its class's digit: " + ", ".join(labels[c] for c in range(len(series)))
    notes = []
    frac = curve.get("wrong_fraction_abs_eps_ge_1", win["wrong_fraction_abs_eps_ge_1"])
    if isinstance(frac, (int, float)) and not isinstance(frac, bool):
        notes.append(f"a wrong class wins at {100 * frac:.0f}% of the ε with |ε| ≥ 1")
    r2 = curve.get("mean_r2_piecewise")
    if isinstance(r2, (int, float)) and not isinstance(r2, bool):
        notes.append(f"logits piecewise linear in ε: mean R² {r2:.3f} on each side of 0")
    text = [chart, *textwrap.wrap(key, width=width, subsequent_indent="  ")]
    if notes:
        text += textwrap.wrap(" · ".join(notes), width=width, subsequent_indent="  ")
    return "\n".join(text)


def _ticks(lo: float, hi: float) -> list[float]:
    """About seven round ticks from lo to hi, both ends included (−15, −10, …, 15 for ±15)."""
    span = hi - lo
    step = next(s * 10**e for e in range(math.floor(math.log10(span / 6)) - 1, 10) for s in (1, 2, 2.5, 5) if s * 10**e >= span / 6.5)
    first = math.ceil(lo / step - 1e-9) * step
    ticks = [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]
    ticks = [round(t, 10) for t in ticks]
    for end in (lo, hi):
        if all(abs(t - end) > step / 2 for t in ticks):
            ticks.append(end)
    return sorted(set(ticks))


# ------------------------------------------------------------------------------------------------ P21: weights
def _magnitude(filt: Sequence[float], signs: Sequence[int] | None) -> list[float]:
    """A filter stored min..max-scaled to [0, 1] → |w| scaled to [0, 1] (by its 99th percentile).

    The stored scaling lost where w = 0 is; it lies between the largest negative-weight pixel and the
    smallest positive one (the stored signs tell them apart). Most pixels of a filter carry small
    weights, so the median, moved into that interval, stands in for it."""
    neg = [v for v, s in zip(filt, signs or ()) if s < 0]
    pos = [v for v, s in zip(filt, signs or ()) if s > 0]
    zero = sorted(filt)[len(filt) // 2]
    if neg:
        zero = max(zero, max(neg))
    if pos:
        zero = min(zero, min(pos))
    mag = [abs(v - zero) for v in filt]
    top = sorted(mag)[int(0.99 * (len(mag) - 1))] or max(mag) or 1.0
    return [min(1.0, v / top) for v in mag]


def _role_images(role: str, data: Any) -> tuple[list[list[float]], list[list[int]] | None, float | None]:
    if not isinstance(data, Mapping):
        raise ValueError(f"weights artifact: {role!r} is a {type(data).__name__}, not an object")
    filters = data.get("filters")
    if not isinstance(filters, list) or not filters:
        raise ValueError(f"weights artifact: {role!r} has no 'filters' list")
    out = []
    for i, f in enumerate(filters):
        if not isinstance(f, list) or len(f) != 784:
            raise ValueError(f"weights artifact: {role!r} filter {i} is not 784 values (28×28)")
        out.append([_finite(v, f"a weight of {role} filter {i}") for v in f])
    signs = data.get("signs")
    if signs is not None:
        ok = isinstance(signs, list) and len(signs) == len(out) and all(isinstance(s, list) and len(s) == 784 and all(v in (-1, 0, 1) for v in s) for s in signs)
        if not ok:
            raise ValueError(f"weights artifact: {role!r} 'signs' must be one list of 784 values in {{−1, 0, 1}} per filter")
    loc = data.get("localization")
    loc = float(loc) if isinstance(loc, (int, float)) and not isinstance(loc, bool) and math.isfinite(loc) else None
    return out, signs, loc


def weights_view(weights: Any, *, width: int = 80, gap: int = 3) -> list[str]:
    """The P21 artifact (role → {filters, signs, localization}) as text lines.

    Per role: a heading with the localization value, then block images (14 rows for 28×28): for a single
    filter (logistic regression) |w| and sign(w) side by side; for many (maxout) as many |w| images as
    fit in ``width`` (the stored filters are the largest-norm ones). Raises ValueError when malformed."""
    if not isinstance(weights, Mapping) or not weights:
        raise ValueError("weights artifact is not a non-empty object of role → images")
    per_row = max(1, (width + gap) // (28 + gap))
    lines = [
        "P21: first-layer weights. |w| images: █ ≥ half the filter's largest |w|, ▒ ░ weaker, blank ≈ 0;",
        "  sign(w): █ = positive, blank = negative. Localization = share of |w| in the 10% largest pixels",
        "  (≈ 0.10 for a flat filter, 1.0 when all of it sits in 78 pixels).",
    ]
    if width < 96:
        lines = textwrap.wrap(" ".join(x.strip() for x in lines), width=width, subsequent_indent="  ")
    for role, data in weights.items():
        filters, signs, loc = _role_images(str(role), data)
        n = len(filters)
        head = f"{role}: localization {loc:.3f}" if loc is not None else f"{role}: localization —"
        lines.append("")
        if n == 1:
            lines.append(head + " · 1 filter")
            blocks = [halfblock(_magnitude(filters[0], signs[0] if signs else None), scale=1.0)]
            titles = ["|w|"]
            if signs:
                blocks.append(sign_image(bytes(v + 1 for v in signs[0])))
                titles.append("sign(w)")
            lines += side_by_side(blocks, titles, gap=gap)
            continue
        shown = min(n, per_row)
        lines.append(head + f" · {n} filters" + (f", the first {shown} shown" if shown < n else ""))
        blocks = [halfblock(_magnitude(filters[i], signs[i] if signs else None), scale=1.0) for i in range(shown)]
        lines += side_by_side(blocks, [f"|w| #{i}" for i in range(shown)], gap=gap)
    return [line.rstrip() for line in lines]
