"""Runs that differ only by seed, trained as one stack (``tui_adv/stack_runner.py``, ``reproduce --stack``).

Every member is its own catalog run and ends as the same run trained alone would: the same final
weights (bit for bit on CPU), the same summary, epoch metrics and sweep; its checkpoint is a solo run's
(``load_model`` reads it, ``resume`` redoes its sweep). A stop ends every member with the same status.
The suite groups its stackable steps (the ensemble members) and gives the same runs as without.
"""

from __future__ import annotations

import threading

import pytest
import torch

from tui_adv import reproduce as rp
from tui_adv.catalog.store import Store
from tui_adv.checkpoints import load_checkpoint, load_model
from tui_adv.config import load_config
from tui_adv.runner import Runner
from tui_adv.stack_runner import run_stack, stack_key

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL = ["data.train_limit=500", "data.test_limit=200", "train.epochs=2", "model.units=24", "model.pieces=3",
         "sweep.epsilons=[0.0,0.25]", "sweep.samples=2", "sweep.matrix=false", "train.eval_limit=200"]


def _cfg(seed, *more):
    return load_config(REPO / "configs" / "maxout.toml", [*SMALL, f"seed={seed}", f"name=member{seed}", *more])


def _numbers(store, run_id):
    run = store.get_run(run_id)
    summary = run.summary()
    summary.pop("seconds", None)
    metrics = sorted((m.key, m.step, m.value) for m in store.metrics(run_id) if m.key != "batch_loss")
    sweep = sorted((p.epsilon, p.error, p.mean_confidence) for p in store.sweep_points(run_id))
    return summary, metrics, sweep


def test_each_member_of_a_stack_is_the_run_it_would_be_alone(tmp_path, mnist_root):
    store = Store(str(tmp_path / "runs.db"))
    seeds = [3, 11]
    out = run_stack([_cfg(s) for s in seeds], store, data_dir=str(mnist_root), device="cpu")
    assert [status for _, status in out] == ["completed", "completed"]
    for (rid, _), seed in zip(out, seeds):
        solo = Runner(_cfg(seed), store, data_dir=str(mnist_root), device="cpu")
        assert solo.execute() == "completed"
        a, b = load_model(rid, store.url), load_model(solo.run_id, store.url)
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), f"seed {seed}: {name} differs between the stack's member and its solo run"
        assert _numbers(store, rid) == _numbers(store, solo.run_id)
        run = store.get_run(rid)
        assert run.seed == seed and run.epoch == 2 and run.checkpoint_path
        state = load_checkpoint(Path(run.checkpoint_path))
        assert state["final"] and state["train_state"]["epoch"] == 2
        assert any("one stack of 2 members" in line.message for line in store.logs(rid))


def test_a_stopped_stack_ends_every_member_cancelled(tmp_path, mnist_root):
    store = Store(str(tmp_path / "runs.db"))
    stop = threading.Event()
    seen = []

    def emit(e):
        seen.append(e)
        if e["type"] == "batch":
            stop.set()

    out = run_stack([_cfg(s, "train.epochs=5") for s in (1, 2, 3)], store, data_dir=str(mnist_root), device="cpu", emit=emit, stop_event=stop)
    assert [status for _, status in out] == ["cancelled"] * 3
    for rid, _ in out:
        assert "cancelled" in store.get_run(rid).error


def test_what_can_be_stacked():
    assert stack_key(_cfg(1)) == stack_key(_cfg(2)) is not None
    assert stack_key(_cfg(1, "train.epochs=3")) != stack_key(_cfg(1))
    assert stack_key(_cfg(1, "train.mode=sign_noise")) is None
    assert stack_key(load_config(REPO / "configs" / "softmax.toml")) is None
    assert stack_key(load_config(REPO / "configs" / "maxout_sigmoid.toml")) is None


ENSEMBLE = ["data.train_limit=400", "data.test_limit=100", "train.epochs=1", "model.units=16", "model.pieces=2", "train.eval_limit=100"]


def _ensemble_steps():
    small = {"data.train_limit": 400, "data.test_limit": 100, "train.epochs": 1, "model.units": 16, "model.pieces": 2,
             "train.eval_limit": 100, "sweep.enabled": False}
    steps = [rp.Step(f"ensemble@s{s}", "maxout.toml", {**small, "seed": 100 + s}, claims=["P18"]) for s in range(3)]
    steps.append(rp.Step("ensemble", analysis="ensemble", parents={f"m{s}": f"ensemble@s{s}" for s in range(3)}, claims=["P18"]))
    return steps


@pytest.mark.parametrize("jobs", [1, 2])
def test_the_suite_stacks_its_ensemble_members_with_the_same_results(tmp_path, monkeypatch, mnist_root, jobs):
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: _ensemble_steps())
    plain, stacked = Store(str(tmp_path / "plain.db")), Store(str(tmp_path / "stacked.db"))
    ids_plain = rp.Reproducer(plain, "quick", data_dir=str(mnist_root), device="cpu", jobs=jobs).run()
    events: list[dict] = []
    ids_stacked = rp.Reproducer(stacked, "quick", data_dir=str(mnist_root), device="cpu", jobs=jobs, stack=True, emit=events.append).run()
    assert set(ids_plain) == set(ids_stacked) == {"ensemble@s0", "ensemble@s1", "ensemble@s2", "ensemble"}
    for key in ids_plain:
        a, b = plain.get_run(ids_plain[key]), stacked.get_run(ids_stacked[key])
        assert a.status == b.status == "completed" and a.name == b.name
        sa, sb = a.summary(), b.summary()
        for s in (sa, sb):
            s.pop("seconds", None)
        assert sa == sb, f"{key}: the stacked suite's summary differs"
    assert any(e["type"] == "log" and "as one stack" in e.get("message", "") for e in events)
    member_ends = [e for e in events if e["type"] == "step_end" and e["key"].startswith("ensemble@")]
    assert len(member_ends) == 3 and all(e["seconds"] > 0 for e in member_ends)  # each member's time is the stack's
    # a second pass reuses every run
    again: list[dict] = []
    rp.Reproducer(stacked, "quick", data_dir=str(mnist_root), device="cpu", stack=True, emit=again.append).run()
    assert {e["status"] for e in again if e["type"] == "step_end"} == {"reused"}


def test_a_member_taken_over_stops_the_stack_and_the_others_say_so(tmp_path, mnist_root):
    """A member's row claimed by another process mid-training: that row is left alone (still the other
    process's), the rest of the stack stops, cancelled, each naming the member that stopped it; the
    caller's stop event (a suite's, a worker pool's) is not touched."""
    store = Store(str(tmp_path / "runs.db"))
    stop = threading.Event()
    taken: list[int] = []

    def emit(e):
        if e["type"] == "batch" and not taken:
            taken.append(1)
            store.update_run(2, claim_token="somebody-else")  # run 2 resumed elsewhere

    out = run_stack([_cfg(s, "train.epochs=4", "data.train_limit=3000") for s in (1, 2, 3)], store, data_dir=str(mnist_root), device="cpu",
                    emit=emit, stop_event=stop)
    assert [status for _, status in out] == ["cancelled", "running", "cancelled"]
    for rid in (1, 3):
        assert "stopped with its stack: run 2" in store.get_run(rid).error
    assert store.get_run(2).error is None and not stop.is_set()


def test_a_failed_sweep_fails_that_member_only_and_every_member_keeps_its_weights(tmp_path, mnist_root, monkeypatch):
    from tui_adv import stack_runner

    store = Store(str(tmp_path / "runs.db"))
    real, calls = stack_runner.sweep_run, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom in the second member's sweep")
        return real(*args, **kwargs)

    monkeypatch.setattr(stack_runner, "sweep_run", flaky)
    out = run_stack([_cfg(s) for s in (1, 2, 3)], store, data_dir=str(mnist_root), device="cpu")
    assert [status for _, status in out] == ["completed", "failed", "completed"]
    failed = store.get_run(out[1][0])
    assert "boom" in failed.error and failed.checkpoint_path and Path(failed.checkpoint_path).is_file()
    assert len(store.sweep_points(out[0][0])) == len(store.sweep_points(out[2][0])) > 0
    # the failed member resumes from its final checkpoint: its sweep is redone, not its training
    monkeypatch.setattr(stack_runner, "sweep_run", real)
    runner = Runner.for_resume(store, out[1][0], data_dir=str(mnist_root), device="cpu")
    assert runner.resume_from is not None and runner.resume_from["final"]
    assert runner.execute() == "completed"
    assert store.get_run(out[1][0]).summary()["epochs_run"] == 2.0


_CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (scripts/gpu_paper.sh runs these)")


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=[pytest.mark.cuda, _CUDA])])
def test_a_stack_stopped_mid_training_resumes_each_member_alone_to_its_solo_run(tmp_path, mnist_root, monkeypatch, device):
    """The stack writes each member's checkpoint (every epoch with ``ADV_TUI_CHECKPOINT_S=0``, the CPU's
    default) in the solo format: after a stop in epoch 3, each member resumed alone continues from epoch 2
    and ends as its solo run: bit for bit on CPU, within float tolerance on CUDA (batched products)."""
    monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", "0")
    store = Store(str(tmp_path / "runs.db"))
    seeds = [5, 8]
    stop = threading.Event()
    saved = []

    def emit(e):
        if e["type"] == "checkpoint":
            saved.append(e["epoch"])
        if e["type"] == "batch" and e["epoch"] == 3:
            stop.set()

    out = run_stack([_cfg(s, "train.epochs=4") for s in seeds], store, data_dir=str(mnist_root), device=device, emit=emit, stop_event=stop)
    assert [status for _, status in out] == ["cancelled"] * 2
    assert saved == [1, 2]
    for (rid, _), seed in zip(out, seeds):
        run = store.get_run(rid)
        state = load_checkpoint(Path(run.checkpoint_path))
        assert not state["final"] and state["train_state"]["epoch"] == 2
        resumed = Runner.for_resume(store, rid, data_dir=str(mnist_root))
        assert resumed.execute() == "completed"
        solo = Runner(_cfg(seed, "train.epochs=4"), store, data_dir=str(mnist_root), device=device)
        assert solo.execute() == "completed"
        a, b = load_model(rid, store.url), load_model(solo.run_id, store.url)
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            if device == "cpu":
                assert torch.equal(x, y), f"seed {seed}: {name} differs between the resumed member and its solo run"
            else:
                torch.testing.assert_close(x, y, rtol=1e-3, atol=1e-4, msg=lambda m, name=name: f"seed {seed}: {name}: {m}")
        if device == "cpu":
            assert _numbers(store, rid) == _numbers(store, solo.run_id)
        else:
            (sa, ma, _), (sb, mb, _) = _numbers(store, rid), _numbers(store, solo.run_id)
            assert [(k, s) for k, s, _ in ma] == [(k, s) for k, s, _ in mb]
            assert abs(sa["test_error"] - sb["test_error"]) <= 0.05


def test_the_stack_checkpoints_no_more_often_than_the_interval_says(tmp_path, mnist_root, monkeypatch):
    monkeypatch.setenv("ADV_TUI_CHECKPOINT_S", "3600")
    store = Store(str(tmp_path / "runs.db"))
    saved = []
    out = run_stack([_cfg(s, "train.epochs=3") for s in (1, 2)], store, data_dir=str(mnist_root), device="cpu",
                    emit=lambda e: saved.append(e["epoch"]) if e["type"] == "checkpoint" else None)
    assert [status for _, status in out] == ["completed"] * 2 and saved == []
    for rid, _ in out:
        assert load_checkpoint(Path(store.get_run(rid).checkpoint_path))["final"]


class _CountingExecutor:
    """Runs each task inline, but only when polled after its submit, so that the steps in flight can be
    counted: the scheduler must never have more than ``capacity`` of them."""

    def __init__(self, store, capacity):
        from tui_adv.executor import InlineExecutor

        self.inner = InlineExecutor(store, lambda e: None, threading.Event())
        self.capacity, self.in_flight, self.most, self.submitted = capacity, 0, 0, []
        outer = self

        class Handle:
            def __init__(self, task):
                self.task, self.out = task, None

            def done(self):
                if self.out is None:
                    self.out = outer.inner.submit(self.task).result()
                    outer.in_flight -= 1
                return True

            def result(self):
                return self.out

        self.Handle = Handle

    def submit(self, task):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.submitted.append(task)
        return self.Handle(task)

    def poll_events(self):
        return []

    def stop(self):
        pass

    def shutdown(self):
        pass


def test_a_stopped_stacks_members_resume_alone_never_more_at_once_than_the_workers(tmp_path, monkeypatch, mnist_root):
    """A stack stopped in its second epoch leaves every member resumable from its epoch-1 checkpoint; the
    next pass resumes each alone (their checkpoints are solo ones), submitting no more steps at once than
    the executor has workers, and every member ends as the stack would have ended it."""
    monkeypatch.delenv("ADV_TUI_CHECKPOINT_S", raising=False)

    def steps():
        small = {"data.train_limit": 400, "data.test_limit": 100, "train.epochs": 2, "model.units": 16, "model.pieces": 2,
                 "train.eval_limit": 100, "sweep.enabled": False}
        return [rp.Step(f"ensemble@s{s}", "maxout.toml", {**small, "seed": 100 + s}, claims=["P18"]) for s in range(3)]

    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps())
    whole = Store(str(tmp_path / "whole.db"))
    ids_whole = rp.Reproducer(whole, "quick", data_dir=str(mnist_root), device="cpu", stack=True).run()
    store = Store(str(tmp_path / "runs.db"))
    stop = threading.Event()

    def emit(e):
        if e["type"] == "batch" and e["epoch"] == 2:
            stop.set()

    rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", stack=True, stop_event=stop, emit=emit).run()
    assert {r.status for r in store.list_runs()} == {"cancelled"}
    ex = _CountingExecutor(store, capacity=2)
    ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", stack=True).run(ex)
    assert len(ex.submitted) == 3 and all(t.resume_run_id is not None and not t.members for t in ex.submitted)
    assert ex.most <= 2
    for key in ids_whole:
        a, b = whole.get_run(ids_whole[key]), store.get_run(ids[key])
        assert b.status == "completed"
        sa, sb = a.summary(), b.summary()
        sa.pop("seconds", None), sb.pop("seconds", None)
        assert sa == sb, f"{key}: the resumed member's summary differs from the stack's"


def test_a_member_whose_checkpoint_cannot_be_written_stops_the_stack_and_is_named(tmp_path, mnist_root, monkeypatch):
    """At a mid-training checkpoint, a member whose row is found to be another process's (with nothing
    queued for its writer) is skipped, never written over, and stops the stack; the others name it."""
    from tui_adv.catalog.store import ClaimLost

    monkeypatch.delenv("ADV_TUI_CHECKPOINT_S", raising=False)
    store = Store(str(tmp_path / "runs.db"))
    real = store.check_owner

    def check_owner(run_id, token):
        if run_id == 2:
            raise ClaimLost("run 2 is no longer this process's")
        return real(run_id, token)

    monkeypatch.setattr(store, "check_owner", check_owner)
    out = run_stack([_cfg(s, "train.epochs=3") for s in (1, 2, 3)], store, data_dir=str(mnist_root), device="cpu")
    assert [status for _, status in out] == ["cancelled"] * 3
    for rid in (1, 3):
        assert "run 2's checkpoint could not be written (ClaimLost" in store.get_run(rid).error
        assert load_checkpoint(Path(store.get_run(rid).checkpoint_path))["train_state"]["epoch"] == 1
    assert store.get_run(2).checkpoint_path is None
