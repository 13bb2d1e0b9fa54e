"""The reproduction suite's structure and orchestration: every claim has a step, parents run before the
analyses and retrains that use them, ``--only`` pulls in what a claim needs, finished steps are reused,
and a retrain step (P08) takes its early-stopped parent's config and best epoch count."""

from __future__ import annotations

import json

import pytest

from tui_adv import reproduce as rp
from tui_adv.catalog.store import Store
from tui_adv.claims import CLAIMS
from tui_adv.errors import UserError


@pytest.mark.parametrize("profile", rp.PROFILES)
def test_suite_covers_every_claim_and_orders_parents_first(profile):
    steps = rp.suite(profile)
    keys = [s.key for s in steps]
    assert len(keys) == len(set(keys))
    assert {c.id for c in CLAIMS} <= {c for s in steps for c in s.claims}
    seen: set[str] = set()
    for s in steps:
        for parent in s.needs:
            assert parent in seen, f"{s.key} needs {parent} before it"
        assert (s.config is not None) + (s.analysis is not None) + (s.retrain_of is not None) == 1, s.key
        seen.add(s.key)


@pytest.mark.parametrize("profile", rp.PROFILES)
def test_every_training_step_config_validates(profile):
    for s in rp.suite(profile):
        if s.config:
            cfg = rp.step_config(s, profile)
            assert cfg.experiment == s.key and cfg.profile == profile and cfg.claims == s.claims


def test_p08_is_early_stopped_then_retrained_per_seed():
    for profile, seeds in (("quick", 2), ("paper", 5)):
        steps = {s.key: s for s in rp.suite(profile)}
        for i in range(seeds):
            es = rp.step_config(steps[f"maxout1600_adv_es@s{i}"], profile)
            assert es.data.validation and es.train.early_stopping.metric == "valid_adv_error" and es.seed == i
            assert steps[f"maxout1600_adv@s{i}"].retrain_of == f"maxout1600_adv_es@s{i}"


def test_only_selects_a_claims_steps_and_their_parents():
    r = rp.Reproducer.__new__(rp.Reproducer)
    keys = [s.key for s in r._select(rp.suite("quick"), ["p08"])]
    assert keys == ["maxout1600_adv_es@s0", "maxout1600_adv@s0", "maxout1600_adv_es@s1", "maxout1600_adv@s1"]
    # P11 reads the transfer from the naive 1600-unit model to each retrained adversarial seed
    keys = [s.key for s in r._select(rp.suite("quick"), ["P11"])]
    assert keys == ["maxout1600", "maxout1600_adv_es@s0", "maxout1600_adv@s0", "maxout1600_adv_es@s1", "maxout1600_adv@s1",
                    "transfer_naive_to_adv@s0", "transfer_naive_to_adv@s1"]
    with pytest.raises(UserError, match="unknown claim"):
        r._select(rp.suite("quick"), ["P99"])


def _fake_run(config: dict, summary: dict, run_id: int = 7):
    from tui_adv.catalog.schema import Run

    # a catalog row (not stored) with the two columns step_config reads
    return Run(id=run_id, name="parent", experiment="parent", config_json=json.dumps(config), summary_json=json.dumps(summary))


def test_retrain_config_takes_the_parents_recipe_without_validation_or_early_stopping():
    steps = {s.key: s for s in rp.suite("quick")}
    parent_cfg = rp.step_config(steps["maxout1600_adv_es@s1"], "quick")
    step = steps["maxout1600_adv@s1"]
    cfg = rp.step_config(step, "quick", _fake_run(json.loads(parent_cfg.to_json()), {"best_epoch": 2.0}))
    assert cfg.train.epochs == 2 and cfg.train.early_stopping is None and not cfg.data.validation and cfg.sweep.enabled
    assert cfg.experiment == "maxout1600_adv@s1" and cfg.claims == ["P08", "P09", "P10", "P11", "P12"] and cfg.seed == 1
    assert cfg.model == parent_cfg.model and cfg.train.mode == "adversarial" and cfg.train.alpha == 0.5
    assert "run 7" in cfg.description
    with pytest.raises(UserError, match="no best epoch"):
        rp.step_config(step, "quick", _fake_run(json.loads(parent_cfg.to_json()), {}))
    with pytest.raises(UserError, match="no completed run"):
        rp.step_config(step, "quick", None)


def test_reproducer_runs_a_retrain_after_its_parent_and_reuses_both(tmp_path, monkeypatch, mnist_root):
    """A miniature suite through the real Reproducer: early stopping on validation, the retrain on
    all training images for the best epoch count (parent_id pointing to the early-stopped run), and a
    second pass that creates no run."""
    small = {"data.train_limit": 600, "data.test_limit": 300, "sweep.epsilons": [0.0, 0.25], "sweep.samples": 0}
    steps = [
        rp.Step("soft_es", "softmax.toml",
                {**small, "train.epochs": 4, "data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 1}}, claims=["P01"]),
        rp.Step("soft_full", retrain_of="soft_es", claims=["P01"]),
    ]
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps)
    store = Store(str(tmp_path / "runs.db"))
    events: list[dict] = []
    ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=events.append).run()
    es, full = store.get_run(ids["soft_es"]), store.get_run(ids["soft_full"])
    best = int(json.loads(es.summary_json)["best_epoch"])
    assert 1 <= best <= 4
    cfg = json.loads(full.config_json)
    assert full.status == "completed" and full.parent_id == es.id
    assert cfg["train"]["epochs"] == best and cfg["train"]["early_stopping"] is None and cfg["data"]["validation"] is False
    assert json.loads(full.summary_json)["epochs_run"] == best

    before = len(store.list_runs())
    again = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=events.append).run()
    assert again == ids and len(store.list_runs()) == before
    assert [e["status"] for e in events if e["type"] == "step_end"][-2:] == ["reused", "reused"]


def test_report_markdown_appends_the_discussion_file(tmp_path, capsys):
    from _helpers import main_in_process

    db = str(tmp_path / "runs.db")
    disc = tmp_path / "discussion.md"
    disc.write_text("## Discussion\n\n- **P02**: under-trained maxout.\n")
    code, out, err = main_in_process(capsys, "report", "--db", db, "--markdown", "--discussion", str(disc))
    assert code == 0, err
    assert out.startswith("# Reproduction report") and out.rstrip().endswith("- **P02**: under-trained maxout.")
    assert "**0 PASS · 0 FAIL · 29 NOT RUN** of 29 claims." in out
    code, out, err = main_in_process(capsys, "report", "--db", db, "--discussion", str(disc))
    assert code == 2 and err.count("\n") == 1 and "--markdown" in err
    code, out, err = main_in_process(capsys, "report", "--db", db, "--markdown", "--discussion", str(tmp_path / "nope.md"))
    assert code == 2 and err.count("\n") == 1 and "nope.md" in err and "Traceback" not in err


# ------------------------------------------------------------------------------------------------ derived from the claims
@pytest.mark.parametrize("profile", rp.PROFILES)
def test_the_suite_is_what_the_claims_read(profile):
    """Every step of a profile is read by a claim or needed by one that is; every claim's reads exist."""
    steps = rp.suite(profile)
    keys = {s.key for s in steps}
    read = {k for c in CLAIMS for pattern in c.reads for k in rp.step_reads(pattern, [s.key for s in rp._steps(profile)])}
    needed = set(read)
    by_key = {s.key: s for s in steps}
    frontier = list(read)
    while frontier:
        for parent in by_key[frontier.pop()].needs:
            if parent not in needed:
                needed.add(parent)
                frontier.append(parent)
    assert keys == needed
    for c in CLAIMS:
        assert c.reads, c.id
        for pattern in c.reads:
            assert rp.step_reads(pattern, list(keys)), (c.id, pattern)


def test_a_measure_may_read_only_what_its_claim_declares(monkeypatch):
    from tui_adv.claims import Ctx, evaluate_claim

    store = Store("sqlite://")
    claim = next(c for c in CLAIMS if c.id == "P01")
    monkeypatch.setattr(claim, "reads", ["logreg_3v7"])
    with pytest.raises(AssertionError, match="does not declare"):
        evaluate_claim(claim, Ctx(store, "quick"))


def test_standard_is_quick_but_for_the_two_240_unit_maxouts():
    q = {s.key: s for s in rp.suite("quick")}
    st = {s.key: s for s in rp.suite("standard")}
    assert set(q) == set(st)
    differ = [k for k in q if q[k].config and rp.identity(rp.step_config(q[k], "quick").to_json()) != rp.identity(rp.step_config(st[k], "standard").to_json())]
    assert differ == ["maxout", "maxout_adv"]
    m = rp.step_config(st["maxout"], "standard")
    assert m.train.epochs == 250 and m.train.early_stopping.patience == 100 and m.data.validation and m.train.eval_limit is None
    assert m.train.matrix_every == 25 and m.sweep.matrix
    p = rp.step_config({s.key: s for s in rp.suite("paper")}["maxout"], "paper")
    assert p.train.continuation is not None and p.train.early_stopping.patience == 100


def test_identity_ignores_labels_only():
    a = json.dumps({"name": "x", "claims": ["P01"], "experiment": "softmax", "profile": None, "description": "d", "seed": 0, "train": {"epochs": 3}})
    b = json.dumps({"name": "quick:softmax", "claims": [], "experiment": "s", "profile": "quick", "description": "", "seed": 0, "train": {"epochs": 3}})
    c = json.dumps({"name": "x", "seed": 1, "train": {"epochs": 3}})
    assert rp.identity(a) == rp.identity(b) != rp.identity(c)
    assert rp.identity("[[") == ""


def test_a_stopped_suite_continues_its_interrupted_step(tmp_path, monkeypatch, mnist_root):
    """The suite is stopped inside a step (its run left cancelled with a checkpoint); the next
    `reproduce` continues that run in the same row instead of starting the step again."""
    import threading

    from tui_adv.runner import Runner

    small = {"data.train_limit": 600, "data.test_limit": 300, "sweep.epsilons": [0.0, 0.25], "sweep.samples": 0, "train.epochs": 3}
    steps = [rp.Step("soft", "softmax.toml", small, claims=["P01"])]
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps)
    store = Store(str(tmp_path / "runs.db"))
    cfg = rp.step_config(steps[0], "quick")
    stop = threading.Event()

    def stop_after_first_epoch(e):
        if e["type"] == "checkpoint" and e["epoch"] == 1:
            stop.set()

    runner = Runner(cfg, store, data_dir=str(mnist_root), device="cpu", emit=stop_after_first_epoch, stop_event=stop)
    runner.create()
    assert runner.execute() == "cancelled"
    events: list[dict] = []
    ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=events.append).run()
    assert ids == {"soft": runner.run_id} and len(store.list_runs()) == 1
    run = store.get_run(runner.run_id)
    assert run.status == "completed" and json.loads(run.summary_json)["epochs_run"] == 3
    assert any("continuing run" in e.get("message", "") for e in events)


def test_identity_survives_a_config_key_added_since():
    """A run stored before a config key existed (at its default now) is still the same experiment."""
    steps = {s.key: s for s in rp.suite("quick")}
    now = json.loads(rp.step_config(steps["softmax"], "quick").to_json())
    old = json.loads(json.dumps(now))
    del old["train"]["clip"], old["sweep"]["matrix"]
    assert rp.identity(json.dumps(old)) == rp.identity(json.dumps(now))
    old["train"]["epochs"] = 11
    assert rp.identity(json.dumps(old)) != rp.identity(json.dumps(now))


def test_shortest_order_puts_the_paper_profiles_cheap_claims_before_its_1600_unit_networks():
    """``--order shortest``: in the paper profile every step that does not read the 1600-unit networks or
    the CIFAR-10 net starts before them (so a budgeted GPU run scores those claims first), an analysis
    right after the costliest step it reads, a stack as the sum of its members; the counted work grows
    with the model, the epochs and the mode."""
    from tui_adv.reproduce.order import ordered, step_work

    steps = rp.suite("paper")
    work = step_work(steps, "paper")
    order = [s.key for s in ordered(steps, "paper", "shortest")]
    assert sorted(order) == sorted(s.key for s in steps)
    big = {k for k in order if k.startswith("maxout1600") or k.startswith("cifar")}
    first_big = min(order.index(k) for k in big)
    reads_big = {s.key for s in steps if any(p in big for p in s.needs)}
    assert reads_big and all(order.index(s.key) < first_big for s in steps if s.key not in big | reads_big)
    assert all(order.index(p) < order.index(s.key) for s in steps for p in s.needs)  # parents first
    assert order.index("ensemble") == order.index("ensemble@s11") + 1  # the analysis right after its last member
    assert order.index("ensemble@s11") < order.index("maxout") < order.index("maxout1600")
    stacked = [s.key for s in ordered(steps, "paper", "shortest", rp.stack_groups(steps, "paper"))]
    assert order.index("ensemble@s0") < order.index("maxout_uniform_noise")
    assert stacked.index("ensemble@s0") > stacked.index("maxout_uniform_noise")  # 12 members' work as one step
    assert work["maxout_adv"] > work["maxout"] > work["maxout_l1"] > work["softmax"] > 0 == work["ensemble"]
    assert work["maxout1600_adv_es@s0"] > work["maxout1600"]
    assert [s.key for s in ordered(steps, "paper", "suite")] == [s.key for s in steps]
    with pytest.raises(ValueError, match="unknown order"):
        ordered(steps, "paper", "longest")


def test_a_shortest_first_suite_runs_its_parents_first_and_gives_the_same_runs(tmp_path, monkeypatch, mnist_root):
    """The suite in the shortest order starts its cheapest ready step first, still runs a retrain after
    the run it retrains, and ends with the same runs (a second pass in the suite order reuses them all)."""
    small = {"data.train_limit": 600, "data.test_limit": 300, "sweep.epsilons": [0.0, 0.25], "sweep.samples": 0}
    steps = [
        rp.Step("soft_es", "softmax.toml",
                {**small, "train.epochs": 3, "data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 1}}, claims=["P01"]),
        rp.Step("soft_full", retrain_of="soft_es", claims=["P01"]),
        rp.Step("logreg", "logreg_3v7.toml", {**small, "train.epochs": 1}, claims=["P03"]),
    ]
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps)
    store = Store(str(tmp_path / "runs.db"))
    events: list[dict] = []
    ids = rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=events.append, order="shortest").run()
    started = [e["key"] for e in events if e["type"] == "step_start"]
    assert started == ["logreg", "soft_es", "soft_full"]
    assert store.get_run(ids["soft_full"]).parent_id == ids["soft_es"]
    again: list[dict] = []
    assert rp.Reproducer(store, "quick", data_dir=str(mnist_root), device="cpu", emit=again.append).run() == ids
    assert {e["status"] for e in again if e["type"] == "step_end"} == {"reused"}
