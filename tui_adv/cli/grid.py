"""``adv-tui grid``: the cross product of ``--vary`` values over one config, run as a named group."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Device, ExecutorKind, RunStatus
from .app import CheckpointsOpt, DataOpt, DbOpt, ExecutorOpt, JsonOpt, RayAddressOpt, app, data_dir_of, db_of, device_option, use_checkpoints
from .render import fmt_pct


@app.command()
def grid(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A TOML config, e.g. configs/softmax.toml, or a shipped config's name (softmax).")],
    vary: Annotated[list[str], typer.Option("--vary", metavar="KEY=V1,V2", help="A key and its values: --vary train.alpha=0,.5 (repeatable; the grid is the cross product).")],
    name: Annotated[Optional[str], typer.Option("--name", metavar="NAME", help="The group's name (default: CONFIG-grid-TIME); stored as the runs' experiment.")] = None,
    jobs: Annotated[int, typer.Option("--jobs", "-j", metavar="N", min=1, max=256, help="Runs at once (local processes).")] = 1,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a key in every point: --set train.epochs=5 (repeatable).")] = None,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    checkpoints: CheckpointsOpt = None,
    device: Annotated[Optional[Device], device_option("the config's, else auto")] = None,
    as_json: JsonOpt = False,
    executor: ExecutorOpt = ExecutorKind.LOCAL,
    ray_address: RayAddressOpt = None,
) -> None:
    """Launch every combination of the --vary values as a group of runs (`adv-tui runs list --group NAME`).

    Each point is a headless run like `adv-tui run --headless`; one line per finished run on stderr.
    Exit 0 when every run completed, 1 otherwise, 2 for bad input (nothing stored)."""
    from ..catalog import Store
    from ..core.data import load_mnist
    from ..errors import UserError
    from ..grid import grid_points, parse_vary, run_local
    from ..runner import check_training_env, resolve_device
    from ..config import resolve_config_path
    from ..safe import one_line

    config = resolve_config_path(config)  # a path, else a shipped config of that name (as `run` takes it)
    axes = parse_vary(vary)
    base = load_config_name(config, overrides or [])
    group = name if name is not None else f"{base}-grid-{time.strftime('%Y%m%d-%H%M%S')}"
    if not group.strip() or len(group) > 200 or any(not c.isprintable() for c in group):
        raise UserError("--name needs a printable group name of 1 to 200 characters")
    points = grid_points(config, axes, group, overrides or [])
    dev = None if device is None else device.value
    for p in points:
        resolve_device(dev or p.cfg.device)  # fail before a run row exists
    check_training_env()
    use_checkpoints(ctx, checkpoints)
    db, data_dir = db_of(ctx, db), data_dir_of(ctx, data_dir)
    load_mnist(data_dir, "cpu")
    Store(db).check_integrity()
    ex = None
    if executor == ExecutorKind.RAY:
        from ..ray_executor import RayExecutor

        ex = RayExecutor(ray_address)
        print(f"adv-tui: grid {group!r}: {len(points)} runs as Ray tasks on {ray_address or 'a local Ray'}, {min(ex.capacity, len(points))} at a time", file=sys.stderr)
    else:
        print(f"adv-tui: grid {group!r}: {len(points)} runs, {min(jobs, len(points))} at a time", file=sys.stderr)

    done = 0

    def on_done(p, r) -> None:  # noqa: ANN001
        nonlocal done
        done += 1
        tail = f": {one_line(r['error'])}" if r.get("error") and r["status"] != RunStatus.COMPLETED else ""
        print(f"adv-tui: [{done}/{len(points)}] run {r['run_id']} {r['status']}  {p.label}{tail}", file=sys.stderr)

    results = run_local(points, db=db, data_dir=data_dir, device=dev, jobs=jobs, on_done=on_done, executor=ex)
    store = Store(db)
    rows = []
    for p, r in zip(points, results):
        run = store.get_run(r["run_id"]) if r else None
        rows.append({
            "point": dict(item.split("=", 1) for item in p.overrides),
            "run_id": r["run_id"] if r else None,
            "status": str(run.status) if run else "not started",
            "clean_error": run.clean_error if run else None,
            "fgsm_error": run.fgsm_error if run else None,
        })
    if as_json:
        typer.echo(json.dumps({"group": group, "runs": rows}))
    else:
        keys = [k for k, _ in axes]
        typer.echo("  ".join([*keys, "run", "status", "clean err", "FGSM err"]))
        for row in rows:
            typer.echo("  ".join([*(row["point"][k] for k in keys), str(row["run_id"] or "—"), row["status"],
                                  fmt_pct(row["clean_error"]), fmt_pct(row["fgsm_error"])]))
    if any(row["status"] != RunStatus.COMPLETED for row in rows):
        raise typer.Exit(1)


def load_config_name(config: Path, overrides: list[str]) -> str:
    from ..config import load_config

    return load_config(config, overrides).name

