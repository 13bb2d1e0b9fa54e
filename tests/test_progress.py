"""Headless progress: plain lines when stderr is not a terminal, bars that estimate on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

from rich.console import Console

from tui_adv.progress import RichProgress

REPO = Path(__file__).resolve().parents[1]


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _events(clock: Clock):
    yield {"type": "run_start", "run_id": 7, "name": "softmax", "device": "cpu"}
    yield {"type": "phase", "phase": "train", "epochs": 2, "batches": 100}
    for epoch in (1, 2):
        yield {"type": "epoch_start", "epoch": epoch, "epochs": 2}
        for b in range(1, 101):
            clock.t += 1.0  # one second a batch
            yield {"type": "batch", "batch": b, "batches": 100, "loss": 0.5}
        yield {"type": "epoch_end", "epoch": epoch, "epochs": 2, "metrics": {"train_error": 0.1, "test_error": 0.0869, "test_adv_error": 0.9912}}
    yield {"type": "phase", "phase": "sweep", "points": 2}
    yield {"type": "sweep_point", "index": 1, "points": 2, "epsilon": 0.0, "error": 0.0869, "reading": ""}
    yield {"type": "sweep_point", "index": 2, "points": 2, "epsilon": 0.25, "error": 0.9912, "reading": "unclipped"}


def test_plain_lines_when_stderr_is_not_a_terminal():
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=60)
    clock = Clock()
    r = RichProgress(console, clock=clock)
    assert r.plain
    with r:
        for e in _events(clock):
            r.handle(e)
    lines = buf.getvalue().splitlines()
    assert lines[0] == "run 7 · softmax · device cpu"
    # a line every 30 s within an epoch: 3 in epoch 1 (t = 30, 60, 90 s), 3 in epoch 2
    periodic = [ln for ln in lines if " batch " in ln]
    assert len(periodic) == 6
    assert periodic[0].startswith("epoch 1/2 batch 30/100 loss 0.5000 · elapsed 0:30 · about 2:50 left")
    # epoch lines carry every metric at full precision (no cut at the console's width) and the estimate
    ends = [ln for ln in lines if ln.startswith("epoch 1/2  ")]
    assert ends == ["epoch 1/2  train_error=0.1  test_error=0.0869  test_adv_error=0.9912  · elapsed 1:40 · about 1:40 left"]
    assert "sweep 2/2 ε=0.25 (unclipped): error 99.12%" in lines
    assert not any("eta" in ln or "━" in ln for ln in lines)


def test_quiet_prints_nothing_in_plain_mode():
    buf = io.StringIO()
    clock = Clock()
    r = RichProgress(Console(file=buf, force_terminal=False), enabled=False, clock=clock)
    with r:
        for e in _events(clock):
            r.handle(e)
    assert buf.getvalue() == ""


def test_on_a_terminal_the_epochs_bar_moves_within_an_epoch():
    buf = io.StringIO()
    clock = Clock()
    r = RichProgress(Console(file=buf, force_terminal=True, width=120), clock=clock)
    assert not r.plain
    with r:
        for e in _events(clock):
            r.handle(e)
            if e["type"] == "batch" and e["batch"] == 50 and r.epochs is not None and r.progress.tasks[r.epochs].completed < 1:
                assert r.progress.tasks[r.epochs].completed == 0.5


def test_a_headless_run_with_stderr_to_a_pipe_prints_whole_lines(cli, tmp_path, mnist_root):
    proc = cli("run", str(REPO / "configs" / "softmax.toml"), "--headless", "--db", str(tmp_path / "r.db"), "--data-dir", str(mnist_root),
               "--set", "data.train_limit=500", "--set", "data.test_limit=200", "--set", "train.epochs=2", "--set", "sweep.epsilons=[0,0.25]",
               "--set", "sweep.samples=0")
    assert proc.returncode == 0, proc.stderr
    text = proc.stderr
    lines = text.splitlines()
    assert any(ln.startswith("run ") and "softmax" in ln for ln in lines)
    assert any(ln.startswith("epoch 2/2  ") and "test_adv_error=" in ln for ln in lines)
    assert any(ln.startswith("sweep 2/2 ε=0.25") for ln in lines)
    assert "\r" not in text and "eta" not in text and "━" not in text
