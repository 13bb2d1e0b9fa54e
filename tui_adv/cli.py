"""The ``adv-tui`` command: the dashboard, headless runs, and the run catalog.

stdout carries results (tables, ``--json``); progress bars and diagnostics go to stderr. Errors the
user can fix print one line (``adv-tui: error: …``) and exit 2; a run that did not complete exits 1.
"""

from __future__ import annotations

import csv
import io
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import UserError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    invoke_without_command=True,
    help="Reproduce and explore 'Explaining and Harnessing Adversarial Examples' (FGSM) from a terminal.",
)
runs_app = typer.Typer(help="Browse the run catalog.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

DbOpt = Annotated[Optional[str], typer.Option("--db", help="Catalog: a SQLite path or SQLAlchemy URL (default $ADV_TUI_DB or ./runs.db).")]
DataOpt = Annotated[Optional[str], typer.Option("--data-dir", help="MNIST root (default $ADV_TUI_DATA, else the user cache).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _err_console():
    from rich.console import Console

    return Console(stderr=True)


def _out_console():
    from rich.console import Console

    return Console()


@app.callback()
def main_callback(
    ctx: typer.Context,
    db: DbOpt = None,
    data_dir: DataOpt = None,
) -> None:
    """With no command: open the dashboard."""
    ctx.obj = {"db": db, "data_dir": data_dir}
    if ctx.invoked_subcommand is None:
        from .tui.app import run_app

        run_app(db=db, data_dir=data_dir)


def _db(ctx: typer.Context, db: str | None) -> str | None:
    return db or (ctx.obj or {}).get("db")


def _data_dir(ctx: typer.Context, data_dir: str | None) -> str | None:
    return data_dir or (ctx.obj or {}).get("data_dir")


# ------------------------------------------------------------------------------------------------ run
@app.command()
def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A TOML config, e.g. configs/softmax.toml.")],
    headless: Annotated[bool, typer.Option("--headless", help="No dashboard: progress bars on stderr.")] = False,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda (default: the config's, else auto).")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="Override a config key: --set train.epochs=5 (repeatable).")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Train and sweep one config; every metric goes to the catalog as it happens."""
    from .catalog import Store
    from .config import load_config
    from .runner import Runner, resolve_device

    cfg = load_config(config, overrides or [])
    _check_device_option(device)
    resolve_device(device or cfg.device)  # fail before a run row exists
    db = _db(ctx, db)
    data_dir = _data_dir(ctx, data_dir)
    if not headless:
        from .tui.app import run_app

        run_app(db=db, data_dir=data_dir, launch=(str(config), list(overrides or []), device))
        return
    # the dataset is checked before a run row exists, so a missing dataset leaves the catalog untouched
    from .core.data import load_mnist

    load_mnist(data_dir, "cpu")
    store = Store(db)
    stop = threading.Event()
    runner = Runner(cfg, store, data_dir=data_dir, device=device, stop_event=stop)
    _install_signal_handlers(stop)
    runner.create()
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json)


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="The interrupted, cancelled or failed run to continue (see `adv-tui runs list`).")],
    headless: Annotated[bool, typer.Option("--headless", help="No dashboard: progress bars on stderr.")] = False,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    device: Annotated[Optional[str], typer.Option("--device", help="auto | cpu | cuda (default: the run's config, else auto).")] = None,
    as_json: JsonOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Continue an interrupted, cancelled or failed run from its last checkpoint, in the same run row.

    Metric rows written after the checkpoint are dropped first, so nothing is duplicated; the model,
    optimizer, RNG and data-order state come from the checkpoint, so on CPU with a fixed seed the run
    ends exactly as an uninterrupted one would.
    """
    from .catalog import Store
    from .core.data import load_mnist
    from .runner import Runner, resolve_device

    _check_device_option(device)
    if device is not None:
        resolve_device(device)
    db = _db(ctx, db)
    data_dir = _data_dir(ctx, data_dir)
    store = Store(db)
    stop = threading.Event()
    # every check (run state, checkpoint, device, dataset) happens before the catalog is written to
    runner = Runner.for_resume(store, run_id, data_dir=data_dir, device=device, stop_event=stop)
    resolve_device(runner.device_request)
    load_mnist(data_dir, "cpu")
    if not headless:
        _err_console().print("the dashboard cannot resume runs yet; resuming headless")
    _install_signal_handlers(stop)
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json)


def _check_device_option(device: str | None) -> None:
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {device!r}")


def _execute_and_report(store, runner, *, quiet: bool, as_json: bool) -> None:  # noqa: ANN001
    """Execute a created (or resumable) run headless with progress bars on stderr, then print its
    summary (or its JSON); exit 1 unless it completed."""
    from .progress import RichProgress

    renderer = RichProgress(_err_console(), enabled=not quiet)
    runner.emit = renderer.handle
    with renderer:
        status = runner.execute()
    run_row = store.get_run(runner.run_id)
    if as_json:
        typer.echo(json.dumps(_run_json(store, run_row), default=_json_default))
    else:
        _print_summary(store, run_row)
    if status != "completed":
        _err_console().print(f"[red]run {run_row.id} {status}[/red]: {run_row.error or ''}")
        raise typer.Exit(1)


def _install_signal_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):  # noqa: ANN001
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        stop.set()
        print(f"\nadv-tui: {signal.Signals(signum).name} received, stopping the run (status: cancelled)…", file=sys.stderr)

    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)


# ------------------------------------------------------------------------------------------------ runs
def _json_default(o: Any) -> Any:
    from datetime import datetime

    if isinstance(o, datetime):
        return o.isoformat()
    raise TypeError(type(o).__name__)


def _run_json(store, run) -> dict:
    summary = json.loads(run.summary_json) if run.summary_json else {}
    metrics = {**store.latest_metrics(run.id), **summary}
    metrics.pop("batch_loss", None)
    return {
        "run_id": run.id,
        "name": run.name,
        "status": run.status,
        "experiment": run.experiment,
        "profile": run.profile,
        "claims": [c for c in run.claims.split(",") if c],
        "device": run.device,
        "seed": run.seed,
        "parent_id": run.parent_id,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "error": run.error,
        "checkpoint_path": run.checkpoint_path,
        "config": json.loads(run.config_json),
        "metrics": metrics,
        "sweeps": store.sweeps(run.id),
    }


def _fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}%"


def _duration(run) -> str:
    if not run.started_at:
        return "—"
    from .catalog.schema import utcnow

    end = run.finished_at or utcnow()
    s = int((end - run.started_at).total_seconds())
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _print_summary(store, run) -> None:
    from rich.table import Table

    from .claims import reading_text

    con = _out_console()
    t = Table(title=f"run {run.id} · {run.name} · {run.status}", title_justify="left")
    sweeps = store.sweeps(run.id)
    several = len(sweeps) > 1
    if several:
        t.add_column("reading")
    t.add_column("ε", justify="right")
    t.add_column("accuracy", justify="right")
    t.add_column("error", justify="right")
    t.add_column("mean conf.", justify="right")
    t.add_column("conf. on mistakes", justify="right")
    for sweep in sweeps:
        name = reading_text(sweep)
        if sweep["labels"] != "true":
            name = f"{sweep['labels']} labels, {name}"
        if sweep["masks"] > 1:
            name += f" (mean of {sweep['masks']} mask draws)"
        for i, p in enumerate(sweep["points"]):
            err = _fmt_pct(p["error"]) + (f" ±{100 * p['error_spread']:.2f}" if p.get("error_spread") else "")
            row = [f"{p['epsilon']:g}", _fmt_pct(p["accuracy"]), err, _fmt_pct(p["mean_confidence"]), _fmt_pct(p["mean_confidence_wrong"])]
            t.add_row(*([name if i == 0 else ""] if several else []), *row, end_section=several and i == len(sweep["points"]) - 1)
    if t.row_count:
        con.print(t)
    con.print(f"clean error {_fmt_pct(run.clean_error)} · FGSM error (ε=.25) {_fmt_pct(run.fgsm_error)} · {_duration(run)} on {run.device} · catalog {store.url}")


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n", help="Newest N runs.")] = 50,
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status.")] = None,
) -> None:
    """The newest runs in the catalog."""
    from .catalog import Store

    store = Store(_db(ctx, db))
    store.refresh_liveness()
    runs = store.list_runs(limit=limit, status=[status] if status else None)
    if as_json:
        rows = [
            {
                "run_id": r.id,
                "name": r.name,
                "experiment": r.experiment,
                "status": r.status,
                "progress": r.progress,
                "clean_error": r.clean_error,
                "fgsm_error": r.fgsm_error,
                "device": r.device,
                "created_at": r.created_at,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "parent_id": r.parent_id,
            }
            for r in runs
        ]
        typer.echo(json.dumps(rows, default=_json_default))
        return
    from rich.table import Table

    t = Table(title=f"{len(runs)} of {store.count_runs()} runs · {store.url}", title_justify="left")
    for col_ in ("id", "name", "experiment", "status", "progress", "clean err", "FGSM err .25", "duration", "device", "started"):
        t.add_column(col_, justify="right" if col_ in ("id", "progress", "clean err", "FGSM err .25") else "left")
    for r in runs:
        t.add_row(
            str(r.id),
            r.name,
            r.experiment,
            r.status,
            f"{100 * r.progress:.0f}%",
            _fmt_pct(r.clean_error),
            _fmt_pct(r.fgsm_error),
            _duration(r),
            r.device or "—",
            r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "—",
        )
    _out_console().print(t)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id (see `adv-tui runs list`).")],
    db: DbOpt = None,
    as_json: JsonOpt = False,
    samples: Annotated[int, typer.Option("--samples", help="Perturbation views to draw.")] = 2,
) -> None:
    """One run: status, config, final metrics, sweep table and curve, perturbation views, and the P20 logit
    curve or P21 weight images when the run stored them."""
    from .catalog import Store
    from .views import accuracy_chart, halfblock, side_by_side, sign_image

    store = Store(_db(ctx, db))
    store.refresh_liveness()
    run = store.get_run(run_id)
    doc = _run_json(store, run)
    if as_json:
        typer.echo(json.dumps(doc, default=_json_default))
        return
    con = _out_console()
    con.print(f"[bold]run {run.id}[/bold] · {run.name} · experiment {run.experiment} · [bold]{run.status}[/bold] · {run.device or '—'} · {_duration(run)}")
    if run.claims:
        con.print(f"claims: {run.claims}")
    if run.error:
        con.print(f"[red]error:[/red] {run.error}")
    metrics = {k: v for k, v in doc["metrics"].items() if isinstance(v, (int, float))}
    if metrics:
        con.print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items())))
    _print_summary(store, run)
    for sweep in doc["sweeps"]:
        pts = sweep["points"]
        chart = accuracy_chart({f"{sweep['attack']} ({sweep['labels']} labels)": ([p["epsilon"] for p in pts], [p["accuracy"] for p in pts])}, title=f"run {run.id}: accuracy vs ε")
        typer.echo(chart)
    shown = 0
    for s in store.samples(run.id):
        if shown >= samples:
            break
        shown += 1
        lines = side_by_side(
            [halfblock(s.clean), sign_image(s.sign), halfblock(s.adversarial)],
            [f"clean: {s.label}→{s.clean_pred} ({100 * s.clean_conf:.1f}%)", f"sign(∇x J), ε={s.epsilon:g}", f"adversarial: →{s.adv_pred} ({100 * s.adv_conf:.1f}%)"],
        )
        typer.echo("\n".join(lines))
    _print_analysis(store, run.id, con.width)


def _print_analysis(store, run_id: int, width: int) -> None:
    """The P20 logit curve and P21 weight images, when the run stored those artifacts; an artifact that
    cannot be drawn becomes a one-line note (the rest of `runs show` still prints, exit 0)."""
    from .views import logit_curve_chart, weights_view

    try:
        arts = store.artifacts(run_id)
    except ValueError as e:  # a stored payload that is not JSON
        typer.echo(f"(analysis artifacts of run {run_id} are unreadable: {' '.join(str(e).split())})")
        return
    width = max(40, width)
    if "logit_curve" in arts:
        try:
            typer.echo(logit_curve_chart(arts["logit_curve"], width=min(width - 2, 120), height=28 if width >= 100 else 24))
        except ValueError as e:
            typer.echo(f"(P20 logit curve not drawn: {' '.join(str(e).split())})")
    if "weights" in arts:
        try:
            typer.echo("\n".join(weights_view(arts["weights"], width=width)))
        except ValueError as e:
            typer.echo(f"(P21 weight images not drawn: {' '.join(str(e).split())})")


@runs_app.command("export")
def runs_export(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(help="Run id.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | json")] = "json",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to a file instead of stdout.")] = None,
    db: DbOpt = None,
) -> None:
    """Metrics and sweeps of a run as JSON (one document) or CSV (long format: one value a row)."""
    from .catalog import Store

    if fmt not in ("csv", "json"):
        raise UserError(f"--format must be csv or json, got {fmt!r}")
    store = Store(_db(ctx, db))
    store.refresh_liveness()
    run = store.get_run(run_id)
    if fmt == "json":
        doc = _run_json(store, run)
        doc["metric_rows"] = [{"key": m.key, "step": m.step, "value": m.value} for m in store.metrics(run.id)]
        text = json.dumps(doc, default=_json_default, indent=2)
    else:
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(["run_id", "table", "attack", "labels", "key", "step", "epsilon", "value"])
        for m in store.metrics(run.id):
            w.writerow([run.id, "metric", "", "", m.key, m.step, "", m.value])
        for p in store.sweep_points(run.id):
            for key in ("accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n"):
                w.writerow([run.id, "sweep", p.attack, p.labels, key, "", p.epsilon, "" if getattr(p, key) is None else getattr(p, key)])
        text = buf.getvalue()
    if output:
        try:
            output.write_text(text)
        except OSError as e:
            raise UserError(f"cannot write {output}: {e.strerror}") from None
        _err_console().print(f"wrote {output}")
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")


# ------------------------------------------------------------------------------------------------ data
@app.command()
def data(ctx: typer.Context, data_dir: DataOpt = None) -> None:
    """Check the MNIST files: where they are looked for and whether they load."""
    from .core.data import load_mnist, resolve_data_root

    root = resolve_data_root(_data_dir(ctx, data_dir))
    d = load_mnist(root, "cpu")
    typer.echo(f"MNIST ok in {root}: {len(d.train)} train, {len(d.test)} test images")


# ------------------------------------------------------------------------------------------------ reproduction
@app.command()
def reproduce(
    ctx: typer.Context,
    profile: Annotated[str, typer.Option("--profile", help="quick (about 20 min on a 2-core CPU) | standard (quick + the 240-unit maxouts at the paper's length, 1-2 h on a 2-core CPU) | paper (full scale, for a GPU).")] = "quick",
    only: Annotated[Optional[str], typer.Option("--only", help="Comma-separated claim ids, e.g. P02,P09 (their parent runs come along).")] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Run every step again instead of reusing finished runs.")] = False,
    headless: Annotated[bool, typer.Option("--headless", help="Progress on stderr, no dashboard (always so for now: watch the suite from `adv-tui` in another terminal).")] = True,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    device: Annotated[str, typer.Option("--device", help="auto | cpu | cuda")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Run the experiment suite behind every claim (reusing finished runs), then print the scorecard."""
    import time

    from .catalog import Store
    from .claims import scorecard
    from .core.data import load_mnist
    from .reproduce import Reproducer
    from .runner import resolve_device

    resolve_device(device)
    data_dir = _data_dir(ctx, data_dir)
    load_mnist(data_dir, "cpu")
    store = Store(_db(ctx, db))
    stop = threading.Event()
    rep = Reproducer(store, profile, only=only.split(",") if only else None, fresh=fresh, data_dir=data_dir, device=device, stop_event=stop)
    _install_signal_handlers(stop)
    err = _err_console()
    t0 = time.perf_counter()

    def emit(e: dict) -> None:
        if e["type"] == "step_start":
            err.rule(f"[bold]{e['index']}/{e['steps']} {e['key']}[/bold] ({', '.join(e['claims'])})")
        elif e["type"] == "step_end":
            err.print(f"{e['key']}: {e['status']} (run {e['run_id']}, {e['seconds']:.0f} s)")
        elif e["type"] == "run_start":
            err.print(f"run [bold]{e['run_id']}[/bold] · {e['name']} · device {e['device']}")
        elif e["type"] == "suite_end":
            err.print(f"suite finished in {e['seconds']:.0f} s")

    rep.emit = emit
    rep.run()
    elapsed = time.perf_counter() - t0
    results = scorecard(store, [profile])
    if as_json:
        typer.echo(json.dumps({"profile": profile, "seconds": elapsed, "claims": [r.as_dict() for r in results]}))
    else:
        _print_scorecard(results)
        err.print(f"{profile} profile: {elapsed:.0f} s")
    if stop.is_set():
        raise typer.Exit(1)


def _print_scorecard(results) -> None:
    from rich.table import Table

    t = Table(title="Scorecard: Explaining and Harnessing Adversarial Examples", title_justify="left", show_lines=False)
    for c in ("id", "experiment", "paper", "measured", "profile", "verdict", "paper's side", "runs"):
        t.add_column(c, overflow="fold")
    colour = {"PASS": "green", "FAIL": "red", "NOT RUN": "dim"}
    for r in results:
        t.add_row(r.id, r.title, r.paper, r.measured, r.profile or "—", f"[{colour[r.verdict]}]{r.verdict}[/]", r.direction or "", ",".join(map(str, r.runs)))
    _out_console().print(t)
    _print_matrix(results)


def _print_matrix(results) -> None:
    """The protocol matrix: every reading of each matrix claim, its values, distance and verdict."""
    from rich.table import Table
    from rich.text import Text

    from .claims import matrix_rows

    rows = matrix_rows(results)
    if not rows:
        return
    t = Table(title="Protocol matrix: every reading of what the paper leaves unstated (★ = the headline's reading)", title_justify="left")
    for c in ("claim", "reading", "measured", "distance", "verdict"):
        t.add_column(c, overflow="fold")
    colour = {"PASS": "green", "FAIL": "red", "NOT RUN": "dim"}
    for claim_id, reading, measured, distance, verdict, headline in rows:
        t.add_row(claim_id, ("★ " if headline else "  ") + reading, measured, distance, Text(verdict, style=colour[verdict]),
                  end_section=False)
    _out_console().print(t)


@app.command()
def report(
    ctx: typer.Context,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="Print REPRODUCTION.md.")] = False,
    profile: Annotated[Optional[str], typer.Option("--profile", help="Only this profile (default: for each claim paper where its runs exist, else standard, else quick); several, comma-separated, give one scorecard each (e.g. standard,quick).")] = None,
    discussion: Annotated[
        Optional[Path], typer.Option("--discussion", help="With --markdown: append this hand-written Markdown file (the discussion of each FAIL).")
    ] = None,
) -> None:
    """The scorecard: every claim with the paper's value, the measured one and a verdict."""
    from .catalog import Store
    from .claims import scorecard

    text = None
    if discussion is not None:
        if not markdown:
            raise UserError("--discussion goes with --markdown")
        try:
            text = discussion.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise UserError(f"cannot read the discussion file {discussion}: {e.__class__.__name__}: {e}") from None
    store = Store(_db(ctx, db))
    profiles = [p.strip() for p in profile.split(",") if p.strip()] if profile else []
    if len(profiles) > 1:
        sections = [(p, scorecard(store, [p])) for p in profiles]
        if as_json:
            typer.echo(json.dumps({p: [r.as_dict() for r in rs] for p, rs in sections}))
        elif markdown:
            from .report import markdown as md

            typer.echo(md(store, [], discussion=text, sections=sections))
        else:
            for p, rs in sections:
                _out_console().rule(f"{p} profile")
                _print_scorecard(rs)
        return
    results = scorecard(store, profiles or None)
    if as_json:
        typer.echo(json.dumps([r.as_dict() for r in results]))
    elif markdown:
        from .report import markdown as md

        typer.echo(md(store, results, discussion=text))
    else:
        _print_scorecard(results)


def main() -> None:
    try:
        app()
    except UserError as e:
        print("adv-tui: error: " + " ".join(str(e).split("\n")), file=sys.stderr)  # always one line
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("adv-tui: interrupted", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
