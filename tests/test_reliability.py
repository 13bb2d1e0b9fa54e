"""Liveness (dead runs become `interrupted` for every reader, keeping what they wrote), divergence
(`failed` with a reason), atomic checkpoints, and the writer's sync-before-checkpoint guarantee."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from tui_adv.catalog.schema import utcnow
from _helpers import main_in_process

REPO = Path(__file__).resolve().parents[1]


_main = main_in_process


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


@pytest.fixture
def catalog(tmp_path):
    from tui_adv.catalog import Store

    db = str(tmp_path / "runs.db")
    s = Store(db)
    yield db, s
    s.close()


def _run_row(store, **fields):
    base = dict(name="r", experiment="x", config_json="{}", status="running", host=socket.gethostname(), heartbeat_at=utcnow(), started_at=utcnow())
    return int(store.create_run(**{**base, **fields}).id)


def test_dead_process_is_interrupted_for_every_reader_keeping_metrics_and_error(catalog, capsys):
    db, store = catalog
    crashed = _run_row(store, pid=_dead_pid(), error="RuntimeError: boom", traceback="Traceback ...\nRuntimeError: boom")
    killed = _run_row(store, pid=_dead_pid())
    store.add_metrics(killed, [("train_loss", 1, 0.5), ("batch_loss", 7, 0.4)])
    queued = _run_row(store, pid=_dead_pid(), status="queued", heartbeat_at=None, started_at=None)

    code, out, err = _main(capsys, "runs", "list", "--json", "--db", db)
    assert code == 0, err
    rows = {r["run_id"]: r for r in json.loads(out)}
    assert {rows[i]["status"] for i in (crashed, killed, queued)} == {"interrupted"}
    c = store.get_run(crashed)
    assert c.error == "RuntimeError: boom" and c.traceback.endswith("RuntimeError: boom")  # kept, not overwritten
    k = store.get_run(killed)
    assert "process is gone" in k.error and k.finished_at is not None
    assert {(m.key, m.step) for m in store.metrics(killed)} == {("train_loss", 1), ("batch_loss", 7)}


@pytest.mark.parametrize("command", [["runs", "show", "{id}", "--json"], ["runs", "export", "{id}", "--format", "json"]])
def test_show_and_export_also_mark_dead_runs(catalog, capsys, command):
    db, store = catalog
    run_id = _run_row(store, pid=_dead_pid())
    code, out, err = _main(capsys, *[a.format(id=run_id) for a in command], "--db", db)
    assert code == 0, err
    assert json.loads(out)["status"] == "interrupted"


def test_the_dashboards_store_poll_marks_dead_runs(catalog):
    db, store = catalog
    run_id = _run_row(store, pid=_dead_pid())
    assert store.refresh_liveness() == [run_id]
    assert store.refresh_liveness() == []  # once


def test_stale_heartbeat_on_another_host_is_interrupted_a_fresh_one_is_not(catalog):
    _, store = catalog
    stale = _run_row(store, host="elsewhere", pid=1, heartbeat_at=utcnow() - timedelta(minutes=10))
    fresh = _run_row(store, host="elsewhere", pid=1, heartbeat_at=utcnow())
    store.refresh_liveness()
    assert store.get_run(stale).status == "interrupted"
    assert store.get_run(fresh).status == "running"


def test_a_live_process_stays_running(catalog):
    _, store = catalog
    p = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        run_id = _run_row(store, pid=p.pid)
        assert store.refresh_liveness() == []
        assert store.get_run(run_id).status == "running"
    finally:
        p.kill()
        p.wait()
    assert store.refresh_liveness() == [run_id]


def test_divergence_fails_the_run_with_a_reason(tmp_path, mnist_root, capsys):
    db = str(tmp_path / "runs.db")
    code, out, err = _main(
        capsys, "run", str(REPO / "configs" / "softmax.toml"), "--headless", "-q", "--db", db, "--device", "cpu",
        "--set", "data.train_limit=500", "--set", "data.test_limit=100", "--set", "train.epochs=2", "--set", "train.lr=1e38",
    )  # fmt: skip
    assert code == 1
    assert "diverged" in err and "Traceback" not in err
    from tui_adv.catalog import Store

    run = Store(db).get_run(1)
    assert run.status == "failed" and run.error.startswith("diverged:") and "lr" in run.error


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path, monkeypatch):
    from tui_adv.checkpoints import atomic_save, load_checkpoint

    path = tmp_path / "ck" / "run-1.pt"
    atomic_save({"epoch": 1, "w": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError):
        atomic_save({"epoch": 2}, path)
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1
    assert sorted(p.name for p in path.parent.iterdir()) == ["run-1.pt"]  # no temp file left behind


def test_checkpoint_refuses_pickled_code(tmp_path):
    """Checkpoints are loaded with weights_only=True: a file carrying arbitrary objects is refused."""
    from tui_adv.errors import UserError
    from tui_adv.checkpoints import load_checkpoint

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil()}, path)
    with pytest.raises(UserError, match="corrupt or unreadable"):
        load_checkpoint(path)


def test_every_row_up_to_a_checkpoint_is_in_the_catalog_when_it_is_written(tmp_path, mnist_root):
    """The writer is synced before each checkpoint, so a kill right after a checkpoint loses no rows that
    the checkpoint covers (resume only deletes rows after it)."""
    from tui_adv.catalog import Store
    from tui_adv.config import validate
    from tui_adv.runner import Runner

    store = Store(str(tmp_path / "runs.db"))
    cfg = validate({"name": "s", "model": {"kind": "softmax"}, "data": {"train_limit": 400, "test_limit": 100}, "train": {"epochs": 3, "batch_size": 50}, "sweep": {"enabled": False}})
    seen: list[tuple[int, set]] = []
    r = Runner(cfg, store, data_dir=str(mnist_root))

    def on(e):
        if e["type"] == "checkpoint":
            seen.append((e["epoch"], {(m.key, m.step) for m in store.metrics(r.run_id)}))

    r.emit = on
    r.create()
    assert r.execute() == "completed"
    assert [ep for ep, _ in seen] == [1, 2, 3]
    for epoch, rows in seen:
        assert ("train_loss", epoch) in rows and ("test_error", epoch) in rows
        assert ("batch_loss", epoch * 8) in rows  # 8 batches an epoch, every batch reported
