"""Shared state of the screens that show one run: a thread worker that feeds new rows to the screen."""

from __future__ import annotations

import json
from types import SimpleNamespace

from rich.syntax import Syntax
from rich.text import Text
from textual import work
from textual.screen import Screen
from textual.worker import get_current_worker

from ...catalog.schema import ACTIVE, LogLine, Metric, Run, Sample, damage_of, variant_label
from ...catalog.store import POINT_FIELDS, combine_draws
from ...config import Reading
from ...safe import printable
from ..feed import RunFeed, sleep_unless_cancelled
from ..messages import RunDelta, RunUpdate
from ...services.launch import Launched
from ..model import STATUS_GLYPH, STATUS_STYLE, duration, pct, run_label
from ..safe_text import plain

EPOCH_KEYS = ("train_loss", "train_error", "test_error", "test_adv_error", "valid_error", "valid_adv_error", "lr")


class RunState:
    """Everything the screen knows about the run, merged from deltas (keyed, so rewrites replace)."""

    def __init__(self) -> None:
        self.run: Run | None = None
        self.metrics: dict[str, dict[int, float]] = {}
        self.sweep: dict[tuple[str, str], dict[float, object]] = {}
        self.logs: list[LogLine] = []
        self.samples: list[Sample] | None = None
        self.artifacts: dict | None = None
        self.config: dict = {}
        self.short: dict[tuple[str, str], str] = {}  # (attack, description) -> the reading's short name

    def apply(self, d: RunDelta) -> None:
        if d.run is not None:
            if self.run is None or self.run.config_json != d.run.config_json:
                self.config = d.run.config()
            self.run = d.run
        for m in d.metrics:
            self.metrics.setdefault(m.key, {})[int(m.step)] = float(m.value)
        for p in d.sweep:  # one curve per reading; a reading's mask draws are kept apart and averaged on display
            reading = variant_label(p.gradient, bool(p.clip), p.cost)
            desc = f"{p.labels} labels" + (f", {reading}" if reading else "")
            self.sweep.setdefault((p.attack, desc), {}).setdefault(int(p.mask), {})[float(p.epsilon)] = p
            self.short[(p.attack, desc)] = Reading(labels=p.labels, gradient=p.gradient, clip=bool(p.clip), cost=p.cost).name
        if d.logs:
            self.logs.extend(d.logs)
            del self.logs[:-1000]
        if d.samples is not None:
            self.samples = d.samples
        if d.artifacts is not None:
            self.artifacts = d.artifacts

    def series(self, key: str) -> tuple[list[float], list[float]]:
        pts = sorted(self.metrics.get(key, {}).items())
        return [float(s) for s, _ in pts], [v for _, v in pts]

    def sweep_points(self) -> list[tuple[tuple[str, str, str], list]]:
        """(attack, description, short name of the reading) → points by ε; a reading drawn with several
        dropout masks gives the mean over its draws (``combine_draws``, as ``runs show`` and ``--json``)."""
        out = []
        for (attack, desc), by_mask in sorted(self.sweep.items()):
            short = self.short[(attack, desc)]
            if len(by_mask) == 1:
                (pts,) = by_mask.values()
                out.append(((attack, desc, short), [pts[e] for e in sorted(pts)]))
                continue
            draws = [[{k: getattr(p, k) for k in POINT_FIELDS} for _e, p in sorted(pts.items())] for _m, pts in sorted(by_mask.items())]
            mean = [SimpleNamespace(**p) for p in combine_draws(draws)]
            out.append(((attack, f"{desc}, mean of {len(by_mask)} mask draws", f"{short} ×{len(by_mask)}"), mean))
        return out

    @property
    def eval_prefix(self) -> str:
        return "valid" if "valid_error" in self.metrics or (self.config.get("data") or {}).get("validation") else "test"


def status_text(run: Run | None) -> Text:
    if run is None:
        return Text("starting…", style="dim")
    t = plain(f"{STATUS_GLYPH.get(run.status, '?')} {run.status}", style=STATUS_STYLE.get(run.status, "") or "bold")
    if damage_of(run):
        t.append(" (damaged row)", style="bold red")
    return t


def measured_on(run: Run) -> str:
    """The set the header's clean and FGSM errors were measured on (the sweep's test split)."""
    data = run.config().get("data") or {}
    pair = data.get("pair")
    limit = data.get("test_limit")
    what = f"{pair[0]}-vs-{pair[1]} test set" if isinstance(pair, list) and len(pair) == 2 else "test set"
    return f"first {limit} of the {what}" if isinstance(limit, int) else f"full {what}"


def eval_note(cfg: dict) -> str:
    """How the per-epoch test/valid errors were measured, for chart labels: ``" (2000 imgs)"`` when
    ``train.eval_limit`` measures them on a subset (the header's numbers come from the full sweep)."""
    limit = (cfg.get("train") or {}).get("eval_limit")
    return f" ({limit} imgs)" if isinstance(limit, int) else ""


def run_title(run: Run | None, now) -> Text:  # noqa: ANN001
    """The run's header: id, name (with what distinguishes it), status and the headline numbers first
    (the paper's numbers, with the set they were measured on), then duration, device, experiment and
    claims; it wraps onto a second line rather than losing any of them."""
    if run is None:
        return Text("starting the run process…", style="bold")
    t = Text()
    t.append(f"run {run.id}", style="bold")
    t.append(f"  {printable(run_label(run, limit=40))}", style="bold")
    t.append("  ")
    t.append_text(status_text(run))
    t.append(f"  clean {pct(run.clean_error)}  FGSM ε=.25 {pct(run.fgsm_error)}", style="")
    if run.clean_error is not None or run.fgsm_error is not None:
        t.append(f" ({measured_on(run)})", style="dim")
    t.append(f"  {duration(run, now)}  {printable(run.device or '—')}", style="dim")
    if run.host:  # where its process runs: with a shared catalog, any of several hosts
        t.append(f" on {printable(run.host)}", style="dim")
    t.append(f"  {printable(run.experiment)}", style="dim")
    if run.claims:
        t.append(f"  {printable(run.claims)}", style="dim")
    if damage_of(run):
        t.append(f"  damaged: {printable('; '.join(damage_of(run)))}", style="red")
    return t


def config_renderable(cfg: dict):  # noqa: ANN201
    return Syntax(json.dumps(cfg, indent=2, sort_keys=False), "json", theme="ansi_dark", background_color="default", word_wrap=True)


class RunScreenBase(Screen):
    """Owns a RunFeed in a thread worker; subclasses implement :meth:`apply`."""

    want_samples = False

    def __init__(self, run_id: int | None, *, run: Run | None = None, launched: Launched | None = None) -> None:
        super().__init__()
        self.run_id = run_id
        self.launched = launched
        self.state = RunState()
        if run is not None:
            self.state.apply(RunDelta(run=run))
        self.loaded = False
        self.updates = 0

    def on_mount(self) -> None:
        self.follow_run()

    @work(thread=True, exclusive=True, group="run-feed", exit_on_error=False)
    def follow_run(self) -> None:
        worker = get_current_worker()
        app = self.app
        feed = RunFeed(app.store, self.run_id, launched=self.launched, want_samples=self.want_samples)
        last_updated = None
        while not worker.is_cancelled:
            try:
                delta = feed.poll()
            except Exception as e:  # noqa: BLE001 - shown on the screen, polling goes on
                delta = RunDelta(run=None, error=f"catalog read failed: {e}")
            stamp = (delta.run.updated_at, delta.run.status) if delta.run is not None else None
            if not delta.empty or (stamp is not None and stamp != last_updated):
                last_updated = stamp
                if not worker.is_cancelled:
                    self.post_message(RunUpdate(delta))
            if delta.launch_error or feed.done or (delta.error and delta.run is None and feed.run_id is not None):
                return
            sleep_unless_cancelled(worker, app.poll_interval)

    def on_run_update(self, message: RunUpdate) -> None:
        message.stop()
        d = message.delta
        if d.run is not None and self.run_id is None:
            self.run_id = int(d.run.id)
        self.state.apply(d)
        self.updates += 1
        with self.app.batch_update():
            self.apply(d)
        if d.run is not None and not self.want_samples:
            self.loaded = True  # screens that wait for more (samples) set it themselves

    def apply(self, delta: RunDelta) -> None:  # pragma: no cover - abstract
        raise NotImplementedError
