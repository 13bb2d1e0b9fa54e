"""Pure helpers for the dashboard: formatting, status glyphs, run colours, the launch form's parsing,
config diffs. (What the dashboard *does* to runs, launching and exporting them, is in
:mod:`tui_adv.services`.)

Nothing here imports textual, so it is cheap to test and safe to call from worker threads.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

from ..catalog.schema import Run, as_utc, json_object
from ..choices import ACTIVE, FINISHED, RunStatus

Clock = Callable[[], datetime]

STATUS_GLYPH = {
    RunStatus.QUEUED: "◌",
    RunStatus.RUNNING: "●",
    RunStatus.COMPLETED: "✓",
    RunStatus.FAILED: "✗",
    RunStatus.CANCELLED: "■",
    RunStatus.INTERRUPTED: "!",
}
STATUS_STYLE = {
    RunStatus.QUEUED: "dim",
    RunStatus.RUNNING: "bold green",
    RunStatus.COMPLETED: "",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELLED: "yellow",
    RunStatus.INTERRUPTED: "bold dark_orange",
}
STATUS_FILTERS: list[tuple[str, tuple[str, ...] | None]] = [
    ("all", None),
    ("active", ACTIVE),
    *((s.value, (s,)) for s in FINISHED),  # completed, failed, cancelled, interrupted
]

# stable per-run colours (colour-blind friendly-ish, readable on dark and light backgrounds)
PALETTE: list[tuple[int, int, int]] = [
    (31, 119, 180),
    (255, 127, 14),
    (44, 160, 44),
    (214, 39, 40),
    (148, 103, 189),
    (23, 190, 207),
    (188, 189, 34),
    (227, 119, 194),
    (140, 86, 75),
    (127, 127, 127),
]


def run_colour(run_id: int) -> tuple[int, int, int]:
    """A run keeps its colour everywhere (compare overlays, legends), whatever else is selected."""
    return PALETTE[(int(run_id) * 7) % len(PALETTE)]


def hex_colour(rgb: tuple[int, int, int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


# ------------------------------------------------------------------------------------------ time
utc = as_utc  # a stored time as UTC-aware (the catalog's one helper)


def real_clock() -> datetime:
    return datetime.now(timezone.utc)


def fmt_seconds(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "—"
    s = int(round(s))
    if s >= 86400:  # a day or more (a run whose process went away long ago): days and hours, not 15076:41:17
        return f"{s // 86400}d {s % 86400 // 3600:02d}h"
    if s >= 3600:
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
    return f"{s // 60}:{s % 60:02d}"


def elapsed_s(run: Run, now: datetime) -> float | None:
    return run.active_seconds(now)  # less the time a resumed run sat stopped


def duration(run: Run, now: datetime) -> str:
    return fmt_seconds(elapsed_s(run, now))


def eta_s(run: Run, now: datetime) -> float | None:
    """Remaining time from the overall progress so far (linear extrapolation)."""
    if run.status != RunStatus.RUNNING or not run.progress or run.progress <= 0.005:
        return None
    el = elapsed_s(run, now)
    if el is None:
        return None
    return el * (1 - run.progress) / run.progress


def fmt_started(run: Run) -> str:
    dt = utc(run.started_at or run.created_at)
    if dt is None:
        return "—"
    return dt.astimezone().strftime("%Y-%m-%d %H:%M")


def pct(v: float | None, digits: int = 2) -> str:
    return "—" if v is None else f"{100 * v:.{digits}f}%"


def progress_bar(p: float, width: int = 8) -> str:
    p = min(max(p or 0.0, 0.0), 1.0)
    full = int(p * width)
    part = " ▏▎▍▌▋▊▉"[int((p * width - full) * 8)] if full < width else ""
    return ("█" * full + part).ljust(width, " ")


def phase_text(run: Run) -> str:
    """'train 3/10' / 'sweep' / '' for the live marker."""
    if run.status not in ACTIVE:
        return ""
    if run.phase == "train":
        return f"epoch {min(run.epoch + 1, run.epochs)}/{run.epochs}" if run.epochs else "train"
    if run.phase == "sweep":
        return "sweep"
    return run.phase or run.status


def batch_fraction(run: Run) -> float | None:
    """Fraction of the current epoch done (the row's ``batch`` of ``batches``); None outside training."""
    if run.phase != "train" or not run.epochs or not run.batches:
        return None
    return min(max(run.batch / run.batches, 0.0), 1.0)


# ------------------------------------------------------------------------------------------ launch form
def parse_eps_list(text: str) -> list[float]:
    """'0, .05, .1' or '[0, 0.05]' → [0.0, 0.05, 0.1]; raises ValueError with a readable message."""
    body = text.strip().strip("[]")
    if not body:
        raise ValueError("ε list is empty")
    out = []
    for part in body.replace(";", ",").replace(" ", ",").split(","):
        if not part:
            continue
        try:
            v = float(part)
        except ValueError:
            raise ValueError(f"ε list: {part!r} is not a number") from None
        if v < 0 or v != v or v == float("inf"):
            raise ValueError(f"ε list: {part} must be a finite number ≥ 0")
        out.append(v)
    if not out:
        raise ValueError("ε list is empty")
    return out


def fmt_eps_list(eps: Iterable[float]) -> str:
    return ", ".join(f"{e:g}" for e in eps)


def gpu_hint() -> str:
    """A cheap guess (no torch import in the dashboard): is an NVIDIA GPU visible?"""
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) in ("", "-1"):
        return "no GPU visible (CUDA_VISIBLE_DEVICES)"
    if Path("/proc/driver/nvidia/gpus").is_dir() or shutil.which("nvidia-smi"):
        return "NVIDIA GPU detected: auto uses cuda"
    return "no GPU detected: auto uses cpu"


# ------------------------------------------------------------------------------------------ launch estimates
def _train_images(cfg: dict) -> int:
    data = cfg.get("data") or {}
    n = 60000 if not data.get("pair") else 12000  # a digit pair is about a fifth of MNIST
    if data.get("validation"):
        n = n * 5 // 6
    limit = data.get("train_limit")
    return min(n, int(limit)) if isinstance(limit, int) else n


def _work(cfg: dict) -> float:
    """Training work of a config in image-epochs (adversarial training costs about twice as much)."""
    train = cfg.get("train") or {}
    epochs = train.get("epochs") or 1
    factor = 2.0 if train.get("mode") in ("adversarial", "augment") else 1.0
    return float(epochs) * _train_images(cfg) * factor


def _model_key(cfg: dict) -> tuple:
    m = cfg.get("model") or {}
    return (m.get("kind"), m.get("units"), m.get("pieces"), m.get("layers"), m.get("width"))


def estimate_duration(store, config_json: str, *, limit: int = 300) -> str:  # noqa: ANN001
    """How long a config will take here, from the speed this catalog measured: the newest completed run
    of the same model (kind and size) on this host, its duration scaled by the training work (epochs ×
    training images, ×2 for adversarial training). A one-line text for the Launch screen."""
    import socket

    want = json_object(config_json)
    host = socket.gethostname()
    for r in store.list_runs(status=["completed"], limit=limit):
        if r.host not in (None, host) or not r.started_at or not r.finished_at:
            continue
        cfg = r.config()
        if "model" not in cfg or _model_key(cfg) != _model_key(want):
            continue
        took = r.active_seconds() or 0.0
        epochs_run = r.summary().get("epochs_run")
        done = _work({**cfg, "train": {**(cfg.get("train") or {}), **({"epochs": epochs_run} if epochs_run else {})}})
        if took <= 0 or done <= 0:
            continue
        est = took * _work(want) / done
        return (f"estimate ≈ {fmt_seconds(est)} on {r.device or 'this machine'} (scaled from run {r.id}: "
                f"{printable_name(r.name)} in {fmt_seconds(took)}; early stopping may end it sooner)")
    kind = (want.get("model") or {}).get("kind", "this model")
    return f"no estimate yet: no completed {kind} run of this size on this machine to scale from"


def printable_name(name: object) -> str:
    from ..safe import printable

    return printable(name, limit=30)


def sweep_done(sweep: dict) -> int:
    """How many ε of the sweep are done: ``sweep`` is the live screen's ``{(attack, reading): {mask draw:
    {ε: point}}}``, and the count is the furthest reading's (the readings fill in together)."""
    return max((len(pts) for by_mask in sweep.values() for pts in by_mask.values()), default=0)


def resumable(run: Run | None) -> bool:
    """The run can be continued from the dashboard (see :func:`tui_adv.services.runs.resumable`)."""
    from ..services.runs import resumable as _resumable

    return _resumable(run)


# ------------------------------------------------------------------------------------------ configs of runs
def flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    """{'train': {'epochs': 3}} → {'train.epochs': 3}."""
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix.rstrip("."): d}


_NOT_OVERRIDES = {"name", "description", "claims", "experiment", "profile", "device"}


@functools.lru_cache(maxsize=1024)
def shipped_overrides(config_json: str, name: str) -> tuple[str, ...]:
    """What a run changed from the shipped config of its name, as short ``key=value`` items
    (``epochs=3``, ``train_limit=5000``; the full dotted key where the last part is ambiguous). Empty
    when there is no shipped config of that name or the stored config cannot be read."""
    from ..config import config_dir, load_config

    try:
        mine_raw = json_object(config_json)
        names = [name, name.rsplit(":", 1)[-1], str(mine_raw.get("experiment") or "").split("@")[0]]
        path = next((p for p in (config_dir() / f"{n}.toml" for n in names if n) if p.is_file()), None)
        if path is None:
            return ()
        base = flatten(load_config(path).model_dump(mode="json"))
        try:  # validated again, so a key added since (absent from an older row) reads as its default
            from ..config import validate

            mine = flatten(validate(mine_raw).model_dump(mode="json"))
        except Exception:  # noqa: BLE001 - a config this version cannot read is compared as stored
            mine = flatten(mine_raw)
    except Exception:  # noqa: BLE001 - a label must never break a screen
        return ()
    # (None is "the default" for the model's knobs: not an override)
    keys = [k for k in mine if k.split(".")[0] not in _NOT_OVERRIDES and mine[k] is not None and mine[k] != base.get(k, object())]
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return tuple(f"{k.rsplit('.', 1)[-1] if last.count(k.rsplit('.', 1)[-1]) == 1 else k}={_short_value(mine.get(k, '∅'))}" for k in keys)


def _short_value(v: Any) -> str:
    """A value for a label: a long list as its ends and length (``[0…0.3](12)``)."""
    if isinstance(v, list) and len(v) > 4:
        return f"[{fmt_value(v[0])}…{fmt_value(v[-1])}]({len(v)})"
    return fmt_value(v)


def run_label(run, *, limit: int | None = 40, differing: Sequence[str] | None = None) -> str:  # noqa: ANN001
    """A run's name and what distinguishes it: ``maxout · epochs=3, train_limit=5000``. ``differing``:
    the dotted keys to show (those that differ between compared runs) instead of the overrides of its
    shipped config. Cut to ``limit`` characters with an ellipsis."""
    if differing is not None:
        flat = flatten(run.config())
        items = [f"{k.rsplit('.', 1)[-1]}={_short_value(flat.get(k, '∅'))}" for k in differing if k.split(".")[0] not in _NOT_OVERRIDES]
    else:
        items = list(shipped_overrides(run.config_json or "", run.name or ""))
    text = f"{run.name} · {', '.join(items)}" if items else str(run.name)
    if limit is not None and len(text) > limit:
        text = text[: limit - 1] + "…"
    return text


def config_diff(configs: dict[int, dict]) -> list[tuple[str, dict[int, str]]]:
    """Keys whose values differ between the runs' configs (missing counts as a difference)."""
    flat = {rid: flatten(c) for rid, c in configs.items()}
    keys = sorted(set().union(*[set(f) for f in flat.values()])) if flat else []
    rows = []
    for k in keys:
        vals = {rid: f.get(k, "∅") for rid, f in flat.items()}
        if len({json.dumps(v, sort_keys=True, default=str) for v in vals.values()}) > 1:
            rows.append((k, {rid: fmt_value(v) for rid, v in vals.items()}))
    return rows


def varied_axes(diff: list[tuple[str, dict[int, str]]]) -> tuple[str, str | None, dict[int, float], dict[int, str]] | None:
    """What a grid of runs varied, for the compare screen's "FGSM error vs the varied key" plot: from the
    config keys that differ (:func:`config_diff`), the numeric ones (every run's value a number), when
    there are one or two: (the x key, the other key or None, run id → x, run id → the other key's value).
    The x key is the one with more distinct values. None when no such plot applies."""

    def number(v: str) -> float | None:
        try:
            x = float(v)
        except (TypeError, ValueError):
            return None
        return x if x == x and abs(x) != float("inf") else None

    numeric = [(k, vals) for k, vals in diff if all(number(v) is not None for v in vals.values())]
    if not 1 <= len(numeric) <= 2:
        return None
    numeric.sort(key=lambda kv: -len(set(kv[1].values())))
    (xk, xv), rest = numeric[0], numeric[1:]
    if len(set(xv.values())) < 2:
        return None
    xs = {rid: number(v) for rid, v in xv.items()}
    if rest:
        gk, gv = rest[0]
        return xk, gk, xs, dict(gv)
    return xk, None, xs, {rid: "" for rid in xs}


def fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, list):
        return "[" + ", ".join(fmt_value(x) for x in v) + "]"
    if v is None:
        return "—"
    return str(v)
