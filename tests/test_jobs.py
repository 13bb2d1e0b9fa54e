"""``reproduce --jobs N``: steps run concurrently in worker processes, parents before children, each
step its own catalog run, with the same results as one step at a time."""

from __future__ import annotations

import json
import threading

import pytest
import torch

from tui_adv import reproduce as rp
from tui_adv.catalog.store import Store
from tui_adv.executor import InlineExecutor, LocalPoolExecutor, StepTask, run_task

SMALL = {"data.train_limit": 600, "data.test_limit": 300, "sweep.epsilons": [0.0, 0.25], "sweep.samples": 0, "train.epochs": 2}


def _steps():
    return [
        rp.Step("soft_a", "softmax.toml", {**SMALL, "seed": 1}, claims=["P01"]),
        rp.Step("soft_b", "softmax.toml", {**SMALL, "seed": 2}, claims=["P01"]),
        rp.Step("soft_es", "softmax.toml",
                {**SMALL, "train.epochs": 3, "data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 1}}, claims=["P01"]),
        rp.Step("transfer_a_to_b", analysis="transfer", parents={"source": "soft_a", "target": "soft_b"}, claims=["P01"]),
        rp.Step("soft_full", retrain_of="soft_es", claims=["P01"]),
    ]


def _suite(store, mnist_root, jobs, events, executor=None):
    return rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=events.append, jobs=jobs).run(executor)


def _pool_suite(store, mnist_root, jobs, events):
    """The miniature suite on ``jobs`` worker processes of one torch thread each."""
    pool = LocalPoolExecutor(jobs, threads=1)
    try:
        return _suite(store, mnist_root, jobs, events, executor=pool)
    finally:
        pool.shutdown()


def _result(store, run_id):
    r = store.get_run(run_id)
    summary = json.loads(r.summary_json)
    summary.pop("seconds", None)
    return r.status, summary


def one_thread_reference(tmp_path, monkeypatch, mnist_root) -> tuple[Store, dict[str, int]]:
    """The miniature suite (:func:`_steps`) run one step at a time in this process with one torch thread,
    the thread count of a pool worker or a Ray task: the same arithmetic, so the same bits."""
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: _steps())
    one = Store(str(tmp_path / "one.db"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return one, _suite(one, mnist_root, 1, [])
    finally:
        torch.set_num_threads(threads)


def test_jobs_2_gives_the_results_of_jobs_1_parents_first(tmp_path, monkeypatch, mnist_root):
    one, ids1 = one_thread_reference(tmp_path, monkeypatch, mnist_root)
    two = Store(str(tmp_path / "two.db"))
    events: list[dict] = []
    ids2 = _pool_suite(two, mnist_root, 2, events)
    assert set(ids1) == set(ids2) == {s.key for s in _steps()}
    assert len({ids2[k] for k in ids2}) == len(ids2) == len(two.list_runs())  # each step its own run
    for key in ids1:
        assert _result(two, ids2[key]) == _result(one, ids1[key]), key
    # parents finished before their children started
    for child, parents in (("transfer_a_to_b", ("soft_a", "soft_b")), ("soft_full", ("soft_es",))):
        c = two.get_run(ids2[child])
        for p in parents:
            assert two.get_run(ids2[p]).finished_at <= c.started_at, (p, child)
    assert two.get_run(ids2["soft_full"]).parent_id == ids2["soft_es"]
    ends = [e for e in events if e["type"] == "step_end"]
    assert sorted(e["key"] for e in ends) == sorted(ids2) and all(e["status"] == "completed" for e in ends)
    assert {e["step"] for e in events if e["type"] == "run_start"} == {"soft_a", "soft_b", "soft_es", "soft_full"}  # workers' progress


def test_with_more_workers_than_ready_steps_a_child_still_waits_for_its_parents(tmp_path, monkeypatch, mnist_root):
    """Four workers for three ready steps: the transfer (which reads two of them) must wait for both, not
    start in the same pass and find its parents missing (it was skipped so before: a submitted step left
    the set of unfinished steps as it was submitted)."""
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: _steps())
    store = Store(str(tmp_path / "four.db"))
    events: list[dict] = []
    ids = _pool_suite(store, mnist_root, 4, events)
    assert set(ids) == {s.key for s in _steps()}
    assert all(e["status"] == "completed" for e in events if e["type"] == "step_end"), [e for e in events if e["type"] == "step_end"]
    transfer = store.get_run(ids["transfer_a_to_b"])
    assert all(store.get_run(ids[p]).finished_at <= transfer.started_at for p in ("soft_a", "soft_b"))


def test_a_stopped_pool_cancels_its_steps_and_a_later_pass_continues_them(tmp_path, monkeypatch, mnist_root):
    steps = [rp.Step("soft_a", "softmax.toml", {**SMALL, "train.epochs": 4, "seed": 1}, claims=["P01"]),
             rp.Step("soft_b", "softmax.toml", {**SMALL, "train.epochs": 4, "seed": 2}, claims=["P01"]),
             rp.Step("transfer_a_to_b", analysis="transfer", parents={"source": "soft_a", "target": "soft_b"}, claims=["P01"])]
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps)
    store = Store(str(tmp_path / "runs.db"))
    stop = threading.Event()
    events: list[dict] = []

    def emit(e):
        events.append(e)
        if e["type"] == "epoch_end":
            stop.set()  # as Ctrl-C does: the scheduler tells the workers

    ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=emit, stop_event=stop, jobs=2).run()
    statuses = {r.experiment: r.status for r in store.list_runs()}
    assert "transfer_a_to_b" not in statuses and "transfer_a_to_b" not in ids  # nothing starts after a stop
    assert set(statuses.values()) <= {"cancelled", "completed"} and "cancelled" in statuses.values()
    kept = {r.experiment: r.id for r in store.list_runs() if r.status == "completed" or r.checkpoint_path}
    assert kept  # the first epoch ended (and checkpointed) somewhere before the stop reached it
    again = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", jobs=1).run()
    for key, rid in kept.items():
        assert again[key] == rid  # continued (or reused) in its row, not started again
    assert all(store.get_run(again[s.key]).status == "completed" for s in steps)


def test_a_task_that_cannot_run_is_a_failed_outcome(tmp_path):
    store = Store(str(tmp_path / "runs.db"))
    task = StepTask(key="x", profile="quick", db_url=store.url, data_dir=None, device="cpu", config_json="{not json")
    out = InlineExecutor(store, lambda e: None, threading.Event()).submit(task).result()
    assert out.status == "failed" and out.run_id is None and "JSON" in out.error or "Expecting" in out.error
    assert run_task(task).status == "failed"


def test_jobs_must_be_positive():
    with pytest.raises(ValueError):
        LocalPoolExecutor(0)
