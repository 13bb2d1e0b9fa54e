"""Cancelling a run from another host: `adv-tui runs cancel ID` stores the request on the run row, the
runner (a separate process) polls it and stops as cancelled; a resume clears the request and completes.
On SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _helpers import main_in_process

from tui_adv.catalog import Store

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(params=["sqlite", "postgresql"])
def any_db(request, tmp_path):
    if request.param == "sqlite":
        return str(tmp_path / "runs.db")
    return request.getfixturevalue("pg_db")


def _wait(cond, timeout: float, what: str):  # noqa: ANN001
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        got = cond()
        if got:
            return got
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_a_run_on_another_host_is_cancelled_through_the_catalog_then_resumed(any_db, tmp_path, capsys, mnist_root, monkeypatch):
    monkeypatch.setenv("ADV_TUI_CHECKPOINTS", str(tmp_path / "ck"))
    args = [sys.executable, "-m", "tui_adv.cli", "run", "configs/softmax.toml", "--headless", "-q", "--device", "cpu", "--db", any_db,
            "--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=40", "--set", "sweep.samples=0",
            "--set", "sweep.epsilons=[0,.25]"]  # fmt: skip
    proc = subprocess.Popen(args, cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = Store(any_db)
    try:
        run = _wait(lambda: next((r for r in store.list_runs() if r.status == "running" and r.epoch >= 1), None), 120, "the run to train")
        # seen from here, the run lives on another host: no signal can reach it, only the catalog
        store.update_run(int(run.id), host="gpu-7.example")
        code, out, err = main_in_process(capsys, "runs", "cancel", str(run.id), "--db", any_db)
        assert code == 0, err
        assert "cancel requested in the catalog" in out and "gpu-7.example" in out and "SIGTERM" not in out
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    after = store.get_run(int(run.id))
    assert after.status == "cancelled" and "cancel request in the catalog" in after.error, (after.status, after.error, proc.stderr.read())
    assert rc != 0 and after.epoch < 40
    code, out, err = main_in_process(capsys, "runs", "cancel", str(run.id), "--db", any_db)
    assert code == 2 and "nothing to cancel" in err  # one line, not a traceback
    code, out, err = main_in_process(capsys, "resume", str(run.id), "--headless", "-q", "--db", any_db)
    assert code == 0, err
    done = store.get_run(int(run.id))
    assert done.status == "completed" and done.cancel_requested_at is None and done.epoch == 40
    store.close()


def test_a_queued_run_without_a_process_is_cancelled_at_once(tmp_path, capsys):
    db = str(tmp_path / "runs.db")
    s = Store(db)
    rid = int(s.create_run(name="q", experiment="softmax", config_json="{}", status="queued").id)
    code, out, err = main_in_process(capsys, "runs", "cancel", str(rid), "--db", db)
    assert code == 0 and "had not started" in out
    assert s.get_run(rid).status == "cancelled"
    code, out, err = main_in_process(capsys, "runs", "cancel", "999", "--db", db)
    assert code == 2 and "no run with id 999" in err
    s.close()


def test_cancelling_one_run_of_a_shared_process_says_which_others_stop_with_it(tmp_path):
    """A stack's members (or a suite's steps) share one process: cancelling one stops the others too, and
    the message (the CLI's and the dashboard dialog's) names them."""
    from tui_adv.catalog.store import Store
    from tui_adv.services.cancel import also_stops, same_process_runs

    store = Store(str(tmp_path / "runs.db"))
    common = dict(experiment="e", config_json="{}", status="running", host="elsewhere", pid=4242, pid_start=7)
    a, b, c = (store.create_run(name=f"m{i}", **common) for i in range(3))
    other = store.create_run(name="x", **{**common, "pid_start": 8})  # the same pid reused later: another process
    assert [r.id for r in same_process_runs(store, a)] == [b.id, c.id]
    assert also_stops(same_process_runs(store, a)) == f"its process also runs 2 other runs ({b.id}, {c.id}: a suite's or a stack's), which stop with it"
    assert also_stops([]) == "" and other.id not in [r.id for r in same_process_runs(store, a)]
    from tui_adv.services.cancel import cancel_run

    assert f"; its process also runs 2 other runs ({b.id}, {c.id}" in cancel_run(store, a.id)  # on another host: through the catalog
