"""Rich progress bars for headless runs: renders the runner's events on stderr (CLI layer only)."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn


def _e(value: object) -> str:
    """Catalog/config text (a run name, a log line) as rich markup that shows it literally."""
    from .safe import printable

    return escape(printable(value))


class RichProgress:
    """Three bars: epochs, batches of the current epoch, sweep points; epoch lines printed above them.
    (The outcome of a run that did not complete is printed once, by the CLI, not here.)"""

    def __init__(self, console: Console, enabled: bool = True):
        self.console = console
        self.enabled = enabled
        self.progress = Progress(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
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

    def handle(self, e: dict) -> None:
        t = e["type"]
        p = self.progress
        if t == "run_start":
            self.console.print(f"run [bold]{e['run_id']}[/bold] · {_e(e['name'])} · device {_e(e['device'])}")
        elif t == "phase" and e["phase"] == "train" and e.get("epochs"):
            self.epochs = p.add_task("epochs", total=e["epochs"], info="")
            self.batches = p.add_task("batches", total=e["batches"], info="")
        elif t == "epoch_start" and self.batches is not None:
            p.reset(self.batches, total=p.tasks[self.batches].total, info="")
        elif t == "batch" and self.batches is not None:
            p.update(self.batches, completed=e["batch"], total=e["batches"], info=f"loss {e['loss']:.4f}")
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
