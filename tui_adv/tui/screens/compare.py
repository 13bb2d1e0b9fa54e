"""Compare: accuracy-vs-ε and training curves of several runs overlaid, each run in its own stable colour,
and the config values that differ between them."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...catalog.schema import Run
from ...config import dataset_of
from ..model import STATUS_GLYPH, STATUS_STYLE, config_diff, duration, hex_colour, pct, run_colour, run_label, varied_axes
from ..widgets.charts import Chart, Series
from ..safe_text import plain
from ..widgets.footer import AppFooter
from ..widgets.table import Table


@dataclass
class RunCurves:
    run: Run
    sweep: list[tuple[float, float]] = field(default_factory=list)  # (ε, accuracy), the first sweep
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


class CompareData(Message):
    def __init__(self, runs: list[RunCurves], missing: list[int]) -> None:
        super().__init__()
        self.runs, self.missing = runs, missing


class CompareScreen(Screen):
    HELP_TITLE = "Compare"
    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("r", "reload", "Reload"),
        Binding("enter", "open", "Open run"),
        Binding("e", "save_charts", "Save charts"),
    ]
    HELP_EXTRA = "Each run keeps its colour (by id) in every chart and table. `enter` on a legend row opens that run."

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.data: list[RunCurves] = []
        self.labels: dict[int, str] = {}  # run id → the label the legend shows
        self.loaded = False
        self.saved: list = []  # the PNG files the last `e` wrote

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Compare ", "bold"), (f"{len(self.run_ids)} runs", "bold"), ("  loading…", "dim")), id="compare-title", classes="topbar")
        with VerticalScroll(id="compare-scroll"):
            yield Table(id="compare-legend", cursor_type="row", show_cursor=True)
            with Grid(id="compare-grid"):
                yield Chart("accuracy vs ε (%)", xlabel="ε", ylim=(0, 100), empty="no sweeps", id="cmp-sweep")
                yield Chart("test/valid error per epoch (%) · FGSM dotted, right axis", xlabel="epoch", integer_x=True, ylabel="clean %",
                            ylabel_right="FGSM %", empty="no per-epoch metrics", id="cmp-errors")
                yield Chart("train loss per epoch", xlabel="epoch", integer_x=True, empty="no per-epoch metrics", id="cmp-loss")
            # a grid (runs that differ in one or two numeric config keys): final FGSM error against the key
            yield Chart("final FGSM error (%) vs the varied key", ylim=(0, 100), empty="", id="cmp-vary")
            yield Static(Text("config keys that differ", style="bold"), id="compare-diff-title")
            yield Table(id="compare-diff", cursor_type="none", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        self.action_reload()

    def action_reload(self) -> None:
        self._load(self.run_ids)

    @work(thread=True, exclusive=True, group="compare", exit_on_error=False)
    def _load(self, ids: list[int]) -> None:
        store = self.app.store
        runs = {int(r.id): r for r in store.list_runs(ids=ids)}
        out, missing = [], []
        for rid in ids:
            run = runs.get(rid)
            if run is None:
                missing.append(rid)
                continue
            rc = RunCurves(run)
            sweeps = store.sweeps(rid)
            if sweeps:
                rc.sweep = [(p["epsilon"], p["accuracy"]) for p in sweeps[0]["points"]]
            for m in store.metrics(rid, keys=["train_loss", "test_error", "test_adv_error", "valid_error", "valid_adv_error"]):
                rc.metrics.setdefault(m.key, []).append((int(m.step), float(m.value)))
            for v in rc.metrics.values():
                v.sort()
            out.append(rc)
        self.post_message(CompareData(out, missing))

    def on_compare_data(self, message: CompareData) -> None:
        message.stop()
        self.data = message.runs
        if message.missing:
            self.app.notify(f"not in the catalog: {', '.join(f'#{i}' for i in message.missing)}", severity="warning")
        with self.app.batch_update():
            self._draw()
        self.loaded = True

    def _draw(self) -> None:
        now = self.app.clock()
        diff = config_diff({int(rc.run.id): rc.run.config() for rc in self.data})
        # each run named by its name and, where runs share a name, the config values that tell them apart
        labels = {}
        for rc in self.data:
            same = [o for o in self.data if o.run.name == rc.run.name]
            differing = [k for k, _v in config_diff({int(o.run.id): o.run.config() for o in same})] if len(same) > 1 else []
            labels[int(rc.run.id)] = f"#{rc.run.id} " + run_label(rc.run, differing=differing, limit=34)
        self.labels = {rid: text.split(" ", 1)[1] for rid, text in labels.items()}
        title = Text.assemble(("Compare ", "bold"), (f"{len(self.data)} runs", "bold"), ("   ", ""))
        for rc in self.data:
            title.append(f"■ #{rc.run.id} ", style=hex_colour(run_colour(int(rc.run.id))))
        self.query_one("#compare-title", Static).update(title)

        legend = self.query_one("#compare-legend", DataTable)
        legend.clear(columns=True)
        datasets = {rc.run.id: dataset_of(rc.run.config_json) for rc in self.data}
        show_data = any(d != "mnist" for d in datasets.values())  # the column once a run is on another dataset
        cols = [("c", " "), ("id", "id"), ("name", "name"), ("status", "status"), ("clean", "clean err"), ("fgsm", "FGSM ε=.25"), ("dur", "duration"), ("exp", "experiment")]
        for key, label in cols + ([("data", "data")] if show_data else []):
            legend.add_column(label, key=key)
        for rc in self.data:
            r = rc.run
            extra = [plain(datasets[r.id])] if show_data else []
            legend.add_row(
                Text("■■", style=hex_colour(run_colour(int(r.id)))),
                Text(str(r.id), justify="right"),
                plain(labels[int(r.id)].split(" ", 1)[1]),
                plain(f"{STATUS_GLYPH.get(r.status, '?')} {r.status}", style=STATUS_STYLE.get(r.status, "")),
                Text(pct(r.clean_error), justify="right"),
                Text(pct(r.fgsm_error), justify="right"),
                Text(duration(r, now), justify="right"),
                plain(r.experiment),
                *extra,
                key=str(r.id),
            )

        sweep, errors, loss = [], [], []
        for rc in self.data:
            rid = int(rc.run.id)
            colour = run_colour(rid)
            if rc.sweep:
                sweep.append(Series(labels[rid], [e for e, _ in rc.sweep], [100 * a for _, a in rc.sweep], colour, marker="hd"))
            pre = "valid" if "valid_error" in rc.metrics else "test"
            for key, marker, suffix in ((f"{pre}_error", "hd", ""), (f"{pre}_adv_error", "dot", " FGSM")):
                pts = rc.metrics.get(key) or []
                if pts:
                    errors.append(Series(f"{labels[rid]}{suffix}", [s for s, _ in pts], [100 * v for _, v in pts], colour, marker=marker,
                                         yside="right" if suffix else "left"))
            pts = rc.metrics.get("train_loss") or []
            if pts:
                loss.append(Series(labels[rid], [s for s, _ in pts], [v for _, v in pts], colour, marker="hd"))
        self.query_one("#cmp-sweep", Chart).set_series(sweep)
        self.query_one("#cmp-errors", Chart).set_series(errors)
        self.query_one("#cmp-loss", Chart).set_series(loss)
        self._draw_vary(diff)

        table = self.query_one("#compare-diff", DataTable)
        table.clear(columns=True)
        table.add_column("key", key="key")
        for rc in self.data:
            rid = int(rc.run.id)
            table.add_column(Text(f"#{rid}", style=f"bold {hex_colour(run_colour(rid))}"), key=str(rid))
        for key, vals in diff:  # config keys and values are stored strings: cells as plain text
            table.add_row(plain(key), *(plain(vals[int(rc.run.id)]) for rc in self.data))
        if not diff:
            table.add_row(Text("(identical configs)", style="dim"), *("" for _ in self.data))

    def _draw_vary(self, diff: list[tuple[str, dict[int, str]]]) -> None:
        """The grid plot: final FGSM error (ε = .25) against the varied numeric key, one line per value
        of a second varied key; hidden unless the compared runs vary one or two numeric keys."""
        chart = self.query_one("#cmp-vary", Chart)
        axes = varied_axes(diff)
        runs = {int(rc.run.id): rc.run for rc in self.data}
        series: list[Series] = []
        if axes is not None:
            xk, gk, xs, groups = axes
            for g in sorted(set(groups.values()), key=lambda v: (len(v), v)):
                pts = sorted((xs[rid], 100 * runs[rid].fgsm_error, rid) for rid, v in groups.items() if v == g and runs[rid].fgsm_error is not None)
                if pts:
                    series.append(Series(f"{gk}={g}" if gk else "FGSM error", [p[0] for p in pts], [p[1] for p in pts],
                                         run_colour(pts[0][2]), marker="hd"))
            title = f"final FGSM error (%, ε=.25) vs {xk}" + (f" · a line per {gk}" if gk else "")
            chart.xlabel = xk
            chart.set_series(series, title=title)
        chart.set_class(bool(series), "-shown")

    def action_open(self) -> None:
        legend = self.query_one("#compare-legend", DataTable)
        if legend.row_count == 0:
            return
        key = legend.coordinate_to_cell_key((legend.cursor_row, 0)).row_key.value
        if key is not None:
            self.app.open_run(int(key))

    def action_save_charts(self) -> None:
        """``e``: the charts of this comparison as PNG files in the working directory."""
        if not self.labels:
            self.app.notify("nothing to save yet", severity="warning")
            return
        self._save_charts(dict(self.labels), "compare-" + "-".join(str(r) for r in sorted(self.labels)))

    @work(thread=True, group="save-charts", exit_on_error=False)
    def _save_charts(self, labels: dict[int, str], stem: str) -> None:
        from pathlib import Path

        from ...chart_export import save_run_charts
        from ...errors import UserError

        try:
            files = save_run_charts(self.app.store, labels, Path(stem).resolve())
        except (UserError, OSError) as e:
            self.app.call_from_thread(self.app.notify, f"charts not saved: {e}", severity="error")
            return
        self.saved = files
        what = ", ".join(str(f) for f in files) if files else "nothing to draw (no sweep, no per-epoch metrics)"
        self.app.call_from_thread(self.app.notify, f"saved {what}", title="charts")
