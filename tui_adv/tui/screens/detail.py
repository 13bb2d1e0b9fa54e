"""Run detail: sweep table and curve, perturbation views (clean / sign / adversarial), training curves,
P20/P21 analyses when the run has them, config, log, and export."""

from __future__ import annotations

from pathlib import Path

from rich.markup import escape as rich_escape
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, RichLog, Static, TabbedContent, TabPane

from ...catalog.schema import ACTIVE, Sample
from ...errors import UserError
from ...services.export import export_to_file
from ..messages import RunDelta
from ..model import pct, resumable
from ...safe import expand_user, printable
from ..safe_text import plain
from ..widgets.charts import Chart, Series
from ..widgets.digit import Digit
from ..widgets.footer import AppFooter
from ..widgets.table import Table
from .base import RunScreenBase, config_renderable, eval_note, run_title
from .dialogs import ExportScreen

LOGIT_COLOURS = ("primary", "warning", "success", "error", "accent", "secondary")


class RunDetailScreen(RunScreenBase):
    HELP_TITLE = "Run detail"
    want_samples = True
    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        # what to do with the run first (a narrow footer keeps the first keys), then paging the views
        Binding("r", "resume", "Resume"),
        Binding("e", "export", "Export"),
        Binding("v", "live", "Live view"),
        Binding("n", "sample(1)", "Next sample"),
        Binding("p", "sample(-1)", "Prev sample"),
        Binding("right_square_bracket", "eps(1)", "Next ε", key_display="]"),
        Binding("left_square_bracket", "eps(-1)", "Prev ε", key_display="["),
        Binding("1", "show_tab('tab-sweep')", "Sweep", show=False),
        Binding("2", "show_tab('tab-views')", "Perturbations", show=False),
        Binding("3", "show_tab('tab-train')", "Training", show=False),
        Binding("4", "show_tab('tab-analysis')", "Analysis", show=False),
        Binding("5", "show_tab('tab-config')", "Config", show=False),
        Binding("6", "show_tab('tab-log')", "Log", show=False),
    ]
    HELP_EXTRA = (
        "`1`–`6` switch tabs (sweep, perturbations, training, analysis, config, log). "
        "`n`/`p` page through the stored test images, `[`/`]` through the ε values they were perturbed with."
    )

    def __init__(self, run_id: int, **kw) -> None:  # noqa: ANN003
        super().__init__(run_id, **kw)
        self.sample_pos = 0
        self.eps_pos = 0
        self.by_eps: dict[float, list[Sample]] = {}
        self.saved: list = []  # what the last export wrote (the file, then its charts as PNG)

    def compose(self) -> ComposeResult:
        yield Static(id="detail-title", classes="topbar")
        with TabbedContent(id="detail-tabs", initial="tab-sweep"):
            with TabPane("1 Sweep", id="tab-sweep"):
                with Horizontal(id="sweep-row"):
                    yield Table(id="sweep-table", cursor_type="row", zebra_stripes=True)
                    yield Chart("accuracy vs ε (%)", xlabel="ε", ylim=(0, 100), empty="no sweep points yet", id="detail-sweep-chart")
            with TabPane("2 Perturbations", id="tab-views"):
                with VerticalScroll():
                    yield Static(id="views-nav")
                    with Horizontal(id="views-row"):
                        yield Digit(id="view-clean")
                        yield Digit(id="view-sign")
                        yield Digit(id="view-adv")
                    yield Static(id="views-note", classes="dim")
            with TabPane("3 Training", id="tab-train"):
                with Grid(id="train-grid"):
                    yield Chart("train loss per epoch", xlabel="epoch", integer_x=True, id="detail-loss")
                    yield Chart("error per epoch (%)", xlabel="epoch", integer_x=True, ylabel="clean %", ylabel_right="FGSM %", id="detail-errors")
            with TabPane("4 Analysis", id="tab-analysis"):
                with VerticalScroll(id="analysis-scroll"):
                    yield Static("no P20/P21 analysis stored for this run (`adv-tui reproduce` writes them)", id="analysis-none", classes="dim")
                    yield Chart("P20: logits along the FGSM direction", xlabel="ε", id="analysis-logits")
                    yield Static(id="analysis-weights-title")
                    yield Grid(id="analysis-weights")
            with TabPane("5 Config", id="tab-config"):
                with VerticalScroll():
                    yield Static(id="detail-config")
            with TabPane("6 Log", id="tab-log"):
                yield RichLog(id="detail-log", wrap=True, markup=False, highlight=False, max_lines=2000)
        yield AppFooter()

    def on_mount(self) -> None:
        # (the base class on_mount runs too: Textual calls every class's handler in the MRO)
        table = self.query_one("#sweep-table", DataTable)
        for key, label in (("attack", "attack"), ("eps", "ε"), ("acc", "accuracy"), ("err", "error"), ("conf", "mean conf"), ("confw", "conf on errors"), ("n", "n")):
            table.add_column(label, key=key)
        self.query_one("#analysis-logits").display = False
        self.query_one("#analysis-weights-title").display = False
        self._render_title()
        self._render_views()

    # ------------------------------------------------------------------------------------------ updates
    def apply(self, d: RunDelta) -> None:
        if d.run is not None:
            self.refresh_bindings()  # r (resume) appears once the run has stopped
        if d.error and d.run is None:
            self.query_one("#detail-title", Static).update(plain(d.error, style="bold red"))
            self.app.notify(d.error, severity="error")
            return
        self._render_title()
        if d.run is not None and self.updates == 1:
            self.query_one("#detail-config", Static).update(config_renderable(self.state.config))
        if d.sweep:
            self._render_sweep()
        if d.metrics:
            self._render_training()
        if d.samples is not None:
            self.by_eps = {}
            for s in d.samples:
                self.by_eps.setdefault(float(s.epsilon), []).append(s)
            for v in self.by_eps.values():
                v.sort(key=lambda s: s.idx)
            self._render_views()
        if d.artifacts:
            self._render_analysis(d.artifacts)
        if d.logs:
            log = self.query_one("#detail-log", RichLog)
            for line in d.logs:
                ts = line.ts.astimezone().strftime("%H:%M:%S") if line.ts else ""
                log.write(Text.assemble((ts + " ", "dim"), plain(line.message)))
        if self.state.run is not None and self.state.run.status not in ACTIVE and d.samples is not None:
            self.loaded = True

    def _render_title(self) -> None:
        self.query_one("#detail-title", Static).update(run_title(self.state.run, self.app.clock()))

    def _render_sweep(self) -> None:
        table = self.query_one("#sweep-table", DataTable)
        table.clear()
        series = []
        roles = ("warning", "accent", "primary", "success", "error", "secondary")  # up to 6 readings, each its own colour
        narrow = self.app.size.width < 110  # the legend in the table's short names (fgsm/eval+clip), so the plot keeps its rows
        for i, ((attack, labels, short), pts) in enumerate(self.state.sweep_points()):
            for p in pts:
                table.add_row(
                    plain(f"{attack}/{short}"),
                    Text(f"{p.epsilon:g}", justify="right"),
                    Text(pct(p.accuracy), justify="right"),
                    Text(pct(p.error), justify="right"),
                    Text(pct(p.mean_confidence, 1), justify="right"),
                    Text(pct(p.mean_confidence_wrong, 1), justify="right"),
                    Text(f"{p.n}", justify="right"),
                )
            series.append(Series(f"{attack}/{short}" if narrow else f"{attack} ({labels})", [p.epsilon for p in pts], [100 * p.accuracy for p in pts],
                                 roles[i % len(roles)], marker="hd"))
        self.query_one("#detail-sweep-chart", Chart).set_series(series)

    def _render_training(self) -> None:
        st = self.state
        xs, ys = st.series("train_loss")
        self.query_one("#detail-loss", Chart).set_series([Series("train loss", xs, ys, "primary", marker="hd")] if xs else [])
        pre = st.eval_prefix
        series = []
        for key, label, role, side in (("train_error", "train", "secondary", "left"), (f"{pre}_error", f"{pre} clean{eval_note(st.config)}", "success", "left"),
                                       (f"{pre}_adv_error", f"{pre} FGSM{eval_note(st.config)}", "error", "right")):
            xs, ys = st.series(key)
            if xs:
                series.append(Series(label, xs, [100 * y for y in ys], role, marker="hd", yside=side))
        # the protocol matrix recorded during training (train.matrix_every): each reading's FGSM test error
        readings = sorted(k for k in st.metrics if k.startswith("matrix_error["))
        for i, key in enumerate(readings):
            xs, ys = st.series(key)
            series.append(Series(f"test FGSM {key[len('matrix_error['):-1]}", xs, [100 * y for y in ys], LOGIT_COLOURS[i % len(LOGIT_COLOURS)], marker="dot",
                                 yside="right"))
        self.query_one("#detail-errors", Chart).set_series(series)

    # ------------------------------------------------------------------------------------------ perturbation views
    @property
    def eps_values(self) -> list[float]:
        return sorted(self.by_eps)

    def current_sample(self) -> Sample | None:
        eps = self.eps_values
        if not eps:
            return None
        self.eps_pos %= len(eps)
        views = self.by_eps[eps[self.eps_pos]]
        self.sample_pos %= len(views)
        return views[self.sample_pos]

    def _render_views(self) -> None:
        s = self.current_sample()
        nav = self.query_one("#views-nav", Static)
        clean, sign, adv = (self.query_one(f"#view-{k}", Digit) for k in ("clean", "sign", "adv"))
        if s is None:
            run = self.state.run
            waiting = run is not None and run.status in ACTIVE
            nav.update(Text("perturbation views appear when the sweep has finished" if waiting else "this run stored no perturbation views (sweep.samples = 0 or the run did not finish)", style="dim"))
            for w in (clean, sign, adv):
                w.show(None, "")
            return
        eps = self.eps_values
        n = len(self.by_eps[eps[self.eps_pos]])
        nav.update(
            Text.assemble(
                ("sample ", "dim"), (f"{self.sample_pos + 1}/{n}", "bold"), (f" (test image #{s.idx})", "dim"),
                ("   ε ", "dim"), (f"{s.epsilon:g}", "bold"), (f" ({self.eps_pos + 1}/{len(eps)})", "dim"),
                ("   n/p sample · [/] ε", "dim"),
            )
        )
        fooled = s.adv_pred != s.label
        clean.show(s.clean, f"[b]clean[/b]  label {s.label}\npred {s.clean_pred} ({100 * s.clean_conf:.1f}%)" + ("" if s.clean_pred == s.label else " [red]wrong[/red]"))
        sign.show(s.sign, f"[b]+ {s.epsilon:g} · sign(∇ₓJ)[/b]\nwhite +1 · black −1", sign=True)
        adv.show(
            s.adversarial,
            f"[b]adversarial[/b]\npred {s.adv_pred} ({100 * s.adv_conf:.1f}%) " + ("[red b]fooled[/red b]" if fooled else "[green]still right[/green]"),
        )

    def action_sample(self, step: int) -> None:
        if self.by_eps:
            self.sample_pos += step
            self._render_views()
            self.query_one(TabbedContent).active = "tab-views"

    def action_eps(self, step: int) -> None:
        if self.by_eps:
            self.eps_pos += step
            self._render_views()
            self.query_one(TabbedContent).active = "tab-views"

    # ------------------------------------------------------------------------------------------ P20 / P21
    def _render_analysis(self, artifacts: dict) -> None:
        shown = False
        curve = artifacts.get("logit_curve")
        if isinstance(curve, dict) and curve.get("epsilons") and curve.get("logits"):
            eps = curve["epsilons"]
            logits = curve["logits"]
            k = len(logits[0]) if logits else 0
            series = [Series(str(c), eps, [row[c] for row in logits], LOGIT_COLOURS[c % len(LOGIT_COLOURS)], marker="braille") for c in range(k)]
            chart = self.query_one("#analysis-logits", Chart)
            digit = printable(curve.get("digit", "?"), limit=20)
            chart.set_series(series, title=f"P20: logits of a '{digit}' along its FGSM direction (one line per class)")
            chart.display = True
            shown = True
        weights = artifacts.get("weights")
        if isinstance(weights, dict) and weights:
            grid = self.query_one("#analysis-weights", Grid)
            grid.remove_children()
            digits = []
            notes = []
            for role, data in weights.items():
                if not isinstance(data, dict):
                    continue
                loc = data.get("localization")
                role = printable(role, limit=40)
                notes.append(f"{role}: localization {loc:.3f}" if isinstance(loc, (int, float)) else f"{role}: localization —")
                for i, f in enumerate((data.get("filters") or [])[:8]):
                    if isinstance(f, list) and len(f) == 784:
                        d = Digit()
                        digits.append((d, f, f"{rich_escape(role)} #{i}"))  # a Digit caption is markup
            grid.mount_all([d for d, _f, _c in digits])
            for d, f, cap in digits:
                d.show(f, cap, scale=1.0)
            title = self.query_one("#analysis-weights-title", Static)
            title.update(Text("P21: first-layer weights  ·  " + "  ·  ".join(notes), style="bold"))
            title.display = True
            shown = shown or bool(digits)
        self.query_one("#analysis-none").display = not shown

    # ------------------------------------------------------------------------------------------ actions
    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def check_action(self, action: str, parameters: tuple) -> bool | None:  # noqa: ARG002
        if action == "resume":
            return resumable(self.state.run)  # shown only for a stopped run with its checkpoint
        return True

    def action_resume(self) -> None:
        if self.state.run is not None:
            self.app.resume_run(self.state.run)

    def action_live(self) -> None:
        self.app.show_run(self.run_id, self.state.run, detail=False, replace=True)

    def action_export(self) -> None:
        def chosen(path: str | None) -> None:
            if path:
                self._export(path)

        self.app.push_screen(ExportScreen(int(self.run_id)), chosen)

    @work(thread=True, group="export", exit_on_error=False)
    def _export(self, path: str) -> None:
        """Exactly what `adv-tui runs export` writes (the same service), off the UI thread."""
        out = expand_user(path)
        try:
            export_to_file(self.app.store, int(self.run_id), out)
        except UserError as e:
            self.app.call_from_thread(self.app.notify, f"export failed: {e}", severity="error")
            return
        from ...chart_export import save_run_charts
        from ..model import run_label

        charts: list = []
        note = ""
        try:  # the screen's charts beside the export: run-7.json → run-7-accuracy.png, run-7-training.png
            run = self.app.store.get_run(int(self.run_id))
            charts = save_run_charts(self.app.store, {int(self.run_id): run_label(run, limit=90)}, out.resolve().with_suffix(""))
        except (UserError, OSError) as e:
            note = f"; charts not saved: {e}"
        self.saved = [out.resolve(), *charts]
        names = "".join(f", {p.name}" for p in charts)
        self.app.call_from_thread(self.app.notify, f"exported run {self.run_id} to {out.resolve()}{names}{note}", title="export")
