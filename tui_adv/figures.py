"""The paper's figures, regenerated from the catalog as images (``adv-tui report --figures DIR``).

Each figure is drawn with matplotlib's object API (``matplotlib.figure.Figure``, no pyplot global state,
no display needed) and saved as PNG and SVG:

- ``accuracy_vs_eps``: FGSM error vs ε of every model the suite trains, the paper's numbers as stars.
- ``fig2_logreg_3v7``: the 3-vs-7 logistic regression's weights w, sign(w) and adversarial examples.
- ``fig3_maxout_filters``: first-layer maxout filters of the naive and the adversarially trained model.
- ``fig4_logits``: the logits of one test digit along its FGSM direction, ε ∈ [−15, 15] (unclipped).
- ``digits``: clean digit / perturbation sign(∇ₓJ) / adversarial digit, with predictions and confidences.

A figure whose runs are missing is skipped with the command that makes them (:attr:`Figure.missing`).
Runs are found like the scorecard finds them (:class:`tui_adv.claims.Ctx`: by validated-config identity,
whichever command made the run). No textual/rich here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .catalog.schema import Run
from .catalog.store import Store
from .errors import UserError

# The paper's FGSM numbers at ε = .25 (error %, Goodfellow et al. 2015 §4–§8) and clean errors at ε = 0,
# per suite step; the claim each comes from is in the label.
PAPER_POINTS: dict[str, list[tuple[float, float, str]]] = {
    "softmax": [(0.25, 99.9, "P01")],
    "logreg_3v7": [(0.0, 1.6, "P03"), (0.25, 99.0, "P04")],
    "maxout": [(0.0, 0.94, "P06"), (0.25, 89.4, "P02")],
    "maxout_adv": [(0.0, 0.84, "P06"), (0.25, 17.9, "P09")],
    "rbf": [(0.25, 55.4, "P15")],
}
# the model steps drawn in the accuracy-vs-ε figure, with the reading the scorecard's verdict uses
CURVE_STEPS: dict[str, dict[str, Any]] = {
    "softmax": {},
    "logreg_3v7": {},
    "rbf": {"cost": "true_class", "clip": True},
    "maxout": {"gradient": "eval", "clip": False},
    "maxout_adv": {"gradient": "eval", "clip": False},
    "maxout_sigmoid": {"gradient": "eval", "clip": False},
    "maxout1600": {"gradient": "eval", "clip": False},
    "maxout_sign_noise": {"gradient": "eval", "clip": False},
    "maxout_uniform_noise": {"gradient": "eval", "clip": False},
    "inception": {},
}


@dataclass
class Figure:
    """One figure: its file stem, title, caption (what it shows, from which runs), the files written."""

    name: str
    title: str
    caption: str = ""
    runs: list[int] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    missing: str | None = None  # why it was not drawn, and the command that would make its runs

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "caption": self.caption, "runs": self.runs,
                "files": [str(p) for p in self.files], "missing": self.missing}


def _mpl():
    try:
        from matplotlib.figure import Figure as MplFigure
    except ImportError:
        raise UserError("report --figures needs matplotlib: pip install matplotlib") from None
    return MplFigure


def _save(fig, out: Path, name: str) -> list[Path]:  # noqa: ANN001 - a matplotlib Figure
    files = []
    for ext in ("png", "svg"):
        p = out / f"{name}.{ext}"
        fig.savefig(p, format=ext, dpi=120 if ext == "png" else None, bbox_inches="tight")
        files.append(p)
    return files


def _pick_sweep(sweeps: list[dict], want: dict[str, Any]) -> dict | None:
    """The true-label FGSM sweep of the wanted reading, else the run's default (first) sweep."""
    fgsm = [s for s in sweeps if s.get("attack") == "fgsm" and s.get("labels") == "true"] or sweeps
    for s in fgsm:
        if all(s.get(k) == v for k, v in want.items()):
            return s
    return fgsm[0] if fgsm else None


def _reading_text(s: dict) -> str:
    parts = [f"{s.get('gradient', 'eval')} gradient" if s.get("gradient") != "eval" else "eval-mode gradient",
             "clipped" if s.get("clip", True) else "unclipped"]
    if s.get("cost", "train") != "train":
        parts.append(f"{str(s['cost']).replace('_', '-')} cost")
    return ", ".join(parts)


def _pixels(data: bytes) -> list[list[float]]:
    return [[data[r * 28 + c] / 255.0 for c in range(28)] for r in range(28)]


def _signs(data: bytes) -> list[list[float]]:
    return [[float(data[r * 28 + c]) - 1.0 for c in range(28)] for r in range(28)]


def _image(ax, img, *, cmap: str = "gray", vmin: float = 0.0, vmax: float = 1.0, title: str = "") -> None:  # noqa: ANN001
    ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)


def _model_weight(store: Store, run: Run):  # noqa: ANN201 - a torch tensor (out, 784) or None
    """The run's first-layer weights from its checkpoint, or None when it has none (then the caller
    falls back to the stored weights artifact)."""
    if not run.checkpoint_path or not Path(run.checkpoint_path).is_file():
        return None
    try:
        from .checkpoints import load_model

        model = load_model(int(run.id), store.url)
        return model.first_layer_weight().detach().cpu().reshape(-1, 784)
    except Exception:  # noqa: BLE001 - an unreadable checkpoint: fall back to the artifact
        return None


# ------------------------------------------------------------------------------------------------ the figures
def accuracy_vs_eps(ctx, out: Path) -> Figure:  # noqa: ANN001 - a claims.Ctx
    fig_ = Figure("accuracy_vs_eps", "FGSM error vs ε, every model, with the paper's numbers")
    curves = []
    for key, want in CURVE_STEPS.items():
        run = ctx.resolve(key)
        if run is None:
            continue
        s = _pick_sweep(ctx.store.sweeps(int(run.id)), want)
        if s is None or len(s["points"]) < 2:
            continue
        curves.append((key, run, s))
    if not curves:
        fig_.missing = "no completed run with a sweep; `adv-tui reproduce --only P01,P02,P06,P15` makes them"
        return fig_
    MplFigure = _mpl()
    fig = MplFigure(figsize=(9, 5.2), layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    colours = [f"C{i}" for i in range(10)]
    readings = []
    for i, (key, run, s) in enumerate(curves):
        xs = [p["epsilon"] for p in s["points"]]
        ys = [100 * p["error"] for p in s["points"]]
        n = s["points"][-1].get("n")
        ax.plot(xs, ys, marker="o", ms=3, color=colours[i % 10], label=f"{key} (run {run.id}, n={n})")
        for eps, err, claim in PAPER_POINTS.get(key, []):
            ax.plot([eps], [err], marker="*", ms=13, color=colours[i % 10], markeredgecolor="black", linestyle="none")
            ax.annotate(claim, (eps, err), textcoords="offset points", xytext=(6, -3), fontsize=7)
        readings.append(f"{key}: {_reading_text(s)}")
        fig_.runs.append(int(run.id))
    ax.plot([], [], marker="*", ms=11, color="white", markeredgecolor="black", linestyle="none", label="the paper's number (claim id)")
    ax.set_xlabel("ε (FGSM step, pixels in [0, 1])")
    ax.set_ylabel("test error %")
    ax.set_ylim(-2, 102)
    ax.grid(alpha=0.3)
    ax.set_title(fig_.title)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    fig_.files = _save(fig, out, fig_.name)
    fig_.caption = ("Test error under FGSM (true labels) against ε for each trained model; stars are the paper's values "
                    "at the same ε, labelled with their claim. Readings (the one each claim's verdict uses): " + "; ".join(readings) + ".")
    return fig_


def fig2_logreg(ctx, out: Path) -> Figure:  # noqa: ANN001
    fig_ = Figure("fig2_logreg_3v7", "Fig. 2: logistic regression on 3 vs 7")
    run = ctx.resolve("logreg_3v7")
    if run is None:
        fig_.missing = "no completed 3-vs-7 logistic regression; `adv-tui reproduce --only P03` makes it"
        return fig_
    store = ctx.store
    w = _model_weight(store, run)
    if w is None:
        art = store.artifacts(int(run.id)).get("weights") or {}
        fig_.missing = "the 3-vs-7 run has no checkpoint to read its weights from" if not art else None
        if art:
            vals = art.get("filters", [[0.5] * 784])[0]
            w = [v - 0.5 for v in vals]
        else:
            return fig_
    else:
        w = w[0].tolist()
    top = max(abs(v) for v in w) or 1.0
    wimg = [[w[r * 28 + c] for c in range(28)] for r in range(28)]
    simg = [[(1.0 if v > 0 else -1.0 if v < 0 else 0.0) for v in row] for row in wimg]
    samples = [s for s in store.samples(int(run.id)) if s.epsilon > 0]
    eps = max((s.epsilon for s in samples), default=None)
    shown = [s for s in samples if s.epsilon == eps][:6]
    MplFigure = _mpl()
    cols = 2 + max(1, len(shown))
    fig = MplFigure(figsize=(1.7 * cols, 2.5), layout="constrained")
    axes = fig.subplots(1, cols)
    ax = axes[0]
    im = ax.imshow(wimg, cmap="RdBu_r", vmin=-top, vmax=top, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title("(a) weights w", fontsize=8)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
    _image(axes[1], simg, vmin=-1, vmax=1, title="(b) sign(w)")
    sweep = _pick_sweep(store.sweeps(int(run.id)), {})
    err = None
    if sweep and eps is not None:
        err = next((p["error"] for p in sweep["points"] if abs(p["epsilon"] - eps) < 1e-9), None)
    if not shown:
        axes[2].axis("off")
        axes[2].text(0.5, 0.5, "no stored\nsamples", ha="center", va="center", fontsize=8)
    names = {0: "3", 1: "7"}
    for ax, s in zip(axes[2:], shown):
        _image(ax, _pixels(s.adversarial), title=f"{names.get(s.label, s.label)} → pred {names.get(s.adv_pred, s.adv_pred)}\n({100 * s.adv_conf:.0f}%)")
    if shown:
        axes[2].set_ylabel(f"(c) ε = {eps:g}", fontsize=8)
    fig.suptitle(fig_.title + (f": error {100 * err:.1f}% at ε = {eps:g} (paper: 99% at .25)" if err is not None else ""), fontsize=9)
    fig_.files = _save(fig, out, fig_.name)
    fig_.runs = [int(run.id)]
    fig_.caption = (f"Run {run.id}. (a) The weights of the logistic regression trained to tell 3s (label 0) from 7s (label 1), "
                    "red positive, blue negative; (b) their sign, the direction FGSM moves every pixel; "
                    + (f"(c) adversarial examples at ε = {eps:g}, true class → predicted class (confidence)." if shown else "(c) no samples were stored."))
    return fig_


def _unit_filters(w, units: int, pieces: int, n_units: int) -> tuple[list[int], list[list[list[float]]]]:  # noqa: ANN001
    """The ``n_units`` maxout units with the largest weight norm, each as its ``pieces`` 28×28 filters."""
    import torch

    w = w.reshape(units, pieces, 784)
    order = w.norm(dim=(1, 2)).topk(min(n_units, units)).indices.sort().values.tolist()
    rows = []
    for u in order:
        rows.append([w[u, p].reshape(28, 28).tolist() for p in range(pieces)])
    del torch
    return order, rows


def fig3_maxout(ctx, out: Path, n_units: int = 6) -> Figure:  # noqa: ANN001
    fig_ = Figure("fig3_maxout_filters", "Fig. 3: first-layer maxout filters, naive vs adversarially trained")
    panels = []
    for key, label in (("maxout", "naive"), ("maxout_adv", "adversarially trained")):
        run = ctx.resolve(key)
        if run is None:
            continue
        w = _model_weight(ctx.store, run)
        if w is None:
            continue
        cfg = run.config().get("model", {})
        units, pieces = int(cfg.get("units", 240)), int(cfg.get("pieces", 5))
        if w.shape[0] != units * pieces:
            continue
        order, rows = _unit_filters(w, units, pieces, n_units)
        panels.append((label, run, order, rows))
    if not panels:
        fig_.missing = "no maxout checkpoints; `adv-tui reproduce --only P06` trains the naive and adversarial maxouts"
        return fig_
    MplFigure = _mpl()
    pieces = len(panels[0][3][0])
    nrows = max(len(p[3]) for p in panels)
    fig = MplFigure(figsize=(1.1 * pieces * len(panels) + 0.6, 1.15 * nrows + 0.8), layout="constrained")
    sub = fig.subfigures(1, len(panels), wspace=0.04)
    sub = list(sub) if len(panels) > 1 else [sub]
    for sf, (label, run, order, rows) in zip(sub, panels):
        axes = sf.subplots(len(rows), pieces, squeeze=False)
        for r, (u, filt) in enumerate(zip(order, rows)):
            for p in range(pieces):
                img = filt[p]
                top = max(abs(v) for line in img for v in line) or 1.0
                _image(axes[r][p], img, vmin=-top, vmax=top)
            axes[r][0].set_ylabel(f"unit {u}", fontsize=7)
        sf.suptitle(f"{label} (run {run.id})", fontsize=9)
        fig_.runs.append(int(run.id))
    fig.suptitle(fig_.title, fontsize=10)
    fig_.files = _save(fig, out, fig_.name)
    fig_.caption = (f"Each row is one maxout unit of the first layer (the {nrows} units with the largest weight norm), each column "
                    f"one of its {pieces} linear pieces, grey scale symmetric around w = 0 per filter (white positive, black negative). "
                    "The paper reports the adversarially trained filters as more localized and more interpretable.")
    if len(panels) < 2:
        fig_.caption += " Only one of the two models has a checkpoint; `adv-tui reproduce --only P06` makes the other."
    return fig_


def fig4_logits(ctx, out: Path) -> Figure:  # noqa: ANN001
    from .views import _logit_series, _winners

    fig_ = Figure("fig4_logits", "Fig. 4: logits along one FGSM direction, ε ∈ [−15, 15]")
    run = ctx.resolve("logit_curve")
    curve = None if run is None else ctx.store.artifacts(int(run.id)).get("logit_curve")
    if curve is None:
        fig_.missing = "no logit-curve analysis run; `adv-tui reproduce --only P20` makes it"
        return fig_
    try:
        xs, series, true = _logit_series(curve)
    except ValueError as e:
        fig_.missing = f"run {run.id}'s logit curve is malformed ({e})"
        return fig_
    win = _winners(xs, series, true)
    MplFigure = _mpl()
    fig = MplFigure(figsize=(9, 5.6), layout="constrained")
    ax, band = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [6, 1]})
    for c, ys in enumerate(series):
        strong = c == true or c in (win["wins_negative"], win["wins_positive"])
        ax.plot(xs, ys, color=f"C{c}", lw=2.2 if strong else 1.0, alpha=1.0 if strong else 0.7,
                label=f"{c}" + (" (true class)" if c == true else ""))
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_ylabel("logit")
    ax.grid(alpha=0.3)
    ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{fig_.title}: a '{curve.get('digit', '?')}' (test image #{curve.get('index', '?')}), run {run.id}", fontsize=10)
    winner = [max(range(len(series)), key=lambda c: series[c][i]) for i in range(len(xs))]
    band.scatter(xs, [0] * len(xs), c=[f"C{w}" for w in winner], marker="s", s=18)
    for i in range(len(xs)):
        if i == 0 or winner[i] != winner[i - 1]:
            band.annotate(str(winner[i]), (xs[i], 0), textcoords="offset points", xytext=(0, 6), fontsize=8)
    band.set_yticks([])
    band.set_ylabel("argmax", fontsize=8)
    band.set_xlabel("ε (x + ε·sign(∇ₓJ), unclipped)")
    fig_.files = _save(fig, out, fig_.name)
    fig_.runs = [int(run.id)]
    frac, r2 = curve.get("wrong_fraction_abs_eps_ge_1"), curve.get("mean_r2_piecewise")
    fig_.caption = ("The logits of one test digit as it moves along its FGSM direction, ε from −15 to 15 without clipping; the "
                    "bottom strip is the predicted class at each ε. The paper's point: the logits are piecewise linear in ε, so a "
                    "wrong class wins over most of the range."
                    + (f" Here a wrong class wins at {100 * frac:.0f}% of the ε with |ε| ≥ 1" if isinstance(frac, (int, float)) else "")
                    + (f", mean R² of a line on each side of 0: {r2:.3f}." if isinstance(r2, (int, float)) else "."))
    return fig_


def digit_grid(ctx, out: Path, rows: int = 6) -> Figure:  # noqa: ANN001
    fig_ = Figure("digits", "Clean / perturbation / adversarial digits")
    # the model that learned best among those with stored samples (an untrained one fools nothing)
    found = [r for r in (ctx.resolve(k) for k in ("maxout", "softmax", "maxout_adv", "rbf")) if r is not None and ctx.store.samples(int(r.id))]
    sample_run = min(found, key=lambda r: 1.0 if r.clean_error is None else r.clean_error, default=None)
    if sample_run is None:
        fig_.missing = "no run with stored samples; `adv-tui reproduce --only P02` makes the maxout's"
        return fig_
    samples = ctx.store.samples(int(sample_run.id))
    eps = 0.25 if any(abs(s.epsilon - 0.25) < 1e-9 for s in samples) else max(s.epsilon for s in samples)
    shown = [s for s in samples if abs(s.epsilon - eps) < 1e-9][:rows]
    MplFigure = _mpl()
    fig = MplFigure(figsize=(1.55 * len(shown) + 0.9, 5.6), layout="constrained")
    axes = fig.subplots(3, len(shown), squeeze=False)
    for c, s in enumerate(shown):
        _image(axes[0][c], _pixels(s.clean), title=f"{s.label} → {s.clean_pred} ({100 * s.clean_conf:.0f}%)")
        _image(axes[1][c], _signs(s.sign), vmin=-1, vmax=1)
        ok = s.adv_pred == s.label
        _image(axes[2][c], _pixels(s.adversarial), title=f"→ {s.adv_pred} ({100 * s.adv_conf:.0f}%)" + (" ✓" if ok else ""))
    for r, label in enumerate(("clean", f"sign(∇ₓJ)\n(× {eps:g})", "adversarial")):
        axes[r][0].set_ylabel(label, fontsize=9)
    fig.suptitle(f"{sample_run.experiment} (run {sample_run.id}), FGSM ε = {eps:g}", fontsize=10)
    fig_.files = _save(fig, out, fig_.name)
    fig_.runs = [int(sample_run.id)]
    fig_.caption = (f"Test digits of run {sample_run.id} ({sample_run.name}). Top row: the clean image, titled true class → predicted "
                    f"class (confidence); middle: the sign of the perturbation (white +, black −); bottom: the adversarial image "
                    f"x + {eps:g}·sign(∇ₓJ) (clipped to [0, 1]), titled with the model's prediction and confidence (✓ where it is still right).")
    return fig_


FIGURES = (accuracy_vs_eps, fig2_logreg, fig3_maxout, fig4_logits, digit_grid)
FIGURES_NAMES = ("accuracy_vs_eps", "fig2_logreg_3v7", "fig3_maxout_filters", "fig4_logits", "digits")


def write_figures(store: Store, out_dir: str | Path, profile: str = "quick") -> list[Figure]:
    """Draw every figure the catalog has runs for into ``out_dir`` (created); the ones without runs are
    returned with ``missing`` set and no files."""
    from .claims import Ctx

    out = Path(out_dir).expanduser()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create the figures directory {out}: {e.strerror or e}") from None
    ctx = Ctx(store, profile)
    return [f(ctx, out) for f in FIGURES]


def markdown_section(figures: Sequence[Figure], relative_to: Path | None = None) -> list[str]:
    """The figures as Markdown: a heading, each PNG embedded with its caption, then the missing ones."""
    lines = ["## Figures", ""]
    for f in figures:
        if not f.files:
            continue
        png = next(p for p in f.files if p.suffix == ".png")
        ref = png
        if relative_to is not None:
            try:
                ref = png.resolve().relative_to(relative_to.resolve())
            except ValueError:
                ref = png
        lines += [f"### {f.title}", "", f"![{f.title}]({ref.as_posix()})", "", f.caption, ""]
    missing = [f for f in figures if f.missing and not f.files]
    if missing:
        lines += ["Not drawn: " + "; ".join(f"{f.name}: {f.missing}" for f in missing) + ".", ""]
    return lines
