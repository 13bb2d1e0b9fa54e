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
from ..model import STATUS_GLYPH, STATUS_STYLE, config_diff, duration, hex_colour, pct, run_colour, run_config
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
    ]
    HELP_EXTRA = "Each run keeps its colour (by id) in every chart and table. `enter` on a legend row opens that run."

    def __init__(self, run_ids: list[int]) -> None:
        super().__init__()
        self.run_ids = list(run_ids)
        self.data: list[RunCurves] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Compare ", "bold"), (f"{len(self.run_ids)} runs", "bold"), ("  loading…", "dim")), id="compare-title", classes="topbar")
        with VerticalScroll(id="compare-scroll"):
            yield Table(id="compare-legend", cursor_type="row", show_cursor=True)
            with Grid(id="compare-grid"):
                yield Chart("accuracy vs ε (%)", xlabel="ε", ylim=(0, 100), empty="no sweeps", id="cmp-sweep")
                yield Chart("test/valid error per epoch (%) · FGSM dotted", xlabel="epoch", empty="no per-epoch metrics", id="cmp-errors")
                yield Chart("train loss per epoch", xlabel="epoch", empty="no per-epoch metrics", id="cmp-loss")
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
        title = Text.assemble(("Compare ", "bold"), (f"{len(self.data)} runs", "bold"), ("   ", ""))
        for rc in self.data:
            title.append(f"■ #{rc.run.id} ", style=hex_colour(run_colour(int(rc.run.id))))
        self.query_one("#compare-title", Static).update(title)

        legend = self.query_one("#compare-legend", DataTable)
        legend.clear(columns=True)
        for key, label in (("c", " "), ("id", "id"), ("name", "name"), ("status", "status"), ("clean", "clean err"), ("fgsm", "FGSM ε=.25"), ("dur", "duration"), ("exp", "experiment")):
            legend.add_column(label, key=key)
        for rc in self.data:
            r = rc.run
            legend.add_row(
                Text("■■", style=hex_colour(run_colour(int(r.id)))),
                Text(str(r.id), justify="right"),
                plain(r.name),
                plain(f"{STATUS_GLYPH.get(r.status, '?')} {r.status}", style=STATUS_STYLE.get(r.status, "")),
                Text(pct(r.clean_error), justify="right"),
                Text(pct(r.fgsm_error), justify="right"),
                Text(duration(r, now), justify="right"),
                plain(r.experiment),
                key=str(r.id),
            )

        sweep, errors, loss = [], [], []
        for rc in self.data:
            rid = int(rc.run.id)
            colour = run_colour(rid)
            if rc.sweep:
                sweep.append(Series(f"#{rid}", [e for e, _ in rc.sweep], [100 * a for _, a in rc.sweep], colour, marker="hd"))
            pre = "valid" if "valid_error" in rc.metrics else "test"
            for key, marker, suffix in ((f"{pre}_error", "hd", ""), (f"{pre}_adv_error", "dot", " FGSM")):
                pts = rc.metrics.get(key) or []
                if pts:
                    errors.append(Series(f"#{rid}{suffix}", [s for s, _ in pts], [100 * v for _, v in pts], colour, marker=marker))
            pts = rc.metrics.get("train_loss") or []
            if pts:
                loss.append(Series(f"#{rid}", [s for s, _ in pts], [v for _, v in pts], colour, marker="hd"))
        self.query_one("#cmp-sweep", Chart).set_series(sweep)
        self.query_one("#cmp-errors", Chart).set_series(errors)
        self.query_one("#cmp-loss", Chart).set_series(loss)

        diff = config_diff({int(rc.run.id): run_config(rc.run) for rc in self.data})
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

    def action_open(self) -> None:
        legend = self.query_one("#compare-legend", DataTable)
        if legend.row_count == 0:
            return
        key = legend.coordinate_to_cell_key((legend.cursor_row, 0)).row_key.value
        if key is not None:
            self.app.open_run(int(key))
