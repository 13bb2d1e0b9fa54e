"""Resume: a run killed with SIGKILL mid-epoch (a real subprocess), cancelled or crashed continues from its
last checkpoint in the same run row and ends with exactly the metrics of an uninterrupted run.

The subprocess runs are pinned to one thread (``OMP_NUM_THREADS=1``) so the reference and the resumed
run do their float sums in the same order on this 2-core machine.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

# maxout with dropout (the global torch RNG matters), 30 batches an epoch, 6 epochs
EPOCHS = 6
KILL_ARGS = [
    "configs/maxout.toml",
    "--headless",
    "-q",
    "--device",
    "cpu",
    "--set",
    "data.train_limit=3000",
    "--set",
    "data.test_limit=500",
    "--set",
    "train.epochs=6",
    "--set",
    "model.units=48",
    "--set",
    "model.init_range=0.05",
    "--set",
    "sweep.samples=2",
]
BATCHES = 30


def _env(tmp: Path) -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ADV_TUI_CHECKPOINTS": str(tmp / "checkpoints")}


def _cli(args: list[str], env: dict, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui_adv.cli", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def _ro(db: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)


def _metric_rows(db: Path, run_id: int) -> list[tuple]:
    with _ro(db) as c:
        return c.execute("SELECT key, step, value FROM metrics WHERE run_id = ? ORDER BY key, step", (run_id,)).fetchall()


def _sweep_rows(db: Path, run_id: int) -> list[tuple]:
    with _ro(db) as c:
        return c.execute(
            "SELECT attack, labels, epsilon, accuracy, error, mean_confidence, mean_confidence_wrong, n, n_wrong "
            "FROM sweep_points WHERE run_id = ? ORDER BY attack, labels, epsilon",
            (run_id,),
        ).fetchall()


@pytest.mark.slow
def test_kill9_mid_epoch_then_resume_equals_uninterrupted(tmp_path: Path, mnist_root):
    env = _env(tmp_path)
    ref_db, kill_db = tmp_path / "ref.db", tmp_path / "killed.db"
    # the reference and the victim run side by side (one core each)
    ref = subprocess.Popen(
        [sys.executable, "-m", "tui_adv.cli", "run", *KILL_ARGS, "--db", str(ref_db), "--json"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    victim = subprocess.Popen(
        [sys.executable, "-m", "tui_adv.cli", "run", *KILL_ARGS, "--db", str(kill_db), "--json"],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    # wait until it is past the checkpoint of epoch 2 and in the middle of an epoch, then SIGKILL it
    target = 2 * BATCHES + BATCHES // 3
    deadline = time.monotonic() + 150
    step = 0
    while time.monotonic() < deadline and victim.poll() is None:
        if kill_db.exists():
            try:
                with _ro(kill_db) as c:
                    step = c.execute("SELECT COALESCE(MAX(step), 0) FROM metrics WHERE key = 'batch_loss'").fetchone()[0]
            except sqlite3.OperationalError:
                step = 0
            if step >= target:
                break
        time.sleep(0.05)
    assert victim.poll() is None, "the run finished before it could be killed"
    assert step >= target, f"the run did not reach step {target} in time (at {step})"
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    killed_at = _metric_rows(kill_db, 1)
    assert max(s for k, s, _ in killed_at if k == "batch_loss") < EPOCHS * BATCHES  # really killed mid-run
    epochs_done = max(s for k, s, _ in killed_at if k == "test_error")

    # readers see it as interrupted, the file is intact, the metrics so far are kept
    listed = _cli(["runs", "list", "--json", "--db", str(kill_db)], env)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["status"] == "interrupted"
    with _ro(kill_db) as c:
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert c.execute("SELECT error FROM runs WHERE id = 1").fetchone()[0]
    assert {k for k, s, _ in killed_at if s == 2} >= {"train_loss", "test_error"}

    resumed = _cli(["resume", "1", "--headless", "-q", "--json", "--db", str(kill_db)], env)
    assert resumed.returncode == 0, resumed.stderr
    ref_out, ref_err = ref.communicate(timeout=240)
    assert ref.returncode == 0, ref_err
    a, b = json.loads(ref_out), json.loads(resumed.stdout)
    assert b["run_id"] == 1 and b["status"] == "completed"
    assert b["metrics"] == a["metrics"]  # exactly, not approximately
    assert b["sweeps"] == a["sweeps"]
    # the whole metric table, batch losses included, equals the uninterrupted run's: no duplicates, no gaps
    assert _metric_rows(kill_db, 1) == _metric_rows(ref_db, 1)
    assert len([1 for k, _, _ in _metric_rows(kill_db, 1) if k == "batch_loss"]) == EPOCHS * BATCHES
    assert _sweep_rows(kill_db, 1) == _sweep_rows(ref_db, 1)
    with _ro(kill_db) as c:
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1  # the same row, not a new run
        assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        status, error, finished = c.execute("SELECT status, error, finished_at FROM runs WHERE id = 1").fetchone()
        assert (status, error) == ("completed", None) and finished
        logs = [m for (m,) in c.execute("SELECT message FROM logs WHERE run_id = 1")]
    resumed_at = [int(re.match(r"resumed from the checkpoint of epoch (\d+)", m).group(1)) for m in logs if m.startswith("resumed from")]
    # rows are synced before each checkpoint, so the checkpoint is the last epoch with rows (or the one
    # before, when the kill fell between the sync and the rename)
    assert len(resumed_at) == 1 and resumed_at[0] in (epochs_done, epochs_done - 1) and resumed_at[0] >= 2, (resumed_at, epochs_done)


# ------------------------------------------------------------------------------------------ in process
def _cfg(epochs: int = 3, **extra):
    from tui_adv.config import validate

    raw = {
        "name": "tiny-maxout",
        "experiment": "maxout",
        "seed": 3,
        "device": "cpu",
        "data": {"train_limit": 600, "test_limit": 200},
        "model": {"kind": "maxout", "units": 16, "pieces": 2, "layers": 2, "input_dropout": 0.2, "hidden_dropout": 0.5, "init_range": 0.05},
        "train": {"epochs": epochs, "batch_size": 50, "lr": 0.1, "eval_limit": 200},
        "sweep": {"epsilons": [0.0, 0.1, 0.25], "samples": 1},
    }
    for k, v in extra.items():
        sect, key = k.split("__")
        raw[sect][key] = v
    return validate(raw)


def _run(store, cfg, mnist_root, on_event=None):
    from tui_adv.runner import Runner

    stop = threading.Event()
    r = Runner(cfg, store, data_dir=str(mnist_root), stop_event=stop)
    if on_event:
        r.emit = lambda e: on_event(e, stop)
    r.create()
    return r, r.execute()


def _final(store, run_id):
    run = store.get_run(run_id)
    rows = sorted((m.key, m.step, m.value) for m in store.metrics(run_id))
    return run.status, json.loads(run.summary_json or "{}"), rows, store.sweeps(run_id)


def _resume(store, run_id, mnist_root):
    from tui_adv.runner import Runner

    r = Runner.for_resume(store, run_id, data_dir=str(mnist_root))
    return r.execute()


def test_cancelled_run_resumes_to_the_same_result(tmp_path, mnist_root):
    from tui_adv.catalog import Store

    store = Store(str(tmp_path / "runs.db"))
    cfg = _cfg()
    _, status = _run(store, cfg, mnist_root)
    assert status == "completed"
    reference = _final(store, 1)

    def cancel_in_epoch_2(e, stop):
        if e["type"] == "batch" and e["epoch"] == 2 and e["batch"] == 5:
            stop.set()

    r, status = _run(store, cfg, mnist_root, cancel_in_epoch_2)
    assert status == "cancelled"
    assert store.get_run(r.run_id).status == "cancelled"
    assert _resume(store, r.run_id, mnist_root) == "completed"
    got = _final(store, r.run_id)
    assert got[0] == "completed"
    assert got[1] == reference[1] and got[2] == reference[2] and got[3] == reference[3]
    assert store.count_runs() == 2


def test_a_resumed_runs_duration_leaves_out_the_time_it_sat_stopped(tmp_path, mnist_root, capsys):
    """A run cancelled, left an hour (its end moved back an hour), then resumed: ``paused_s`` holds
    that hour, and the duration everyone shows (``runs list``, ``runs show``, the JSON, the dashboard's
    clock) is its running time, not the wall time since it first started."""
    from datetime import timedelta

    from _helpers import main_in_process
    from tui_adv.catalog import Store
    from tui_adv.cli.render import duration

    store = Store(str(tmp_path / "runs.db"))

    def cancel_in_epoch_2(e, stop):
        if e["type"] == "batch" and e["epoch"] == 2 and e["batch"] == 5:
            stop.set()

    r, status = _run(store, _cfg(), mnist_root, cancel_in_epoch_2)
    assert status == "cancelled"
    run = store.get_run(r.run_id)
    hour = timedelta(hours=1)
    store.update_run(r.run_id, started_at=run.started_at - hour, finished_at=run.finished_at - hour, heartbeat_at=run.heartbeat_at - hour)
    ran_before = store.get_run(r.run_id).active_seconds()
    assert ran_before < 600
    assert _resume(store, r.run_id, mnist_root) == "completed"
    run = store.get_run(r.run_id)
    wall = (run.finished_at - run.started_at).total_seconds()
    assert 3600 <= run.paused_s < 3600 + 600 and wall >= 3600
    assert run.active_seconds() == pytest.approx(wall - run.paused_s) and run.active_seconds() < 600
    assert duration(run).count(":") == 1  # m:ss, not 1:0m:ss
    code, out, _ = main_in_process(capsys, "runs", "export", str(r.run_id), "--db", str(tmp_path / "runs.db"))
    doc = json.loads(out)
    assert code == 0 and doc["duration_s"] == pytest.approx(run.active_seconds()) and doc["paused_s"] == pytest.approx(run.paused_s)


def test_crashed_run_keeps_its_traceback_and_resumes(tmp_path, mnist_root):
    """A crash inside the runner stores error + traceback and status failed; a failed run that has a
    checkpoint can be resumed (after fixing whatever crashed it)."""
    from tui_adv.catalog import Store

    store = Store(str(tmp_path / "runs.db"))
    cfg = _cfg()
    _run(store, cfg, mnist_root)
    reference = _final(store, 1)

    def crash_in_epoch_3(e, stop):
        if e["type"] == "batch" and e["epoch"] == 3 and e["batch"] == 2:
            raise MemoryError("simulated out-of-memory")

    r, status = _run(store, cfg, mnist_root, crash_in_epoch_3)
    assert status == "failed"
    row = store.get_run(r.run_id)
    assert "MemoryError: simulated out-of-memory" in row.error
    assert "crash_in_epoch_3" in row.traceback
    assert _resume(store, r.run_id, mnist_root) == "completed"
    got = _final(store, r.run_id)
    assert got[1:] == reference[1:]
    assert store.get_run(r.run_id).traceback is None


def test_resume_after_the_last_epoch_only_redoes_the_sweep(tmp_path, mnist_root):
    """Killed during the sweep: the final checkpoint exists, training is not repeated."""
    from tui_adv.catalog import Store

    store = Store(str(tmp_path / "runs.db"))
    cfg = _cfg(epochs=2)
    _run(store, cfg, mnist_root)
    reference = _final(store, 1)

    def cancel_in_sweep(e, stop):
        if e["type"] == "sweep_point" and e["index"] == 2:
            stop.set()

    r, status = _run(store, cfg, mnist_root, cancel_in_sweep)
    assert status == "cancelled"
    seen = []
    from tui_adv.runner import Runner

    runner = Runner.for_resume(store, r.run_id, data_dir=str(mnist_root))
    runner.emit = seen.append
    assert runner.execute() == "completed"
    assert not [e for e in seen if e["type"] == "epoch_start"]
    assert _final(store, r.run_id)[1:] == reference[1:]


def test_trainer_does_not_continue_past_early_stopping(mnist_small):
    from tui_adv.config import validate
    from tui_adv.core.models import build_model
    from tui_adv.core.train import Trainer

    cfg = validate(
        {"name": "t", "model": {"kind": "softmax"}, "data": {"validation": True}, "train": {"epochs": 5, "early_stopping": {"patience": 1}}}
    ).train
    torch.manual_seed(0)
    t = Trainer(build_model("softmax", num_classes=10), mnist_small, cfg)
    t.state.epoch, t.state.bad_epochs = 2, 1  # the checkpoint of the epoch that triggered early stopping
    seen = []
    t.emit = seen.append
    t.run()
    assert t.state.epoch == 2 and not [e for e in seen if e["type"] == "epoch_start"]


def _checkpoint_epochs(mnist_small, epochs: int, **trainer_kwargs) -> list[int]:
    from tui_adv.config import validate
    from tui_adv.core.models import build_model
    from tui_adv.core.train import Trainer

    cfg = validate({"name": "t", "model": {"kind": "softmax"}, "train": {"epochs": epochs}}).train
    written: list[int] = []
    t = Trainer(build_model("softmax", num_classes=10), mnist_small, cfg, checkpoint=lambda tr: written.append(tr.state.epoch), **trainer_kwargs)
    t.run()
    return written


def test_periodic_checkpoints_are_at_least_the_interval_apart(mnist_small, monkeypatch):
    """``$ADV_TUI_CHECKPOINT_S`` spaces a run's periodic checkpoints (a GPU epoch can take less time than
    writing one); the last epoch's is written whatever it says. On CPU the default is every epoch."""
    monkeypatch.delenv("ADV_TUI_CHECKPOINT_S", raising=False)
    assert _checkpoint_epochs(mnist_small, 3) == [1, 2, 3]
    monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", "3600")
    assert _checkpoint_epochs(mnist_small, 3) == [3]
    assert _checkpoint_epochs(mnist_small, 3, checkpoint_s=0) == [1, 2, 3]


def test_the_checkpoint_interval_defaults_by_device_and_refuses_nonsense(monkeypatch):
    from tui_adv.core.train_state import checkpoint_interval
    from tui_adv.errors import UserError

    monkeypatch.delenv("ADV_TUI_CHECKPOINT_S", raising=False)
    assert checkpoint_interval(torch.device("cpu")) == 0
    assert checkpoint_interval(torch.device("cuda")) == 30
    monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", "12.5")
    assert checkpoint_interval(torch.device("cuda")) == 12.5
    for bad in ("soon", "-1", "nan"):
        monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", bad)
        with pytest.raises(UserError, match="ADV_TUI_CHECKPOINT_S"):
            checkpoint_interval(torch.device("cpu"))


def test_a_bad_checkpoint_interval_is_one_line_and_stores_nothing_broken(tmp_path, mnist_root):
    env = {**os.environ, "ADV_TUI_CHECKPOINT_S": "soon", "ADV_TUI_DATA": str(mnist_root)}
    p = subprocess.run([sys.executable, "-m", "tui_adv.cli", "run", str(REPO / "configs/softmax.toml"), "--headless", "--db", str(tmp_path / "r.db"),
                        "--set", "train.epochs=1", "--set", "data.train_limit=200", "--set", "sweep.enabled=false"],
                       capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
    assert p.stderr.strip().count("\n") == 0 and "ADV_TUI_CHECKPOINT_S" in p.stderr
    assert not (tmp_path / "r.db").exists()  # refused before a run row (or the catalog) exists


def test_the_checkpoint_clock_keeps_the_unsaved_training_within_its_interval():
    """A periodic checkpoint is written at the epoch after which waiting for the next would leave more than
    the interval unsaved (judged by the last epoch's length): 7 s epochs and 30 s give one every 28 s,
    20 s epochs one every epoch (the next would come at 40 s), 0 s one every ``checkpoint_every`` epochs."""
    from tui_adv.core.train_state import CheckpointClock

    def written_at(epoch_s, seconds, epochs=12, every=1):
        t = [0.0]
        clock, out = CheckpointClock(every, seconds, now=lambda: t[0]), []
        for e in range(1, epochs + 1):
            t[0] += epoch_s
            if clock.due(e):
                clock.written()
                out.append(t[0])
        return out

    assert written_at(7, 30) == [28, 56, 84]
    assert written_at(20, 30) == [20 * i for i in range(1, 13)]
    assert written_at(5, 0, epochs=6, every=2) == [10, 20, 30]
    assert written_at(5, 3600) == [] and written_at(5, 30, every=0) == []
