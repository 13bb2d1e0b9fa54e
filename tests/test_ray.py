"""Runs on Ray (``--executor ray``): a local Ray cluster started in this test process (2 CPUs, no
dashboard), reached by the CLI subprocesses through its address, shut down after the module.

- a grid of 4 points on Ray gives the same results, to the last bit, as the local pool;
- the suite's steps on Ray (parents before the analysis and the retrain that read them) give the
  results of running them one at a time here;
- a Ray worker killed mid-run leaves the run ``interrupted`` and ``resume --executor ray`` completes it
  in the same row;
- an unreachable address and a malformed one are one line and exit 2, nothing stored.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time

import pytest

from tui_adv.catalog.store import Store
from tui_adv.executor import StepTask

from test_grid import TINY, VARY, _results
from test_jobs import _result, _steps, _suite, one_thread_reference

def test_a_four_point_grid_on_ray_equals_the_local_pool(cli, mnist_root, tmp_path, ray_address):
    db = tmp_path / "runs.db"
    local = cli("grid", "configs/softmax.toml", *VARY, "--name", "gl", "--jobs", "2", "--db", str(db), *TINY, timeout=600)
    assert local.returncode == 0, local.stderr[-3000:]
    on_ray = cli("grid", "configs/softmax.toml", *VARY, "--name", "gr", "--executor", "ray", "--ray-address", ray_address,
                 "--json", "--db", str(db), *TINY, timeout=600)
    assert on_ray.returncode == 0, on_ray.stderr[-3000:]
    assert "as Ray tasks" in on_ray.stderr
    doc = json.loads(on_ray.stdout)
    assert [r["status"] for r in doc["runs"]] == ["completed"] * 4
    rl, rr = _results(db, "gl"), _results(db, "gr")
    assert len(rr) == 4 and rl.keys() == rr.keys()
    assert rl == rr  # one torch thread per task, like the pool's workers: the same bits


def test_the_suite_on_ray_runs_parents_first_with_the_results_of_one_at_a_time(tmp_path, monkeypatch, mnist_root, ray_address):
    from tui_adv.ray_executor import RayExecutor

    one, ids1 = one_thread_reference(tmp_path, monkeypatch, mnist_root)  # a Ray task runs one torch thread too
    two = Store(str(tmp_path / "two.db"))
    events: list[dict] = []
    monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", "0")
    ex = RayExecutor(ray_address)
    assert ex.env["ADV_TUI_CHECKPOINT_S"] == "0"  # what each task's worker sets before its run
    assert ex.capacity == 2 and ex.resources("cpu") == {"num_cpus": 1} and ex.resources("cuda") == {"num_gpus": 1, "num_cpus": 1}
    try:
        ids2 = _suite(two, mnist_root, 2, events, executor=ex)
    finally:
        ex.shutdown()
    assert set(ids1) == set(ids2) == {s.key for s in _steps()}
    for key in ids1:
        assert _result(two, ids2[key]) == _result(one, ids1[key]), key
    # parents finished before the steps that read them started
    order = [(e["type"], e["key"]) for e in events if e["type"] in ("step_start", "step_end")]
    for child, parents in (("transfer_a_to_b", ("soft_a", "soft_b")), ("soft_full", ("soft_es",))):
        for p in parents:
            assert order.index(("step_end", p)) < order.index(("step_start", child)), (p, child, order)
    runs = {r.experiment: r for r in two.list_runs()}
    assert runs["soft_full"].parent_id == ids2["soft_es"]


def _row(db, run_id):
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return con.execute("SELECT status, pid, epoch, error FROM runs WHERE id = ?", (run_id,)).fetchone()
    finally:
        con.close()


def test_a_killed_ray_worker_leaves_the_run_interrupted_and_resume_on_ray_completes_it(cli, tmp_path, mnist_root, ray_address, monkeypatch):
    from tui_adv.config import load_config
    from tui_adv.ray_executor import RayExecutor

    monkeypatch.setenv("ADV_TUI_CHECKPOINTS", str(tmp_path / "ckpt"))
    db = tmp_path / "runs.db"
    cfg = load_config("configs/maxout.toml", ["data.train_limit=2000", "data.test_limit=300", "train.epochs=8", "model.units=32",
                                              "sweep.samples=0", "sweep.epsilons=[0,.25]"])
    store = Store(str(db))
    ex = RayExecutor(ray_address)
    try:
        handle = ex.submit(StepTask(key="victim", profile="", db_url=store.url, data_dir=str(mnist_root), device="cpu", config_json=cfg.to_json()))
        deadline, row = time.monotonic() + 180, None
        while time.monotonic() < deadline:
            runs = store.list_runs()
            row = _row(db, int(runs[0].id)) if runs else None
            if row and row[0] == "running" and row[1] and (row[2] or 0) >= 2:  # past the checkpoint of epoch 2
                break
            time.sleep(0.1)
        assert row and row[0] == "running" and (row[2] or 0) >= 2, f"the run did not get past epoch 2 in time: {row}"
        run_id = int(store.list_runs()[0].id)
        os.kill(row[1], signal.SIGKILL)  # the Ray worker process that runs it
        outcome = handle.result()
    finally:
        ex.shutdown()
    assert outcome.status == "interrupted" and "worker" in (outcome.error or ""), outcome
    listed = cli("runs", "list", "--json", "--db", str(db))  # a reader marks it: its process is gone
    assert listed.returncode == 0, listed.stderr
    assert [r["status"] for r in json.loads(listed.stdout)] == ["interrupted"]
    resumed = cli("resume", str(run_id), "--executor", "ray", "--ray-address", ray_address, "--json", "--db", str(db), timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    doc = json.loads(resumed.stdout)
    assert doc["run_id"] == run_id and doc["status"] == "completed"
    assert len(store.list_runs()) == 1  # the same row, not a new run
    logs = [m.message for m in store.logs(run_id)]
    assert any(m.startswith("resumed from the checkpoint of epoch") for m in logs), logs
    store.close()


@pytest.mark.parametrize(("address", "needle"), [("127.0.0.1:1", "cannot reach the Ray cluster at 127.0.0.1:1"), ("nowhere", "expected HOST:PORT")])
def test_a_bad_ray_address_is_one_line_and_stores_nothing(cli, tmp_path, mnist_root, address, needle):
    pytest.importorskip("ray")
    db = tmp_path / "runs.db"
    proc = cli("run", "configs/softmax.toml", "--executor", "ray", "--ray-address", address, "--db", str(db), *TINY, timeout=120)
    err = proc.stderr.strip()
    assert proc.returncode == 2 and err.startswith("adv-tui: error: ") and len(err.splitlines()) == 1 and needle in err, err
    assert not db.exists() or Store(str(db)).list_runs() == []


def test_a_ray_worker_runs_its_step_with_the_drivers_training_settings(monkeypatch):
    import os

    from tui_adv import executor, ray_executor

    for k in ray_executor.FORWARDED_ENV:
        monkeypatch.setenv(k, "the worker's own")  # restored after the test
    monkeypatch.setattr(executor, "run_task", lambda task: {k: os.environ.get(k) for k in ray_executor.FORWARDED_ENV})
    sent = {"ADV_TUI_CHECKPOINTS": "/shared/ck", "ADV_TUI_CHECKPOINT_S": "12", "ADV_TUI_CUDA_GRAPH": "off"}
    assert ray_executor._remote_step(None, sent) == sent
