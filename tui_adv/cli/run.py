"""``adv-tui run``, ``resume`` and ``data``: one training run, headless, with progress on stderr.

Ctrl-C / SIGTERM stop a run cleanly (status cancelled); the exit code says how it ended (0 completed,
1 not completed, 2 bad input).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Dataset, Device, ExecutorKind, RunStatus
from ..errors import UserError
from ..safe import one_line
from .app import (
    CheckpointsOpt,
    DataOpt,
    DbOpt,
    ExecutorOpt,
    HeadlessOpt,
    JsonOpt,
    QuietOpt,
    RayAddressOpt,
    _run_id,
    app,
    data_dir_of,
    db_of,
    device_option,
    use_checkpoints,
)
from .render import err_console, print_summary


def _device(device: Device | None) -> str | None:
    return None if device is None else device.value


@app.command()
def run(
    ctx: typer.Context,
    config: Annotated[Path, typer.Argument(help="A TOML config, e.g. configs/softmax.toml, or a shipped config's name (softmax; see `adv-tui configs`).")],
    headless: HeadlessOpt = False,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    checkpoints: CheckpointsOpt = None,
    device: Annotated[Optional[Device], device_option("the config's, else auto")] = None,
    overrides: Annotated[Optional[list[str]], typer.Option("--set", metavar="KEY=VALUE", help="Override a config key: --set train.epochs=5 (repeatable).")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    executor: ExecutorOpt = ExecutorKind.LOCAL,
    ray_address: RayAddressOpt = None,
) -> None:
    """Train and sweep one config; every metric goes to the catalog as it happens (--executor ray: as a
    task on a Ray cluster, which implies --headless)."""
    from ..catalog import Store
    from ..config import load_config, resolve_config_path
    from ..runner import Runner, check_training_env, resolve_device

    config = resolve_config_path(config)  # a path, else a shipped config of that name (from any directory)
    cfg = load_config(config, overrides or [])
    dev = _device(device)
    resolve_device(dev or cfg.device)  # fail before a run row exists
    check_training_env()
    use_checkpoints(ctx, checkpoints)
    db = db_of(ctx, db)
    data_dir = data_dir_of(ctx, data_dir)
    if not headless and executor != ExecutorKind.RAY:
        from ..tui.app import run_app

        run_app(db=db, data_dir=data_dir, launch=(str(config), list(overrides or []), dev))
        return
    # the dataset is checked before a run row exists, so a missing dataset leaves the catalog untouched
    from ..core.data import check_dataset

    check_dataset(cfg.data.dataset, data_dir)
    store = Store(db)
    store.check_integrity()  # a damaged file fails here, before a row is added, not late with one half written
    if executor == ExecutorKind.RAY:
        from ..executor import StepTask

        task = StepTask(key=cfg.name, profile=cfg.profile or "", db_url=store.url, data_dir=data_dir, device=dev or cfg.device, config_json=cfg.to_json())
        _on_ray(store, task, ray_address, as_json=as_json)
        return
    stop = threading.Event()
    runner = Runner(cfg, store, data_dir=data_dir, device=dev, stop_event=stop)
    install_signal_handlers(stop, lambda: runner.working)
    runner.create()
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json)


@app.command()
def resume(
    ctx: typer.Context,
    run_id: Annotated[int, typer.Argument(metavar="RUN_ID", callback=_run_id, help="The interrupted, cancelled or failed run to continue (see `adv-tui runs list`).")],
    headless: HeadlessOpt = False,
    db: DbOpt = None,
    data_dir: DataOpt = None,
    checkpoints: CheckpointsOpt = None,
    device: Annotated[Optional[Device], device_option("the run's config, else auto")] = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    executor: ExecutorOpt = ExecutorKind.LOCAL,
    ray_address: RayAddressOpt = None,
) -> None:
    """Continue an interrupted, cancelled or failed run from its last checkpoint, in the same run row
    (without --headless: in the background, followed live in the dashboard; --executor ray: as a task
    on any node of a Ray cluster that reaches the catalog and the checkpoint).

    Metric rows written after the checkpoint are dropped first, so nothing is duplicated; the model,
    optimizer, RNG and data-order state come from the checkpoint, so on CPU with a fixed seed the run
    ends exactly as an uninterrupted one would.
    """
    from ..catalog import Store
    from ..core.data import check_dataset
    from ..runner import Runner, check_training_env, resolve_device

    dev = _device(device)
    if dev is not None:
        resolve_device(dev)
    use_checkpoints(ctx, checkpoints)
    db = db_of(ctx, db)
    data_dir = data_dir_of(ctx, data_dir)
    store = Store(db)
    store.check_integrity()
    stop = threading.Event()
    # every check (run state, checkpoint, device, dataset) happens before the catalog is written to
    runner = Runner.for_resume(store, run_id, data_dir=data_dir, device=dev, stop_event=stop)
    resolve_device(runner.device_request)
    check_training_env()
    check_dataset(runner.cfg.data.dataset, data_dir)
    if executor == ExecutorKind.RAY:
        from ..executor import StepTask

        task = StepTask(key=f"resume {run_id}", profile="", db_url=store.url, data_dir=data_dir, device=dev or "auto",
                        resume_run_id=run_id, resume_only=True)
        _on_ray(store, task, ray_address, as_json=as_json)
        return
    if not headless:  # checked here (one line, exit 2, nothing written); the dashboard starts it and follows it
        from ..tui.app import run_app

        store.close()
        run_app(db=db, data_dir=data_dir, resume=(run_id, dev))
        return
    install_signal_handlers(stop, lambda: runner.working)
    _execute_and_report(store, runner, quiet=quiet, as_json=as_json)


def _on_ray(store, task, address: str | None, *, as_json: bool) -> None:  # noqa: ANN001
    """Run one StepTask on Ray and wait for it; Ctrl-C cancels the task (the run ends cancelled). Prints
    the run's summary (or its JSON); exit 1 unless it completed."""
    from ..ray_executor import RayExecutor
    from ..services.export import json_default
    from ..services.runs import run_document

    ex = RayExecutor(address)
    try:
        handle = ex.submit(task)
        where = address or "a local Ray"
        print(f"adv-tui: {task.key} submitted to {where} as a Ray task; its progress is in the catalog (adv-tui runs list, or the dashboard)", file=sys.stderr)
        try:
            outcome = handle.result()
        except KeyboardInterrupt:
            print("\nadv-tui: stopping the Ray task (status: cancelled)…", file=sys.stderr)
            ex.stop()
            outcome = handle.result()
    finally:
        ex.shutdown()
    if outcome.run_id is None:
        print(f"adv-tui: {task.key} {outcome.status}: {one_line(outcome.error or 'no reason recorded')}", file=sys.stderr)
        raise typer.Exit(1)
    run_row = store.get_run(outcome.run_id)
    if as_json:
        typer.echo(json.dumps(run_document(store, run_row), default=json_default))
    else:
        print_summary(store, run_row)
    if outcome.status != RunStatus.COMPLETED:
        print(f"adv-tui: run {run_row.id} {outcome.status}: {one_line(outcome.error or run_row.error or 'no reason recorded')}", file=sys.stderr)
        raise typer.Exit(1)


def _execute_and_report(store, runner, *, quiet: bool, as_json: bool, note: str | None = None) -> None:  # noqa: ANN001
    """Execute a created (or resumable) run headless with progress bars on stderr, then print its
    summary (or its JSON); exit 1 unless it completed."""
    from ..progress import RichProgress
    from ..services.export import json_default
    from ..services.runs import run_document

    renderer = RichProgress(err_console(), enabled=not quiet)

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
        typer.echo(json.dumps(run_document(store, run_row), default=json_default))
    else:
        print_summary(store, run_row)
    if status != RunStatus.COMPLETED:
        # one line, printed once (the progress renderer does not repeat it), never wrapped
        print(f"adv-tui: run {run_row.id} {status}: {one_line(run_row.error or 'no reason recorded')}", file=sys.stderr)
        raise typer.Exit(1)


def install_signal_handlers(stop: threading.Event, interruptible=lambda: True) -> None:  # noqa: ANN001
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



@app.command()
def data(
    ctx: typer.Context,
    data_dir: DataOpt = None,
    dataset: Annotated[Dataset, typer.Option("--dataset", case_sensitive=False, help="Which dataset to check (data.dataset).")] = Dataset.MNIST,
    as_json: JsonOpt = False,
) -> None:
    """Check a dataset's files in the data root: where they are looked for, their checksums, and whether
    they load (MNIST unless --dataset says otherwise); a missing or corrupt file is one line saying what
    to put where."""
    from ..core.data import check_dataset, resolve_data_root

    root = resolve_data_root(data_dir_of(ctx, data_dir))
    info = check_dataset(dataset.value, root)
    if as_json:
        typer.echo(json.dumps(info))
        return
    c, h, w = info["shape"]
    typer.echo(f"{info['title']} ok in {root}: {info['train']} train, {info['test']} test images" + (f" ({h}×{w} colour)" if c == 3 else ""))


@app.command()
def configs() -> None:
    """The shipped configs: name, claims, description (run one with `adv-tui run NAME`)."""
    import tomllib

    from ..config import shipped_config_dirs

    dirs = shipped_config_dirs()
    if not dirs:
        raise UserError("no shipped configs found (reinstall adv-tui: pip install .)")
    seen: set[str] = set()
    for d in dirs:
        for p in sorted(d.glob("*.toml")):
            if p.stem in seen:
                continue
            seen.add(p.stem)
            try:
                raw = tomllib.loads(p.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
                typer.echo(f"{p.stem:<22} (unreadable: {type(e).__name__})")
                continue
            claims = ",".join(raw.get("claims") or []) or "—"
            typer.echo(f"{p.stem:<22} {claims:<28} {one_line(raw.get('description') or '')}")
        typer.echo(f"(in {d})")
