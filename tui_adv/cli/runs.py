"""``adv-tui runs list | show | export | cancel``: the run catalog (read-only but for cancel, which stores a request on the row)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..choices import Dataset, ExportFormat, RunStatus
from ..safe import printable
from ..services.export import export_text, export_to_file, json_default
from ..services.runs import list_row, next_step, run_document
from .app import DbOpt, JsonOpt, RunIdArg, db_of, reader_store, runs_app
from .render import duration, esc, fmt_pct, out_console, print_analysis, print_metrics, print_summary, status_text


@runs_app.command("list")
def runs_list(
    ctx: typer.Context,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    limit: Annotated[int, typer.Option("--limit", "-n", metavar="N", min=1, max=1_000_000, help="Newest N runs.")] = 50,
    status: Annotated[Optional[RunStatus], typer.Option("--status", case_sensitive=False, help="Only runs with this status.")] = None,
    dataset: Annotated[Optional[Dataset], typer.Option("--dataset", case_sensitive=False, help="Only runs on this dataset (data.dataset).")] = None,
    group: Annotated[Optional[str], typer.Option("--group", metavar="NAME", help="Only the runs of this grid (`adv-tui grid --name`; matches the experiment exactly).")] = None,
) -> None:
    """The newest runs in the catalog."""
    from ..config import dataset_of

    store = reader_store(db_of(ctx, db))
    runs = store.list_runs(limit=limit, status=[status] if status else None, dataset=dataset.value if dataset else None, experiment=group)
    if as_json:
        rows = [list_row(r) for r in runs]
        typer.echo(json.dumps(rows, default=json_default))
        return
    from rich import box
    from rich.table import Table

    con = out_console()
    # (column, justify, cell of a run); a column stays only while the table fits the terminal, dropped in
    # DROP order, so nothing is cut to "soft…": the name wraps whole and every other cell is whole
    spec = [
        ("id", "right", lambda r: str(r.id)),
        ("name", "left", lambda r: esc(r.name)),
        ("experiment", "left", lambda r: esc(r.experiment)),
        ("dataset", "left", lambda r: esc(dataset_of(r.config_json))),
        ("status", "left", lambda r: esc(status_text(r))),
        ("progress", "right", lambda r: f"{100 * r.progress:.0f}%"),
        ("clean err", "right", lambda r: fmt_pct(r.clean_error)),
        ("FGSM err .25", "right", lambda r: fmt_pct(r.fgsm_error)),
        ("duration", "right", lambda r: duration(r)),
        ("device", "left", lambda r: esc(r.device or "—")),
        ("started", "left", lambda r: r.started_at.strftime("%Y-%m-%d %H:%M") if r.started_at else "—"),
    ]
    cells = {name: [f(r) for r in runs] for name, _j, f in spec}
    mixed = any(c != "mnist" for c in cells["dataset"])  # the dataset column stays then (else only on a wide terminal)
    width = {name: max([len(name) if name not in ("name", "experiment") else 4, *(len(c) for c in cells[name])]) for name, _j, _f in spec}
    width["name"] = min(width["name"], 24)
    keep = [name for name, _j, _f in spec]
    DROP = ("experiment", "device", "progress", "dataset", "started", "duration")

    def needed() -> int:
        return sum(width[n] + 3 for n in keep) + 1

    for name in DROP:
        if needed() <= con.width:
            break
        if name == "progress":  # its value moves into the status cell
            cells["status"] = [st if r.status == "completed" or not r.progress else f"{st} {100 * r.progress:.0f}%" for st, r in zip(cells["status"], runs)]
        if name == "dataset" and mixed:
            continue  # runs on several datasets: the column matters more than the date
        keep.remove(name)
    if not mixed and "dataset" in keep and needed() > con.width - 10:
        keep.remove("dataset")
    # the title on its own line: a table narrower than the terminal would wrap it (and the catalog URL in it)
    con.print(f"{len(runs)} of {store.count_runs()} runs · {esc(store.safe_url)}", soft_wrap=True, highlight=False)
    t = Table(box=box.HEAVY_HEAD)
    for name, justify, _f in spec:
        if name in keep:
            folds = name in ("name", "experiment")
            t.add_column(name, justify=justify, overflow="fold" if folds else "ellipsis", no_wrap=not folds, min_width=min(width[name], 12) if folds else width[name])
    for i in range(len(runs)):
        t.add_row(*[cells[name][i] for name, _j, _f in spec if name in keep])
    con.print(t)


@runs_app.command("show")
def runs_show(
    ctx: typer.Context,
    run_id: RunIdArg,
    db: DbOpt = None,
    as_json: JsonOpt = False,
    samples: Annotated[int, typer.Option("--samples", metavar="N", min=0, max=1000, help="Perturbation views to draw.")] = 2,
) -> None:
    """One run: status, config, final metrics, sweep table and curve, perturbation views, and the P20 logit
    curve or P21 weight images when the run stored them."""
    from ..config import dataset_of
    from ..views import accuracy_chart, halfblock, image_shape, side_by_side, sign_image

    store = reader_store(db_of(ctx, db))
    run = store.get_run(run_id)
    doc = run_document(store, run)
    if as_json:
        typer.echo(json.dumps(doc, default=json_default))
        return
    con = out_console()
    con.print(
        f"[bold]run {run.id}[/bold] · {esc(run.name)} · experiment {esc(run.experiment)} · dataset {esc(dataset_of(run.config_json))} · [bold]{esc(run.status)}[/bold] · {esc(run.device or '—')} · {duration(run)}"
    )
    if doc.get("damaged"):
        con.print(f"[red]damaged row:[/red] {esc('; '.join(doc['damaged']))} (shown as far as it can be read)")
    if run.claims:
        con.print(f"claims: {esc(run.claims)}")
    if run.error:
        con.print(f"[red]error:[/red] {esc(run.error)}")
    hint = next_step(run)
    if hint:
        con.print(f"[bold]next:[/bold] {esc(hint)}")
    print_metrics(doc["metrics"])
    print_summary(store, run, title=False)
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
        shapes = {image_shape(b) if isinstance(b, bytes) else None for b in (s.clean, s.sign, s.adversarial)}
        if len(shapes) != 1 or None in shapes:
            typer.echo(f"(perturbation view {s.idx} at ε={s.epsilon} is damaged: not 28×28 grey or 32×32 colour images)")
            continue
        titles = [f"clean: {s.label}→{s.clean_pred} ({100 * s.clean_conf:.1f}%)", f"sign(∇x J), ε={s.epsilon:g}", f"adversarial: →{s.adv_pred} ({100 * s.adv_conf:.1f}%)"]
        if shapes == {(3, 32, 32)} and con.color_system in ("truecolor", "256"):
            print_colour_view(con, [s.clean, s.sign, s.adversarial], titles)
            continue
        # grey (a colour image by its luminance) where the terminal has no colour, or output is not a terminal
        lines = side_by_side([halfblock(s.clean), sign_image(s.sign), halfblock(s.adversarial)], titles)
        typer.echo("\n".join(lines))
    print_analysis(store, run.id, con.width)


@runs_app.command("cancel")
def runs_cancel(ctx: typer.Context, run_id: RunIdArg, db: DbOpt = None) -> None:
    """Cancel a queued or running run on any host: the request is stored on the run row, which its
    runner polls (every few seconds); a run on this host also gets SIGTERM."""
    from ..services.cancel import cancel_run
    from ..catalog import Store

    typer.echo(cancel_run(Store(db_of(ctx, db)), run_id))


def print_colour_view(con, images: list[bytes], titles: list[str], gap: int = 3) -> None:  # noqa: ANN001
    """Colour images side by side: each cell '▀', the top pixel's colour as foreground, the bottom's as
    background (the sign image: each channel's −1/0/+1 as 0/128/255)."""
    from rich.style import Style
    from rich.text import Text

    from ..views import colour_cells

    grids = [colour_cells(img, sign=i == 1) for i, img in enumerate(images)]
    width = [max(32, len(t)) for t in titles]
    con.print(Text((" " * gap).join(t.ljust(w) for t, w in zip(titles, width))), highlight=False)
    for r in range(16):
        line = Text()
        for k, grid in enumerate(grids):
            if k:
                line.append(" " * gap)
            for top, bot in grid[r]:
                line.append("▀", Style(color="rgb({},{},{})".format(*top), bgcolor="rgb({},{},{})".format(*bot)))
            line.append(" " * (width[k] - 32))
        con.print(line, highlight=False, soft_wrap=True)


@runs_app.command("export")
def runs_export(
    ctx: typer.Context,
    run_id: RunIdArg,
    fmt: Annotated[ExportFormat, typer.Option("--format", "-f", case_sensitive=False, help="What to write.")] = ExportFormat.JSON,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", metavar="FILE", help="Write to a file instead of stdout.")] = None,
    db: DbOpt = None,
) -> None:
    """Metrics and sweeps of a run as JSON (one document) or CSV (long format: one value a row)."""
    store = reader_store(db_of(ctx, db))
    if output:
        export_to_file(store, run_id, output, fmt)
        print(f"wrote {printable(output)}", file=sys.stderr)
    else:
        text = export_text(store, run_id, fmt)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
