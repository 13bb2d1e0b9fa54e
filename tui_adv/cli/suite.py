"""``adv-tui reproduce`` and ``report``: the suite behind every claim, and its scorecard."""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Device, ExecutorKind, Order, Profile
from ..errors import UserError
from .app import CheckpointsOpt, DataOpt, DbOpt, ExecutorOpt, JsonOpt, RayAddressOpt, app, data_dir_of, db_of, reader_store, use_checkpoints
from .render import err_console, esc, out_console, print_scorecard
from .run import install_signal_handlers

PROFILE_HELP = (
    "quick (about 20 min on a 2-core CPU) | standard (quick + the 240-unit maxouts at the paper's length, measured 75 min more on a "
    "2-core CPU) | paper (full scale, for a GPU)."
)


@app.command()
def reproduce(
    ctx: typer.Context,
    profile: Annotated[Profile, typer.Option("--profile", case_sensitive=False, help=PROFILE_HELP)] = Profile.QUICK,
    only: Annotated[Optional[str], typer.Option("--only", metavar="IDS", help="Comma-separated claim ids, e.g. P02,P09 (their parent runs come along).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Run every step again instead of reusing finished runs.")] = False,
    headless: Annotated[
        bool,
        typer.Option(
            "--headless/--dashboard",
            help="--headless (the default): run the suite here, progress on stderr. --dashboard: start it in the background "
            "(its output in a launch log) and open the dashboard to watch it.",
        ),
    ] = True,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    checkpoints: CheckpointsOpt = None,
    device: Annotated[Device, typer.Option("--device", case_sensitive=False, help="Where to train.")] = Device.AUTO,
    as_json: JsonOpt = False,
    jobs: Annotated[int, typer.Option("--jobs", metavar="N", min=1, max=64, help="Run up to N independent steps at once, each in its own worker process (cores // N torch threads each); parents still finish before the steps that read them.")] = 1,
    stack: Annotated[bool, typer.Option("--stack", help="Train the steps that differ only by seed (the 12 ensemble members) as one stacked model: each still its own run, with its solo results (bit for bit on CPU); faster on a GPU, not on a CPU.")] = False,
    order: Annotated[Order, typer.Option("--order", case_sensitive=False, help="suite: the steps start in the suite's order (claim by claim); shortest: the least counted work first (the most claims finished when a run is cut short). Parents still finish before the steps that read them.")] = Order.SUITE,
    plan: Annotated[bool, typer.Option("--plan", help="Print the steps (parents, epochs, device, a time estimate from a short calibration measured now) and run nothing.")] = False,
    executor: ExecutorOpt = ExecutorKind.LOCAL,
    ray_address: RayAddressOpt = None,
) -> None:
    """Run the experiment suite behind every claim (reusing finished runs), then print the scorecard."""
    import time

    from ..catalog import Store
    from ..claims import scorecard
    from ..core.data import load_mnist
    from ..reproduce import Reproducer, datasets_needed
    from ..runner import check_training_env, resolve_device

    resolve_device(device.value)
    check_training_env()
    data_dir = data_dir_of(ctx, data_dir)
    selected = only.split(",") if only else None
    if "mnist" in datasets_needed(profile.value, selected):  # another dataset missing skips its step (its claim stays NOT RUN)
        load_mnist(data_dir, "cpu")
    if plan:
        _print_plan(profile.value, only, device.value, data_dir, jobs, as_json, stack, order.value)
        return
    use_checkpoints(ctx, checkpoints)
    store = Store(db_of(ctx, db))
    store.check_integrity()
    stop = threading.Event()
    on_ray = executor == ExecutorKind.RAY
    rep = Reproducer(store, profile.value, only=only.split(",") if only else None, fresh=fresh, data_dir=data_dir, device=device.value, stop_event=stop,
                     jobs=jobs, stack=stack, order=order.value)
    if not headless and on_ray:
        raise UserError("--executor ray goes with --headless (open the dashboard on the same catalog to watch the runs)")
    if not headless:
        if as_json:
            raise UserError("--json goes with --headless (the dashboard shows the scorecard itself)")
        _watch_in_dashboard(store, profile, only, fresh, data_dir, device, jobs, stack, order)
        return
    install_signal_handlers(stop)
    err = err_console()
    t0 = time.perf_counter()

    def emit(e: dict) -> None:
        if e["type"] == "step_start":
            err.rule(f"[bold]{e['index']}/{e['steps']} {esc(e['key'])}[/bold] ({esc(', '.join(e['claims']))})")
        elif e["type"] == "step_end":
            err.print(f"{esc(e['key'])}: {esc(e['status'])} (run {e['run_id']}, {e['seconds']:.0f} s)")
        elif e["type"] == "run_start":
            err.print(f"run [bold]{e['run_id']}[/bold] · {esc(e['name'])} · device {esc(e['device'])}")
        elif e["type"] == "suite_end":
            err.print(f"suite finished in {e['seconds']:.0f} s")
        elif e["type"] == "log" and "step" not in e:  # the suite's and the in-process runs' own notes
            err.print(f"[dim]{esc(e['message'])}[/dim]")

    rep.emit = emit
    if on_ray:
        from ..ray_executor import RayExecutor

        ray_ex = RayExecutor(ray_address)
        err.print(f"steps run as Ray tasks on {esc(ray_address or 'a local Ray')} ({ray_ex.capacity} at once); their progress is in the catalog")
        try:
            rep.run(ray_ex)
        finally:
            ray_ex.shutdown()
    else:
        rep.run()
    elapsed = time.perf_counter() - t0
    results = scorecard(store, [profile.value])
    if as_json:
        typer.echo(json.dumps({"profile": profile.value, "seconds": elapsed, "claims": [r.as_dict() for r in results]}))
    else:
        print_scorecard(results)
        err.print(f"{profile.value} profile: {elapsed:.0f} s")
    if stop.is_set():
        raise typer.Exit(1)


def _print_plan(profile: str, only: str | None, device: str, data_dir: str | None, jobs: int, as_json: bool, stack: bool = False,
                order: str = "suite") -> None:
    """``reproduce --plan``: the plan of :mod:`tui_adv.plan`, as a table or one JSON object; nothing runs."""
    from rich.table import Table

    from ..plan import build_plan

    err = err_console()
    if not as_json:
        err.print(f"calibrating on {device} (a few batches of each model; nothing is trained or written)…")
    p = build_plan(profile, only=only.split(",") if only else None, device=device, data_dir=data_dir, jobs=jobs, stack=stack, order=order)
    if as_json:
        typer.echo(p.to_json())
        return
    from rich import box

    out = out_console()
    narrow = out.width < 120  # an 80-column terminal: no reads/model/images columns, no rules (`--json` has all)
    t = Table(title=f"Plan: the {profile} profile on {p.device} ({len(p.steps)} steps)", title_justify="left",
              box=box.SIMPLE_HEAD if narrow else box.HEAVY_HEAD)
    columns = ("#", "step", "kind", "mode", "epochs", "estimate") if narrow else \
        ("#", "step", "kind", "reads", "model", "mode", "epochs", "images", "estimate")
    for c in columns:
        t.add_column(c, overflow="fold", no_wrap=c in ("#", "step", "model", "epochs", "estimate"))
    for i, s in enumerate(p.steps, 1):
        epochs = "" if s.epochs is None else (str(s.epochs) if s.max_epochs == s.epochs else f"{s.epochs} (+{s.max_epochs - s.epochs})")
        cells = {"#": str(i), "step": esc(s.key), "kind": ("stacked" if narrow else s.kind + " (stacked)") if s.stack else s.kind, "reads": esc(", ".join(s.parents)),
                 "model": esc(s.model), "mode": esc(s.mode or ""), "epochs": epochs,
                 "images": "" if s.train_images is None else f"{s.train_images:,}", "estimate": _duration(s.estimate_s)}
        t.add_row(*(cells[c] for c in columns))
    out.print(t)
    line = f"estimated total {_duration(p.total_estimate_s)} one step after another"
    if p.jobs > 1:
        line += f"; {_duration(p.makespan_estimate_s)} with --jobs {p.jobs} ({p.threads} thread(s) per worker)"
    err.print(f"{line} (calibration took {p.calibration_s:.0f} s; early stopping can end steps sooner; data loading, catalog writes "
              "and checkpoints are not counted)")
    if p.gflop:
        err.print(f"matrix products: {p.gflop / 1e6:.3g} PFLOP where counted (the MLPs); at this device's matrix rate "
                  f"({p.matrix_rate_gflops:,.0f} GFLOP/s, measured now) that is at least {_duration(p.floor_s)} one step after another")


def _duration(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s" if s >= 1 else f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


def _watch_in_dashboard(store, profile: Profile, only: str | None, fresh: bool, data_dir: str | None, device: Device, jobs: int = 1,  # noqa: ANN001
                        stack: bool = False, order: Order = Order.SUITE) -> None:
    """``reproduce --dashboard``: the suite as a detached ``reproduce --headless`` (it outlives the
    dashboard), then the dashboard on the same catalog, where its runs appear as they start."""
    from ..tui.app import run_app
    from ..services.launch import spawn_detached

    argv = ["reproduce", "--headless", "--profile", profile.value, "--device", device.value]
    argv += ["--only", only] if only else []
    argv += ["--fresh"] if fresh else []
    argv += ["--jobs", str(jobs)] if jobs > 1 else []
    argv += ["--stack"] if stack else []
    argv += ["--order", order.value] if order != Order.SUITE else []
    argv += ["--data-dir", str(data_dir)] if data_dir else []
    launched = spawn_detached(argv, db_url=store.url)
    print(f"adv-tui: the {profile.value} suite runs as pid {launched.pid} (its output: {launched.log_path})", file=sys.stderr)
    run_app(db=store.url, data_dir=data_dir)


@app.command()
def report(
    ctx: typer.Context,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print REPRODUCTION.md.")] = False,
    profile: Annotated[Optional[str], typer.Option("--profile", metavar="PROFILES", help="Only this profile (default: for each claim paper where its runs exist, else standard, else quick); several, comma-separated, give one scorecard each (e.g. standard,quick).")] = None,
    discussion: Annotated[
        Optional[Path], typer.Option("--discussion", metavar="FILE", help="With --markdown: append this hand-written Markdown file (the discussion of each FAIL).")
    ] = None,
    figures: Annotated[
        Optional[Path],
        typer.Option("--figures", metavar="DIR", help="Also draw the paper's figures into DIR as PNG and SVG (accuracy vs ε, Fig. 2, 3, 4, digits); with --markdown they are embedded."),
    ] = None,
) -> None:
    """The scorecard: every claim with the paper's value, the measured one and a verdict."""
    from ..claims import scorecard

    text = None
    if discussion is not None:
        if not markdown:
            raise UserError("--discussion goes with --markdown")
        try:
            text = discussion.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read the discussion file {discussion}: {e.__class__.__name__}: {e}") from None
    store = reader_store(db_of(ctx, db))
    profiles = [p.strip() for p in profile.split(",") if p.strip()] if profile else []
    figure_lines = _draw_figures(store, figures, profiles[0] if profiles else "quick") if figures is not None else None
    if len(profiles) > 1:
        sections = [(p, scorecard(store, [p])) for p in profiles]
        if as_json:
            typer.echo(json.dumps({p: [r.as_dict() for r in rs] for p, rs in sections}))
        elif markdown:
            from ..report import markdown as md

            typer.echo(md(store, [], discussion=text, sections=sections, figures=figure_lines))
        else:
            for p, rs in sections:
                out_console().rule(f"{p} profile")
                print_scorecard(rs)
        return
    results = scorecard(store, profiles or None)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results]))
    elif markdown:
        from ..report import markdown as md

        typer.echo(md(store, results, discussion=text, figures=figure_lines))
    else:
        print_scorecard(results)


def _draw_figures(store, out_dir: Path, profile: str) -> list[str]:  # noqa: ANN001
    """Draw the figures into ``out_dir``; one line per figure on stderr (written, or why not and the
    command that makes its runs); returns the Markdown that embeds them (paths relative to the cwd)."""
    from ..figures import markdown_section, write_figures

    if profile not in ("quick", "standard", "paper"):
        raise UserError(f"--figures: unknown profile {profile!r}; choose quick, standard or paper")
    drawn = write_figures(store, out_dir, profile)
    for f in drawn:
        if f.files:
            print(f"adv-tui: figure {f.name}: " + ", ".join(str(p) for p in f.files), file=sys.stderr)
        else:
            print(f"adv-tui: figure {f.name} not drawn: {f.missing}", file=sys.stderr)
    return markdown_section(drawn, relative_to=Path.cwd())
