"""Typed messages that worker threads post back to the UI (the UI thread never reads the catalog)."""

from __future__ import annotations

from dataclasses import dataclass, field

from textual.message import Message

from ..catalog.schema import LogLine, Metric, Run, Sample, SweepPointRow


class CatalogUpdate(Message):
    """Runs whose rows changed since the last poll (new runs included), from the app's poller."""

    def __init__(self, runs: list[Run], total: int | None, interrupted: list[int]) -> None:
        super().__init__()
        self.runs, self.total, self.interrupted = runs, total, interrupted


class CatalogProblem(Message):
    """The poller could not read the catalog (e.g. the server went away); it keeps retrying."""

    def __init__(self, text: str | None) -> None:
        super().__init__()
        self.text = text


class RunsPage(Message):
    """A page of the history table (a fresh load or the next page)."""

    def __init__(self, runs: list[Run], *, append: bool, total: int, exhausted: bool, token: int, elapsed_s: float) -> None:
        super().__init__()
        self.runs, self.append, self.total, self.exhausted, self.token, self.elapsed_s = runs, append, total, exhausted, token, elapsed_s


@dataclass
class RunDelta:
    """What changed for one run since the screen's last poll."""

    run: Run | None
    metrics: list[Metric] = field(default_factory=list)
    sweep: list[SweepPointRow] = field(default_factory=list)
    logs: list[LogLine] = field(default_factory=list)
    samples: list[Sample] | None = None
    artifacts: dict | None = None
    error: str | None = None
    launch_error: str | None = None  # a launched process that exited before it created its run row

    @property
    def empty(self) -> bool:
        return not (self.metrics or self.sweep or self.logs or self.samples or self.artifacts or self.error or self.launch_error)


class RunUpdate(Message):
    def __init__(self, delta: RunDelta) -> None:
        super().__init__()
        self.delta = delta
