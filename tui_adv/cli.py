"""The ``adv-tui`` command: the dashboard, headless runs, and the run catalog.

stdout carries results (tables, ``--json``); progress bars and diagnostics go to stderr. Errors the
user can fix print one line (``adv-tui: error: …``) and exit 2; a run that did not complete exits 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from .errors import UserError
from .safe import one_line, printable

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=False,
    invoke_without_command=True,
    help="Reproduce and explore 'Explaining and Harnessing Adversarial Examples' (FGSM) from a terminal.",
)
runs_app = typer.Typer(help="Browse the run catalog.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")

MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER (and PostgreSQL's BIGINT)


def _run_id(value: int) -> int:
    if not 1 <= value <= MAX_RUN_ID:
        raise UserError(f"run ids are whole numbers from 1 to {MAX_RUN_ID}, got {value} (see `adv-tui runs list`)")
    return value


RunIdArg = Annotated[int, typer.Argument(metavar="RUN_ID", callback=_run_id, help="Run id (see `adv-tui runs list`).")]
DbOpt = Annotated[Optional[str], typer.Option("--db", help="Catalog: a SQLite path or SQLAlchemy URL (default $ADV_TUI_DB or ./runs.db).")]
DataOpt = Annotated[Optional[str], typer.Option("--data-dir", help="MNIST root (default $ADV_TUI_DATA, else the user cache).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON document on stdout.")]


def _err_console():
    from rich.console import Console

    return Console(stderr=True)


def _out_console():
    from rich.console import Console

    return Console()


def _e(value: Any, **kw: Any) -> str:
    """A catalog string ready for rich markup: control characters stripped, markup escaped."""
    from rich.markup import escape

    return escape(printable(value, **kw))


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
    store.check_integrity()  # a damaged file fails here, before a row is added, not late with one half written
    stop = threading.Event()
    runner = Runner(cfg, store, data_dir=data_dir, device=device, stop_event=stop)
    _install_signal_handlers(stop, lambda: runner.working)
    runner.create()
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json)


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", callback=_run_id, help="The interrupted, cancelled or failed run to continue (see `adv-tui runs list`).")],
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
    store.check_integrity()
    stop = threading.Event()
    # every check (run state, checkpoint, device, dataset) happens before the catalog is written to
    runner = Runner.for_resume(store, run_id, data_dir=data_dir, device=device, stop_event=stop)
    resolve_device(runner.device_request)
    load_mnist(data_dir, "cpu")
    _install_signal_handlers(stop, lambda: runner.working)
    # said once the run has really started (after its claim), so a refused resume stays one line
    note = None if headless else "adv-tui: the dashboard cannot resume runs yet; resuming headless"
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json, note=note)


def _check_device_option(device: str | None) -> None:
    if device is not None and device not in ("auto", "cpu", "cuda"):
        raise UserError(f"--device must be auto, cpu or cuda, got {device!r}")


def _execute_and_report(store, runner, *, quiet: bool, as_json: bool, note: str | None = None) -> None:  # noqa: ANN001
    """Execute a created (or resumable) run headless with progress bars on stderr, then print its
    summary (or its JSON); exit 1 unless it completed."""
    from .progress import RichProgress

    renderer = RichProgress(_err_console(), enabled=not quiet)

    started = False

    def emit(e: dict) -> None:
        nonlocal started
        if e["type"] == "run_start":
            started = True
            if note:
                print(note, file=sys.stderr)
        renderer.handle(e)

    runner.emit = emit
    try:
        with renderer:
            status = runner.execute()
        if runner.stop_event.is_set():
            # the user stopped it: more Ctrl-C while the end is printed, or while Python shuts down (it
            # then restores the default handler, and the process would die of the signal), are ignored
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
    except UserError as e:
        if not started:  # refused before it began (a claim taken meanwhile): bad input, exit 2
            raise
        # the run began and then could not record its end (a full disk, a lost catalog): it did not
        # complete, exit 1, one line
        print(f"adv-tui: run {runner.run_id} could not finish: {one_line(e)}", file=sys.stderr)
        raise typer.Exit(1) from None
    run_row = store.get_run(runner.run_id)
    if as_json:
        typer.echo(json.dumps(_run_json(store, run_row), default=_json_default))
    else:
        _print_summary(store, run_row)
    if status != "completed":
        # one line, printed once (the progress renderer does not repeat it), never wrapped
        print(f"adv-tui: run {run_row.id} {status}: {one_line(run_row.error or 'no reason recorded')}", file=sys.stderr)
        raise typer.Exit(1)


def _install_signal_handlers(stop: threading.Event, interruptible=lambda: True) -> None:  # noqa: ANN001
    """SIGINT/SIGTERM stop the run cleanly (status cancelled); a second Ctrl-C interrupts the current
    batch at once, but only while ``interruptible()`` (the run is training or sweeping): once its end
    is being recorded and printed, further signals are ignored, so nothing is cut half-way."""

    def handler(signum, _frame):  # noqa: ANN001
        if stop.is_set():
            if signum == signal.SIGINT and interruptible():
                raise KeyboardInterrupt
            return
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
    from .catalog.schema import damage_of

    summary = _json_object(run.summary_json)
    metrics = {**store.latest_metrics(run.id), **summary}
    metrics.pop("batch_loss", None)
    doc = {
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
        "config": _json_object(run.config_json),
        "metrics": metrics,
        "sweeps": store.sweeps(run.id),
    }
    if damage_of(run):
        doc["damaged"] = damage_of(run)
    return doc


def _json_object(text: str | None) -> dict:
    """A stored JSON column as a dict ({} when empty; the store already flagged a damaged one)."""
    try:
        value = json.loads(text) if text else {}
    except (ValueError, TypeError):
        return {}
    return value if isinstance(value, dict) else {}


def _fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}%"


def _duration(run) -> str:
    if not run.started_at:
        return "—"
    from .catalog.schema import utcnow

    end = run.finished_at or utcnow()
    s = int((end - run.started_at).total_seconds())
    if s < 0:
        return "—"
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _status(run) -> str:
    from .catalog.schema import damage_of

    return printable(run.status) + (" (damaged)" if damage_of(run) else "")


def _print_summary(store, run) -> None:
    from rich.table import Table

    from .claims import reading_text
    from .config import Reading

    con = _out_console()
    t = Table(title=f"run {run.id} · {_e(run.name)} · {_e(_status(run))}", title_justify="left")
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
            t.add_row(*([_e(name) if i == 0 else ""] if several else []), *row, end_section=several and i == len(sweep["points"]) - 1)
    if t.row_count:
        con.print(t)
    fgsm = "FGSM error (ε=.25)"
    own = _json_object(run.summary_json).get("reading")  # the config's own reading, the one the row's FGSM error is
    if len(sweeps) > 1 and isinstance(own, str):
        mine = [sw for sw in sweeps if Reading(labels=sw["labels"], gradient=sw["gradient"], clip=sw["clip"], cost=sw["cost"]).name == own]
        if mine:
            fgsm = f"FGSM error (ε=.25, {reading_text(mine[0])})"
    con.print(f"clean error {_fmt_pct(run.clean_error)} · {fgsm} {_fmt_pct(run.fgsm_error)} · {_duration(run)} on {_e(run.device)} · catalog {_e(store.safe_url)}")


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, max=1_000_000, help="Newest N runs.")] = 50,
    status: Annotated[Optional[str], typer.Option("--status", help="Only runs with this status.")] = None,
) -> None:
    """The newest runs in the catalog."""
    from .catalog import Store

    store = _reader_store(_db(ctx, db))
    runs = store.list_runs(limit=limit, status=[status] if status else None)
    from .catalog.schema import damage_of

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
                **({"damaged": damage_of(r)} if damage_of(r) else {}),
            }
            for r in runs
        ]
        typer.echo(json.dumps(rows, default=_json_default))
        return
    from rich.table import Table

    t = Table(title=f"{len(runs)} of {store.count_runs()} runs · {_e(store.safe_url)}", title_justify="left")
    for col_ in ("id", "name", "experiment", "status", "progress", "clean err", "FGSM err .25", "duration", "device", "started"):
        t.add_column(col_, justify="right" if col_ in ("id", "progress", "clean err", "FGSM err .25") else "left")
    for r in runs:
        t.add_row(
            str(r.id),
            _e(r.name),
            _e(r.experiment),
            _e(_status(r)),
            f"{100 * r.progress:.0f}%",
            _fmt_pct(r.clean_error),
            _fmt_pct(r.fgsm_error),
            _duration(r),
            _e(r.device or "—"),
            r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "—",
        )
    _out_console().print(t)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: RunIdArg,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    samples: Annotated[int, typer.Option("--samples", min=0, max=1000, help="Perturbation views to draw.")] = 2,
) -> None:
    """One run: status, config, final metrics, sweep table and curve, perturbation views, and the P20 logit
    curve or P21 weight images when the run stored them."""
    from .catalog import Store
    from .views import accuracy_chart, halfblock, side_by_side, sign_image

    store = _reader_store(_db(ctx, db))
    run = store.get_run(run_id)
    doc = _run_json(store, run)
    if as_json:
        typer.echo(json.dumps(doc, default=_json_default))
        return
    con = _out_console()
    con.print(
        f"[bold]run {run.id}[/bold] · {_e(run.name)} · experiment {_e(run.experiment)} · [bold]{_e(run.status)}[/bold] · {_e(run.device or '—')} · {_duration(run)}"
    )
    if doc.get("damaged"):
        con.print(f"[red]damaged row:[/red] {_e('; '.join(doc['damaged']))} (shown as far as it can be read)")
    if run.claims:
        con.print(f"claims: {_e(run.claims)}")
    if run.error:
        con.print(f"[red]error:[/red] {_e(run.error)}")
    metrics = {k: v for k, v in doc["metrics"].items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    if metrics:
        con.print("metrics: " + ", ".join(f"{_e(k)}={v:.4g}" for k, v in sorted(metrics.items())))
    _print_summary(store, run)
    for sweep in doc["sweeps"]:
        pts = sweep["points"]
        label = printable(f"{sweep['attack']} ({sweep['labels']} labels)")
        chart = accuracy_chart({label: ([p["epsilon"] for p in pts], [p["accuracy"] for p in pts])}, title=f"run {run.id}: accuracy vs ε")
        typer.echo(chart)
    shown = 0
    for s in store.samples(run.id):
        if shown >= samples:
            break
        shown += 1
        if not all(isinstance(b, bytes) and len(b) == 784 for b in (s.clean, s.sign, s.adversarial)):
            typer.echo(f"(perturbation view {s.idx} at ε={s.epsilon} is damaged: not 28×28 images)")
            continue
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
    run_id: RunIdArg,
    fmt: Annotated[str, typer.Option("--format", "-f", help="csv | json")] = "json",
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="Write to a file instead of stdout.")] = None,
    db: DbOpt = None,
) -> None:
    """Metrics and sweeps of a run as JSON (one document) or CSV (long format: one value a row)."""
    from .catalog import Store

    if fmt not in ("csv", "json"):
        raise UserError(f"--format must be csv or json, got {fmt!r}")
    store = _reader_store(_db(ctx, db))
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
        print(f"wrote {printable(output)}", file=sys.stderr)
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
    profile: Annotated[str, typer.Option("--profile", help="quick (about 20 min on a 2-core CPU) | standard (quick + the 240-unit maxouts at the paper's length, measured 75 min more on a 2-core CPU) | paper (full scale, for a GPU).")] = "quick",
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
    store.check_integrity()
    stop = threading.Event()
    rep = Reproducer(store, profile, only=only.split(",") if only else None, fresh=fresh, data_dir=data_dir, device=device, stop_event=stop)
    _install_signal_handlers(stop)
    err = _err_console()
    t0 = time.perf_counter()

    def emit(e: dict) -> None:
        if e["type"] == "step_start":
            err.rule(f"[bold]{e['index']}/{e['steps']} {_e(e['key'])}[/bold] ({_e(', '.join(e['claims']))})")
        elif e["type"] == "step_end":
            err.print(f"{_e(e['key'])}: {_e(e['status'])} (run {e['run_id']}, {e['seconds']:.0f} s)")
        elif e["type"] == "run_start":
            err.print(f"run [bold]{e['run_id']}[/bold] · {_e(e['name'])} · device {_e(e['device'])}")
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
        t.add_row(
            _e(r.id), _e(r.title), _e(r.paper), _e(r.measured), _e(r.profile or "—"), f"[{colour.get(r.verdict, '')}]{_e(r.verdict)}[/]", _e(r.direction or ""),
            ",".join(map(str, r.runs)),
        )  # fmt: skip
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
        t.add_row(_e(claim_id), _e(("★ " if headline else "  ") + reading), _e(measured), _e(distance), Text(verdict, style=colour.get(verdict, "")),
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
    store = _reader_store(_db(ctx, db))
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


def _reader_store(db: str | None):
    """The store of a command that only reads (runs list/show/export, report): it waits at most
    ``READER_LOCK_WAIT_S`` for a lock, and marks dead runs interrupted unless another process holds
    the lock right now (then it says so in one line and shows the catalog as it is)."""
    from .catalog.store import READER_LOCK_WAIT_S, CatalogLocked, Store

    store = Store(db, lock_wait_s=READER_LOCK_WAIT_S)
    try:
        store.refresh_liveness()
    except CatalogLocked as e:
        print(f"adv-tui: note: {one_line(e)}; statuses are shown without the liveness check", file=sys.stderr)
    return store


def crash_log_dir() -> Path:
    """``$ADV_TUI_CACHE/logs`` (the user cache); no torch import on this path."""
    from platformdirs import user_cache_dir

    return Path(os.environ.get("ADV_TUI_CACHE") or user_cache_dir("adv-tui")) / "logs"


def _write_crash_log(exc: BaseException) -> Path | None:
    """The traceback of an unexpected error, in a private file (0600) of the user cache."""
    import time
    import traceback

    from .safe import scrub_secrets

    try:
        d = crash_log_dir()
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = d / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(f"adv-tui {' '.join(scrub_secrets(a) for a in sys.argv[1:])}\n\n")
            f.write(scrub_secrets("".join(traceback.format_exception(exc))))
        return path
    except OSError:
        return None


# Click's exceptions, from wherever this typer takes Click (newer typers vendor it as typer._click)
_click_errors = sys.modules[typer.BadParameter.__module__]
_ABORTS = tuple({typer.Abort, getattr(_click_errors, "Abort", typer.Abort)})


def main() -> None:
    """The console script: every failure ends as one line on stderr (exit 2: bad input, 1: a run that
    did not complete or an internal error, whose traceback goes to a log file named in that line)."""
    try:
        try:
            code = app(standalone_mode=False)
        finally:
            from .catalog.store import close_all

            close_all()
    except UserError as e:
        print("adv-tui: error: " + one_line(e), file=sys.stderr)  # always one line
        sys.exit(e.exit_code)
    except _click_errors.NoArgsIsHelpError as e:  # `adv-tui runs`: the help, then what was missing
        typer.echo(e.ctx.get_help() if e.ctx is not None else "")
        print("adv-tui: error: missing command (see the list above)", file=sys.stderr)
        sys.exit(2)
    except _click_errors.ClickException as e:  # usage errors: one line instead of Click's boxed message
        ctx = getattr(e, "ctx", None)
        where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
        msg = e.format_message()
        if isinstance(e, _click_errors.NoSuchOption) and e.option_name[1:].replace("_", "").isdigit():
            msg = f"{e.option_name} is not a run id (run ids are whole numbers from 1 to {MAX_RUN_ID})"
        print(f"adv-tui: error: {one_line(msg)}{where}", file=sys.stderr)
        sys.exit(e.exit_code if e.exit_code in (1, 2) else 2)
    except BrokenPipeError:  # `adv-tui runs list | head`: the reader went away, nothing to say
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - so the interpreter's final flush is quiet too
        except OSError:
            pass
        sys.exit(1)
    except _ABORTS:
        print("adv-tui: interrupted", file=sys.stderr)
        sys.exit(130)
    except KeyboardInterrupt:
        print("adv-tui: interrupted", file=sys.stderr)
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug: one line here, the traceback in a file
        log = _write_crash_log(e)
        where = f"; the traceback is in {log}" if log else ""
        print(f"adv-tui: error: internal error: {type(e).__name__}: {one_line(e, 300)}{where} (please report it)", file=sys.stderr)
        sys.exit(1)
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
