"""The dashboard's charts as PNG files (its ``e``): what a run's or a comparison's charts show on the
terminal, drawn by matplotlib at print quality, beside the export.

Two figures per call, each only when there is something to draw:

- ``STEM-accuracy.png``: accuracy under FGSM against ε; one curve per stored reading for one run, each
  run's own reading (the one its FGSM error is) for several;
- ``STEM-training.png``: the per-epoch curves: errors (train, clean, FGSM; log scale, so a 2 % clean
  error and a 90 % FGSM error are both readable) beside the training loss.

Headless (no textual/rich); the caller gives the runs' labels (``maxout · epochs=3``) so the files
name the runs the way the screen does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .catalog import Store
from .errors import UserError

ERROR_KEYS = (  # per-epoch series, as the training chart shows them: (metric key, label suffix, line style)
    ("train_error", "train", ":"),
    ("valid_error", "valid clean", "-"),
    ("test_error", "test clean", "-"),
    ("valid_adv_error", "valid FGSM", "--"),
    ("test_adv_error", "test FGSM", "--"),
)


def _figure(size: tuple[float, float]):  # noqa: ANN202 - a matplotlib Figure
    try:
        from matplotlib.figure import Figure
    except ImportError:
        raise UserError("saving charts needs matplotlib: pip install matplotlib") from None
    return Figure(figsize=size, layout="constrained")


def _own_sweep(sweeps: list[dict], reading: object) -> dict | None:
    """The run's own reading's sweep (see :func:`tui_adv.claims.sweep_of_reading`), else its first."""
    from .claims import sweep_of_reading

    return sweep_of_reading(sweeps, reading) or (sweeps[0] if sweeps else None)


def _reading_label(sw: dict) -> str:
    from .claims import reading_text

    text = reading_text(sw)
    return text if sw.get("labels") == "true" else f"{sw['labels']} labels, {text}"


def save_run_charts(store: Store, labels: Mapping[int, str], stem: str | Path) -> list[Path]:
    """Draw the charts of the runs ``labels`` names (run id → label) to ``STEM-accuracy.png`` and
    ``STEM-training.png``; returns the files written (none when no run has a sweep or an epoch)."""
    stem = Path(stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    single = len(labels) == 1
    curves = []
    for rid, label in labels.items():
        run = store.get_run(rid)
        sweeps = [sw for sw in store.sweeps(rid) if sw.get("attack") == "fgsm" and len(sw["points"]) >= 1]
        chosen = sweeps if single else [s for s in [_own_sweep(sweeps, run.summary().get("reading"))] if s]
        for sw in chosen:
            n = sw["points"][-1].get("n")
            name = _reading_label(sw) if single else f"#{rid} {label} ({_reading_label(sw)})"
            curves.append((name + (f", n={n}" if n else ""), [p["epsilon"] for p in sw["points"]], [100 * p["accuracy"] for p in sw["points"]]))
    title = f"run {next(iter(labels))}: {next(iter(labels.values()))}" if single else "runs " + ", ".join(f"#{r}" for r in labels)
    if curves:
        fig = _figure((9, 5))
        ax = fig.add_subplot(1, 1, 1)
        for i, (name, xs, ys) in enumerate(curves):
            ax.plot(xs, ys, marker="o", ms=3, color=f"C{i % 10}", label=name)
        ax.set_xlabel("ε (FGSM step, pixels in [0, 1])")
        ax.set_ylabel("accuracy % (test set)")
        ax.set_ylim(-2, 102)
        ax.grid(alpha=0.3)
        ax.set_title(f"{title}: accuracy vs ε")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
        path = stem.with_name(stem.name + "-accuracy.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)

    series: list[tuple[str, str, str, list[int], list[float]]] = []  # (panel, label, style, steps, values)
    for i, (rid, label) in enumerate(labels.items()):
        by_key: dict[str, dict[int, float]] = {}
        for m in store.metrics(rid):
            by_key.setdefault(m.key, {})[int(m.step)] = float(m.value)
        who = "" if single else f"#{rid} {label}: "
        for key, suffix, style in ERROR_KEYS:
            pts = by_key.get(key)
            if pts:
                steps = sorted(pts)
                series.append(("error", f"{who}{suffix}", style + f"C{i % 10}" if not single else style, steps, [max(100 * pts[s], 1e-3) for s in steps]))
        loss = by_key.get("train_loss")
        if loss:
            steps = sorted(loss)
            series.append(("loss", f"{who}train loss", f"-C{i % 10}", steps, [loss[s] for s in steps]))
    if series:
        fig = _figure((12, 4.6))
        ax_err, ax_loss = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
        for panel, name, style, xs, ys in series:
            ax = ax_err if panel == "error" else ax_loss
            ax.plot(xs, ys, style, marker="o", ms=2.5, label=name)
        ax_err.set_yscale("log")
        ax_err.set_ylabel("error % (log scale)")
        ax_err.set_title("errors per epoch")
        ax_loss.set_ylabel("training loss")
        ax_loss.set_title("training loss per epoch")
        for ax in (ax_err, ax_loss):
            ax.set_xlabel("epoch")
            ax.xaxis.get_major_locator().set_params(integer=True)
            ax.grid(alpha=0.3, which="both")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(loc="upper left", bbox_to_anchor=(0.0, -0.16), fontsize=8, frameon=False, ncol=2)
        fig.suptitle(f"{title}: training")
        path = stem.with_name(stem.name + "-training.png")
        fig.savefig(path, dpi=120, bbox_inches="tight")
        written.append(path)
    return written
