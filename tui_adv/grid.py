"""Grids of runs: the cross product of ``--vary KEY=V1,V2,…`` over one config, as a named group.

A grid's group is the runs' ``experiment`` label (stored in the run row and in its config): it is one
of the labels that do not make two runs different experiments (``config.identity.LABEL_KEYS``), so a grid
point that equals a suite step still counts for that step's claims, and the group is filtered on with
``adv-tui runs list --group NAME`` and the dashboard's history filter (which matches experiment).

Every point is validated through the config model before anything is stored; the points then run
as :class:`~tui_adv.executor.StepTask` s through the suite's executors (the same headless Runner as
``adv-tui run --headless``), one after the other in this process (``jobs=1``) or in a local pool of
``jobs`` processes.
"""

from __future__ import annotations

import itertools
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig, load_config, parse_value
from .errors import UserError

MAX_POINTS = 1000


@dataclass
class GridPoint:
    index: int
    overrides: list[str]  # the --set items of this point (the varied keys only)
    cfg: RunConfig = field(repr=False)

    @property
    def label(self) -> str:
        return " ".join(self.overrides)


def _split_values(text: str) -> list[str]:
    """``0,.5,[1,2]`` → ``["0", ".5", "[1,2]"]``: commas inside brackets or quotes stay in the value."""
    out, cur, depth, quote = [], [], 0, ""
    for ch in text:
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "\"'":
            quote = ch
        elif ch in "[{":
            depth += 1
        elif ch in "]}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.append("".join(cur).strip())
            cur = []
            continue
        cur.append(ch)
    out.append("".join(cur).strip())
    return out


def parse_vary(specs: list[str]) -> list[tuple[str, list[str]]]:
    """``["train.alpha=0,.5", …]`` → ``[("train.alpha", ["0", ".5"]), …]`` (syntax only; the values
    are checked by :func:`grid_points` through the config model)."""
    axes: list[tuple[str, list[str]]] = []
    for spec in specs:
        key, eq, values = spec.partition("=")
        key = key.strip()
        if not eq or not key or not all(key.split(".")):
            raise UserError(f"--vary expects KEY=V1,V2,… (e.g. train.alpha=0,.5), got {spec!r}")
        if key in ("name", "experiment"):
            raise UserError(f"--vary {key}: the grid sets the runs' {key} itself (use --name for the group)")
        vals = _split_values(values)
        if any(v == "" for v in vals):
            raise UserError(f"--vary {key}: empty value in {values!r} (values are separated by commas)")
        parsed = [parse_value(v) for v in vals]
        if any(parsed[i] == parsed[j] for i in range(len(parsed)) for j in range(i)):  # 0 and 0.0 too
            raise UserError(f"--vary {key}: a value is given twice in {values!r}")
        if any(k == key for k, _ in axes):
            raise UserError(f"--vary {key} is given twice; put all its values in one --vary")
        axes.append((key, vals))
    if not axes:
        raise UserError("grid needs at least one --vary KEY=V1,V2,…")
    return axes


def grid_points(config: str | Path, axes: list[tuple[str, list[str]]], group: str, base: list[str] | None = None) -> list[GridPoint]:
    """Every point of the cross product, each validated (a bad key or value is a UserError naming it)."""
    n = 1
    for _, vals in axes:
        n *= len(vals)
    if n > MAX_POINTS:
        raise UserError(f"the grid has {n} points; at most {MAX_POINTS} at once")
    stem = load_config(config, base or []).name  # the config itself first: its error is not a point's
    points = []
    for i, combo in enumerate(itertools.product(*(vals for _, vals in axes))):
        items = [f"{k}={v}" for (k, _), v in zip(axes, combo)]
        label = " ".join(items)
        try:
            cfg = load_config(config, [*(base or []), *items, f"experiment={_quoted(group)}", f"name={_quoted(f'{stem} {label}'[:200])}"])
        except UserError as e:
            raise UserError(f"grid point {label}: {e}") from None
        points.append(GridPoint(i, items, cfg))
    return points


def _quoted(text: str) -> str:
    """A TOML basic string, so parse_value reads ``text`` back as a string whatever it looks like."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ------------------------------------------------------------------------------------------ execution
def run_local(
    points: list[GridPoint],
    *,
    db: str | None,
    data_dir: str | None,
    device: str | None,
    jobs: int = 1,
    on_done: Callable[[GridPoint, dict], None] = lambda p, r: None,
    executor: Any = None,
) -> list[dict | None]:
    """Execute the points through the suite's executors (:mod:`tui_adv.executor`), ``jobs`` at a time:
    :class:`InlineExecutor` in this process for ``jobs=1``, else a :class:`LocalPoolExecutor` of
    ``jobs`` spawned processes; each point is :func:`~tui_adv.executor.run_task` of its validated config,
    the same headless Runner as ``adv-tui run --headless``. Ctrl-C / SIGTERM stop the running points
    cleanly (``cancelled``, with a checkpoint) and start no more. Returns one ``{"run_id", "status",
    "error"}`` per point, in point order (``None`` for a point that never started). ``executor``: another
    executor to use instead (e.g. :class:`~tui_adv.ray_executor.RayExecutor`); it is shut down at the end."""
    from .catalog.store import Store
    from .catalog.urls import resolve_db_url
    from .executor import InlineExecutor, LocalPoolExecutor, StepTask

    url = resolve_db_url(db)
    store = None
    if executor is not None:
        ex = executor
    elif jobs <= 1:
        store = Store(url)
        ex = InlineExecutor(store, lambda e: None, threading.Event())
    else:
        ex = LocalPoolExecutor(min(jobs, len(points)))
    results: list[dict | None] = [None] * len(points)
    stopping = False

    def stop(_signum, _frame):  # noqa: ANN001
        nonlocal stopping
        stopping = True
        ex.stop()

    old = signal.signal(signal.SIGINT, stop), signal.signal(signal.SIGTERM, stop)
    try:
        todo, running = list(points), []
        while todo or running:
            while todo and not stopping and len(running) < ex.capacity:
                p = todo.pop(0)
                task = StepTask(key=p.label, profile=p.cfg.profile or "", db_url=url, data_dir=data_dir,
                                device=device or p.cfg.device, config_json=p.cfg.to_json())
                running.append((p, ex.submit(task)))
            if not running:
                break
            for p, h in [ph for ph in running if ph[1].done()]:
                running.remove((p, h))
                o = h.result()
                results[p.index] = r = {"run_id": o.run_id, "status": str(o.status), "error": o.error}
                on_done(p, r)
            if running:
                time.sleep(0.2)
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
        ex.shutdown()
        if store is not None:
            store.close()
    return results
