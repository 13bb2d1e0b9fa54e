"""Progress of headless runs on stderr (CLI layer only): rich bars on a terminal, plain lines otherwise.

When stderr is not a terminal (a file, a pipe, a CI log) bars would be redrawn as wrapped lines full of
``… eta 0…``; :class:`RichProgress` then prints plain, complete lines instead: the run, each epoch's
metrics, a line every :attr:`RichProgress.interval` seconds within an epoch (batch, loss, elapsed,
estimated time left), each sweep point, and log messages.
"""

from __future__ import annotations

import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def printable_text(value: object) -> str:
    from .safe import printable

    return printable(value)


def _hms(seconds: float) -> str:
    s = int(max(0.0, seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"


def _e(value: object) -> str:
    """Catalog/config text (a run name, a log line) as rich markup that shows it literally."""
    from .safe import printable

    return escape(printable(value))


class RichProgress:
    """Three bars: epochs, batches of the current epoch, sweep points; epoch lines printed above them.
    (The outcome of a run that did not complete is printed once, by the CLI, not here.)"""

    interval = 30.0  # seconds between plain progress lines within an epoch

    def __init__(self, console: Console, enabled: bool = True, *, plain: bool | None = None, clock=time.monotonic):  # noqa: ANN001
        self.console = console
        self.enabled = enabled
        self.plain = (not console.is_terminal) if plain is None else plain
        self.clock = clock
        self._t0: float | None = None  # when training started (this process)
        self._done0 = 0.0  # epochs already done then (a resumed run)
        self._last_line = 0.0
        self._train: tuple[int, int] | None = None  # (epochs, batches per epoch)
        self._epoch = 0
        self.progress = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled or self.plain,
            transient=False,
        )
        self.epochs: TaskID | None = None
        self.batches: TaskID | None = None
        self.sweep: TaskID | None = None

    def __enter__(self) -> "RichProgress":
        self.progress.__enter__()
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.progress.__exit__(*exc)

    def _eta(self, done: float, total: float) -> str:
        """Elapsed and estimated time left from this process's training speed (epochs done per second)."""
        if self._t0 is None:
            return ""
        spent = self.clock() - self._t0
        text = f"elapsed {_hms(spent)}"
        rate = (done - self._done0) / spent if spent > 0 else 0.0
        if rate > 0 and total > done:
            text += f" · about {_hms((total - done) / rate)} left"
        return text

    def _plain(self, e: dict) -> None:
        t = e["type"]

        def out(text: str, **_kw) -> None:  # noqa: ANN003 - whole lines, never wrapped at the console's width
            self.console.print(text, markup=False, highlight=False, soft_wrap=True)

        if t == "run_start":
            out(f"run {e['run_id']} · {printable_text(e['name'])} · device {printable_text(e['device'])}", markup=False, highlight=False)
        elif t == "phase" and e["phase"] == "train" and e.get("epochs"):
            self._train = (int(e["epochs"]), int(e.get("batches") or 0))
            out(f"training: {e['epochs']} epochs of {e.get('batches') or '?'} batches", markup=False, highlight=False)
        elif t == "epoch_start":
            self._epoch = int(e["epoch"])
            if self._t0 is None:
                self._t0, self._done0 = self.clock(), float(self._epoch - 1)
                self._last_line = self._t0
        elif t == "batch" and self._train:
            now = self.clock()
            if now - self._last_line >= self.interval:
                self._last_line = now
                epochs, batches = self._train
                total = e.get("batches") or batches or 1
                done = self._epoch - 1 + e["batch"] / total
                out(f"epoch {self._epoch}/{epochs} batch {e['batch']}/{total} loss {e['loss']:.4f} · {self._eta(done, epochs)}",
                    markup=False, highlight=False)
        elif t == "epoch_end":
            m = e["metrics"]
            self._last_line = self.clock()
            eta = self._eta(float(e["epoch"]), float(e["epochs"]))
            out(f"epoch {e['epoch']}/{e['epochs']}  " + "  ".join(f"{printable_text(k)}={v:.4g}" for k, v in m.items()) + (f"  · {eta}" if eta else ""),
                markup=False, highlight=False)
        elif t == "phase" and e["phase"] == "sweep":
            out(f"sweep: {e['points']} points", markup=False, highlight=False)
        elif t == "sweep_point":
            reading = e.get("reading") or ""
            out(f"sweep {e['index']}/{e.get('points', '?')} ε={e['epsilon']:g}{f' ({reading})' if reading else ''}: error {100 * e['error']:.2f}%",
                markup=False, highlight=False)
        elif t == "log":
            out(printable_text(e["message"]), markup=False, highlight=False)

    def handle(self, e: dict) -> None:
        t = e["type"]
        p = self.progress
        if self.plain:
            if self.enabled:
                self._plain(e)
            return
        if t == "run_start":
            self.console.print(f"run [bold]{e['run_id']}[/bold] · {_e(e['name'])} · device {_e(e['device'])}")
        elif t == "phase" and e["phase"] == "train" and e.get("epochs"):
            self.epochs = p.add_task("epochs", total=e["epochs"], info="")
            self.batches = p.add_task("batches", total=e["batches"], info="")
        elif t == "epoch_start" and self.batches is not None:
            p.reset(self.batches, total=p.tasks[self.batches].total, info="")
        elif t == "batch" and self.batches is not None:
            p.update(self.batches, completed=e["batch"], total=e["batches"], info=f"loss {e['loss']:.4f}")
            if self.epochs is not None and e.get("batches"):
                # the epochs bar moves within an epoch too, so its ETA is an estimate from the start
                ep = p.tasks[self.epochs]
                p.update(self.epochs, completed=int(ep.completed) + min(e["batch"] / e["batches"], 0.999))
        elif t == "epoch_end" and self.epochs is not None:
            m = e["metrics"]
            p.update(self.epochs, completed=e["epoch"], info=" ".join(f"{k} {v:.4f}" for k, v in m.items() if k.endswith("error")))
            if not self.enabled:
                return
            self.console.print(f"epoch {e['epoch']}/{e['epochs']}  " + "  ".join(f"{_e(k)}={v:.4g}" for k, v in m.items()))
        elif t == "phase" and e["phase"] == "sweep":
            self.sweep = p.add_task("sweep", total=e["points"], info="")
        elif t == "sweep_point" and self.sweep is not None:
            p.update(self.sweep, completed=e["index"], info=f"ε={e['epsilon']:g} error {100 * e['error']:.1f}%")
        elif t == "log" and self.enabled:
            self.console.print(f"[dim]{_e(e['message'])}[/dim]")
