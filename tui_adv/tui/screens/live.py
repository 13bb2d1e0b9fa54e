"""Live run: progress (epoch, batch, ETA), live loss and error curves, the ε sweep as it fills in, log tail."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Grid, Horizontal, VerticalScroll
from textual.widgets import Label, ProgressBar, RichLog, Static, TabbedContent, TabPane

from ...choices import ACTIVE, RunStatus
from ...safe import printable
from ..messages import RunDelta
from ..safe_text import plain
from ..model import sweep_done, batch_fraction, elapsed_s, eta_s, fmt_seconds, pct, phase_text
from ..widgets.charts import Chart, Series
from ..widgets.footer import AppFooter
from .base import RunScreenBase, config_renderable, eval_note, run_title
from .dialogs import confirm_cancel

LEVEL_STYLE = {"warning": "yellow", "error": "bold red", "info": ""}


class LiveRunScreen(RunScreenBase):
    HELP_TITLE = "Live run"
    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("d", "detail", "Detail"),
        Binding("g", "show_tab('live-charts')", "Charts", show=False),
        Binding("k", "show_tab('live-config')", "Config", show=False),
    ]
    HELP_EXTRA = "`d` opens the run detail (sweep table, perturbation views, export) once samples exist."

    def compose(self) -> ComposeResult:
        yield Static(id="live-title", classes="topbar")
        with Horizontal(id="live-progress"):
            yield Label("run", classes="bar-label")
            yield ProgressBar(total=100, show_eta=False, id="bar-run")
            yield Label("epoch", classes="bar-label", id="bar-epoch-label")
            yield ProgressBar(total=100, show_eta=False, id="bar-epoch")
            yield Static(id="live-phase")
        with TabbedContent(id="live-tabs"):
            with TabPane("Live", id="live-charts"):
                with VerticalScroll(id="live-scroll"):
                    with Grid(id="live-grid"):
                        yield Chart("batch loss", xlabel="step", integer_x=True, id="chart-loss")
                        yield Chart("error per epoch (%)", xlabel="epoch", integer_x=True, ylabel="clean %", ylabel_right="FGSM %", id="chart-errors")
                        yield Chart("accuracy vs ε (%)", xlabel="ε", ylim=(0, 100), empty="the sweep starts after training", id="chart-sweep")
                        yield RichLog(id="live-log", wrap=True, highlight=False, markup=False, max_lines=1000)
            with TabPane("Config", id="live-config"):
                with VerticalScroll():
                    yield Static(id="live-config-text")
        yield AppFooter()

    def on_mount(self) -> None:
        # (the base class on_mount runs too: Textual calls every class's handler in the MRO)
        self.query_one("#live-log", RichLog).border_title = "log"
        self._render_head()
        self._config_shown = self.state.run is not None
        if self._config_shown:
            self.query_one("#live-config-text", Static).update(config_renderable(self.state.config))

    # ------------------------------------------------------------------------------------------ updates
    def apply(self, d: RunDelta) -> None:
        if d.launch_error:
            self.query_one("#live-title", Static).update(Text("the run did not start", style="bold red"))
            # the whole one-line cause (it wraps), instead of "waiting for the run process…"
            self.query_one("#live-phase", Static).update(plain(d.error or "the run process exited before it started", style="red"))
            log = self.query_one("#live-log", RichLog)
            for line in d.launch_error.splitlines():
                log.write(plain(line, style="red"))
            self.app.notify("the run process failed before it started; see its output in the log panel", severity="error", timeout=10)
            return
        if d.error and d.run is None:
            self.query_one("#live-phase", Static).update(plain(d.error, style="red"))
            return
        if d.run is not None and not self._config_shown:
            self._config_shown = True
            self.query_one("#live-config-text", Static).update(config_renderable(self.state.config))
        self._render_head()
        if d.metrics:
            self._render_metrics(d)
        if d.sweep:
            self._render_sweep()
        if d.logs:
            log = self.query_one("#live-log", RichLog)
            for line in d.logs:
                ts = line.ts.astimezone().strftime("%H:%M:%S") if line.ts else ""
                log.write(Text.assemble((ts + " ", "dim"), plain(line.message, style=LEVEL_STYLE.get(line.level, ""))))

    def _render_head(self) -> None:
        st = self.state
        run = st.run
        now = self.app.clock()
        self.query_one("#live-title", Static).update(run_title(run, now))
        if run is None:
            self.query_one("#live-phase", Static).update(Text(f"waiting for the run process (pid {self.launched.pid if self.launched else '?'}) to load the data…", style="dim"))
            return
        self.query_one("#bar-run", ProgressBar).update(progress=100 * (run.progress or 0.0))
        bar = self.query_one("#bar-epoch", ProgressBar)
        label = self.query_one("#bar-epoch-label", Label)
        parts: list[str] = []
        if run.phase == "sweep":
            eps = (st.config.get("sweep") or {}).get("epsilons") or []
            n = len(set(eps)) or 1
            done = sweep_done(st.sweep)
            label.update("sweep")
            bar.update(total=n, progress=min(done, n))
            parts.append(f"sweep {min(done, n)}/{n} ε")
        else:
            frac = batch_fraction(run)
            label.update("epoch")
            bar.update(total=100, progress=100 * (frac if frac is not None else (1.0 if run.status == RunStatus.COMPLETED else 0.0)))
            ph = phase_text(run)
            if ph:
                wide = self.app.size.width >= 100  # at 80 columns the line keeps its "x cancels" instead
                parts.append(ph + (f" batch {run.batch}/{run.batches}" if frac is not None and wide else ""))
        el = elapsed_s(run, now)
        parts.append(f"elapsed {fmt_seconds(el)}")
        eta = eta_s(run, now)
        if run.status in ACTIVE:
            parts.append(f"ETA {fmt_seconds(eta)}" if eta is not None else "ETA …")
            parts.append("x cancels")
        elif run.error:
            parts.append(printable(run.error))
        self.query_one("#live-phase", Static).update(Text("  ·  ".join(parts), no_wrap=True, overflow="ellipsis"))

    def _render_metrics(self, d: RunDelta) -> None:
        st = self.state
        keys = {m.key for m in d.metrics}
        if "batch_loss" in keys:
            xs, ys = st.series("batch_loss")
            self.query_one("#chart-loss", Chart).set_series([Series("batch loss", xs, ys, "primary")])
        if keys & {"train_error", "test_error", "test_adv_error", "valid_error", "valid_adv_error"}:
            pre = st.eval_prefix
            series = []
            for key, label, role, side in (
                ("train_error", "train", "secondary", "left"),
                (f"{pre}_error", f"{pre} clean{eval_note(st.config)}", "success", "left"),
                (f"{pre}_adv_error", f"{pre} FGSM{eval_note(st.config)}", "error", "right"),
            ):
                xs, ys = st.series(key)
                if xs:
                    series.append(Series(label, xs, [100 * y for y in ys], role, marker="hd", yside=side))
            self.query_one("#chart-errors", Chart).set_series(series)

    def _render_sweep(self) -> None:
        series = []
        roles = ("warning", "accent", "primary")
        for i, ((attack, labels, _short), pts) in enumerate(self.state.sweep_points()):
            series.append(
                Series(f"{attack} ({labels})", [p.epsilon for p in pts], [100 * p.accuracy for p in pts], roles[i % 3], marker="hd")
            )
        chart = self.query_one("#chart-sweep", Chart)
        last = [p for _k, pts in self.state.sweep_points() for p in pts]
        title = "accuracy vs ε (%)"
        if last:
            ref = max((p for p in last if p.epsilon <= 0.25 + 1e-9), key=lambda p: p.epsilon, default=None)
            if ref is not None:
                title += f" · ε={ref.epsilon:g}: error {pct(ref.error, 1)}"
        chart.set_series(series, title=title)

    # ------------------------------------------------------------------------------------------ actions
    def action_cancel_run(self) -> None:
        if self.state.run is None:
            self.app.notify("the run has not started yet", severity="warning")
            return
        confirm_cancel(self.app, self.state.run)

    def action_detail(self) -> None:
        if self.run_id is None:
            self.app.notify("the run has not started yet", severity="warning")
            return
        self.app.show_run(self.run_id, self.state.run, detail=True, replace=True)

    def action_show_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab
