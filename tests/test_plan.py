"""``reproduce --plan``: every step with its parents and epochs, a calibrated estimate, nothing run."""

from __future__ import annotations

import json

import pytest

from tui_adv import reproduce as rp
from tui_adv.plan import PlanStep, build_plan, makespan


def _ps(key, s, parents=(), stack=""):
    return PlanStep(key=key, kind="train", parents=list(parents), claims=[], model="m", mode="clean", epochs=1, max_epochs=1,
                    train_images=1, batch_size=1, sweep_readings=0, device="cpu", estimate_s=s, stack=stack)


def test_makespan_is_the_list_schedule_of_the_scheduler():
    steps = [_ps("a", 3.0), _ps("b", 1.0), _ps("c", 2.0, ["b"]), _ps("d", 1.0, ["a", "c"])]
    assert makespan(steps, 1) == 7.0
    assert makespan(steps, 2) == 4.0  # a ‖ (b, c), then d after both
    assert makespan(steps, 8) == 4.0


def test_a_stack_is_one_task_on_one_worker_in_the_makespan():
    steps = [_ps("m0", 2.0, stack="m"), _ps("m1", 2.0, stack="m"), _ps("x", 3.0), _ps("both", 1.0, ["m0", "m1"])]
    assert makespan(steps, 2) == 5.0  # the stack (4 s) ‖ x, then the step that reads both members
    assert makespan(steps, 1) == 8.0


def test_plan_with_stack_marks_the_group_and_calibrates_the_stacked_step(mnist_root):
    plan = build_plan("quick", only=["P18"], device="cpu", data_dir=str(mnist_root), stack=True)
    members = [s for s in plan.steps if s.key.startswith("ensemble@")]
    assert len(members) == 12 and {s.stack for s in members} == {"ensemble@s0…11 (12)"}
    assert all("one stack" in s.note and s.estimate_s > 0 for s in members)
    alone = build_plan("quick", only=["P18"], device="cpu", data_dir=str(mnist_root))
    assert not any(s.stack for s in alone.steps)
    assert plan.makespan_estimate_s > 0 and plan.total_estimate_s > 0


def test_plan_lists_every_selected_step_with_parents_and_writes_nothing(tmp_path, monkeypatch, mnist_root):
    monkeypatch.chdir(tmp_path)
    plan = build_plan("quick", only=["P08"], device="cpu", data_dir=str(mnist_root))
    keys = [s.key for s in plan.steps]
    assert keys == [s.key for s in rp.Reproducer.__new__(rp.Reproducer)._select(rp.suite("quick"), ["P08"])]
    by = {s.key: s for s in plan.steps}
    assert by["maxout1600_adv@s0"].kind == "retrain" and by["maxout1600_adv@s0"].parents == ["maxout1600_adv_es@s0"]
    es = by["maxout1600_adv_es@s0"]
    assert es.kind == "train" and es.epochs == 3 and es.train_images == 10_000 and es.mode == "adversarial" and es.device == "cpu"
    assert all(s.estimate_s > 0 for s in plan.steps) and plan.calibration_s > 0
    assert plan.total_estimate_s >= plan.makespan_estimate_s > 0
    # the matrix work, counted from the layer shapes: a retrain trains on more images than its parent
    assert by["maxout1600_adv@s0"].gflop > es.gflop > 0 and plan.gflop >= sum(s.gflop or 0 for s in plan.steps) - 1
    assert plan.matrix_rate_gflops > 0 and plan.floor_s == pytest.approx(plan.gflop / plan.matrix_rate_gflops, rel=0.01)
    assert json.loads(plan.to_json())["steps"][0]["key"] == keys[0]
    assert not list(tmp_path.iterdir())  # no catalog, no checkpoint


def test_plan_image_counts_follow_the_data_config(mnist_root):
    plan = build_plan("quick", only=["P03"], device="cpu", data_dir=str(mnist_root))
    (step,) = plan.steps
    assert step.key == "logreg_3v7" and step.train_images == 6131 + 6265  # the 3s and the 7s of the 60k


def test_cli_plan_json_prints_every_step_and_runs_nothing(cli, tmp_path):
    db = tmp_path / "runs.db"
    proc = cli("reproduce", "--profile", "quick", "--only", "P01,P08", "--plan", "--json", "--jobs", "2", "--device", "cpu", "--db", str(db))
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    want = [s.key for s in rp.Reproducer.__new__(rp.Reproducer)._select(rp.suite("quick"), ["P01", "P08"])]
    assert [s["key"] for s in out["steps"]] == want
    assert out["device"] == "cpu" and out["jobs"] == 2 and out["threads"] >= 1
    assert all({"parents", "epochs", "estimate_s", "kind"} <= set(s) for s in out["steps"])
    assert not db.exists()
    table = cli("reproduce", "--only", "P01", "--plan", "--device", "cpu", "--db", str(db))
    assert table.returncode == 0 and "softmax" in table.stdout and "estimated total" in table.stderr


def test_cli_jobs_must_be_at_least_one(cli):
    proc = cli("reproduce", "--jobs", "0", "--plan")
    assert proc.returncode == 2 and "--jobs" in proc.stderr and "Traceback" not in proc.stderr


def test_the_plan_lists_the_steps_in_the_order_they_would_start(mnist_root):
    from tui_adv.reproduce.order import ordered

    plan = build_plan("quick", only=["P01", "P08"], device="cpu", data_dir=str(mnist_root), order="shortest")
    steps = rp.Reproducer.__new__(rp.Reproducer)._select(rp.suite("quick"), ["P01", "P08"])
    assert [s.key for s in plan.steps] == [s.key for s in ordered(steps, "quick", "shortest")]
    assert plan.steps[0].key == "softmax" and plan.steps[-1].key.startswith("maxout1600_adv")
