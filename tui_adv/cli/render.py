"""How the commands print: rich consoles, escaped catalog text, the run summary and the scorecard.

Everything that turns a run or a scorecard into terminal output lives here; the commands decide what to
print, not how it looks.
"""

from __future__ import annotations

from typing import Any

from ..safe import printable


def err_console():  # noqa: ANN201
    from rich.console import Console

    return Console(stderr=True)


def out_console():  # noqa: ANN201
    from rich.console import Console

    return Console()


def esc(value: Any, **kw: Any) -> str:
    """A catalog string ready for rich markup: control characters stripped, markup escaped."""
    from rich.markup import escape

    return escape(printable(value, **kw))


def fmt_pct(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}%"


def duration(run) -> str:  # noqa: ANN001
    secs = run.active_seconds()  # less the time a resumed run sat stopped
    if secs is None:
        return "—"
    s = int(secs)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def status_text(run) -> str:  # noqa: ANN001
    from ..catalog.schema import damage_of

    return printable(run.status) + (" (damaged)" if damage_of(run) else "")


def fmt_metric(key: str, value: float) -> str:
    """A final metric as people read it: errors, accuracies and confidences in percent, counts whole,
    the rest to 4 significant digits."""
    if key.endswith(("_error", "_accuracy")) or "confidence" in key:
        return fmt_pct(value)
    if key.startswith("epochs") or key.endswith("_epoch") or float(value).is_integer() and abs(value) < 1e9 and key != "lr":
        return f"{int(value)}"
    return f"{value:.4g}"


def print_metrics(metrics: dict) -> None:
    """The run's final metrics as one table of ``key value`` pairs, three pairs a row."""
    from rich.table import Table

    items = [(k, v) for k, v in sorted(metrics.items()) if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if not items:
        return
    con = out_console()
    per_row = 3 if con.width >= 100 else 2 if con.width >= 64 else 1
    t = Table(title="final metrics", title_justify="left", show_header=False, box=None, pad_edge=False, padding=(0, 2, 0, 0))
    for _ in range(per_row):
        t.add_column(style="dim")
        t.add_column(justify="right")
    for i in range(0, len(items), per_row):
        row: list[str] = []
        for k, v in items[i:i + per_row]:
            row += [esc(k), fmt_metric(k, v)]
        t.add_row(*row)
    con.print(t)


def _own_first(sweeps: list[dict], own: object) -> tuple[list[dict], dict | None]:
    """The sweeps with the config's own reading (the one the row's FGSM error is) first."""
    from ..claims import sweep_of_reading

    mine = sweep_of_reading(sweeps, own)
    if mine is None:
        return sweeps, None
    return [mine, *[sw for sw in sweeps if sw is not mine]], mine


def print_summary(store, run, *, title: bool = True) -> None:  # noqa: ANN001
    """The sweep table (one section per reading, the run's own reading first and marked) and the line
    with the run's headline numbers. ``title=False`` where the caller already printed the run's header."""
    from rich.table import Table

    from ..claims import reading_text

    con = out_console()
    t = Table(title=f"run {run.id} · {esc(run.name)} · {esc(status_text(run))}" if title else "FGSM sweep", title_justify="left")
    sweeps, own_sweep = _own_first(store.sweeps(run.id), run.summary().get("reading"))
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
        if several and sweep is own_sweep:
            name = "★ " + name
        for i, p in enumerate(sweep["points"]):
            err = fmt_pct(p["error"]) + (f" ±{100 * p['error_spread']:.2f}" if p.get("error_spread") else "")
            row = [f"{p['epsilon']:g}", fmt_pct(p["accuracy"]), err, fmt_pct(p["mean_confidence"]), fmt_pct(p["mean_confidence_wrong"])]
            t.add_row(*([esc(name) if i == 0 else ""] if several else []), *row, end_section=several and i == len(sweep["points"]) - 1)
    if t.row_count:
        if several and own_sweep is not None:
            t.caption, t.caption_justify = "★ the run's own reading (the attack its config names): its FGSM error below", "left"
        con.print(t)
    fgsm = "FGSM error (ε=.25)"
    if len(sweeps) > 1 and own_sweep is not None:
        fgsm = f"FGSM error (ε=.25, {reading_text(own_sweep)})"
    con.print(f"clean error {fmt_pct(run.clean_error)} · {fgsm} {fmt_pct(run.fgsm_error)} · {duration(run)} on {esc(run.device)} · catalog {esc(store.safe_url)}")


def print_analysis(store, run_id: int, width: int) -> None:  # noqa: ANN001
    """The P20 logit curve and P21 weight images, when the run stored those artifacts; an artifact that
    cannot be drawn becomes a one-line note (the rest of `runs show` still prints, exit 0)."""
    import typer

    from ..views import logit_curve_chart, weights_view

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


VERDICT_COLOUR = {"PASS": "green", "FAIL": "red", "NOT RUN": "dim"}


def print_scorecard(results) -> None:  # noqa: ANN001
    from rich.table import Table

    t = Table(title="Scorecard: Explaining and Harnessing Adversarial Examples", title_justify="left", show_lines=False)
    for c in ("id", "experiment", "paper", "measured", "profile", "verdict", "paper's side", "runs"):
        t.add_column(c, overflow="fold")
    for r in results:
        measured = r.measured
        if r.verdict == "NOT RUN":  # the row says which command fills it
            fill = next((n[len("fill it with: "):] for n in (r.note or "").split(" · ") if n.startswith("fill it with: ")), None)
            if fill:
                measured = f"— (run: {fill})"
        t.add_row(
            esc(r.id), esc(r.title), esc(r.paper), esc(measured), esc(r.profile or "—"), f"[{VERDICT_COLOUR.get(r.verdict, '')}]{esc(r.verdict)}[/]", esc(r.direction or ""),
            ",".join(map(str, r.runs)),
        )  # fmt: skip
    out_console().print(t)
    print_matrix(results)


def print_matrix(results) -> None:  # noqa: ANN001
    """The protocol matrix: every reading of each matrix claim, its values, distance and verdict."""
    from rich.table import Table
    from rich.text import Text

    from ..claims import matrix_rows

    rows = matrix_rows(results)
    if not rows:
        return
    t = Table(title="Protocol matrix: every reading of what the paper leaves unstated (★ = the headline's reading)", title_justify="left")
    for c in ("claim", "reading", "measured", "distance", "verdict"):
        t.add_column(c, overflow="fold")
    for claim_id, reading, measured, distance, verdict, headline in rows:
        t.add_row(esc(claim_id), esc(("★ " if headline else "  ") + reading), esc(measured), esc(distance), Text(verdict, style=VERDICT_COLOUR.get(verdict, "")),
                  end_section=False)
    out_console().print(t)
