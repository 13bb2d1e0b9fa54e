"""A tiny end-to-end run per dataset (a few hundred images written in the official formats) through
``adv-tui run --headless --json``; ``adv-tui data --dataset``; the dataset shown and filtered in
``runs list`` / ``runs show`` / the report; and claims: a run on another dataset never fills a paper
claim, the CIFAR-10 claim C01 is filled by its own config's run and NOT RUN (skipped by the suite) while
the root has no CIFAR-10."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _datasets import tree, write_cifar_root, write_idx_root
from _helpers import main_in_process

from tui_adv.catalog import Store
from tui_adv.core.data import DATASETS

REPO = Path(__file__).resolve().parents[1]
TINY = ["train.epochs=1", "train.eval_limit=50", "sweep.epsilons=[0,0.1,0.25]", "sweep.samples=2", "sweep.sample_epsilons=[0.1]"]
CASES = {
    "fashion_softmax": ("fashion_mnist", []),
    "kmnist_softmax": ("kmnist", []),
    "fashion_maxout": ("fashion_mnist", ["model.units=20", "sweep.matrix=false"]),
    "fashion_maxout_adv": ("fashion_mnist", ["model.units=20", "sweep.matrix=false"]),
    "cifar10_conv_maxout": ("cifar10", ["model.scale=0.05", "train.batch_size=50", "sweep.batch_size=100"]),
}


@pytest.fixture
def root(tmp_path, monkeypatch):
    """One root holding every fixture dataset but MNIST (300 training, 100 test images each), their md5s
    installed in the dataset table; downloads fail at once."""
    import torchvision.datasets as tvd

    for cls in (tvd.MNIST, tvd.FashionMNIST, tvd.KMNIST):
        monkeypatch.setattr(cls, "mirrors", ["http://127.0.0.1:9/"])
    monkeypatch.setattr(tvd.CIFAR10, "url", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    monkeypatch.setenv("ADV_TUI_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "data"
    for name in ("fashion_mnist", "kmnist"):
        monkeypatch.setitem(DATASETS, name, write_idx_root(root, name, seed=len(name)))
    monkeypatch.setitem(DATASETS, "cifar10", write_cifar_root(root))
    return root


def _run(capsys, db: Path, root: Path, config: str, *sets: str) -> tuple[int, dict | None, str]:
    argv = ["run", str(REPO / "configs" / f"{config}.toml"), "--headless", "--json", "-q", "--device", "cpu", "--db", str(db), "--data-dir", str(root)]
    for s in sets:
        argv += ["--set", s]
    code, out, err = main_in_process(capsys, *argv)
    return code, (json.loads(out) if out.strip() else None), err


@pytest.mark.parametrize("config", list(CASES))
def test_tiny_run_per_dataset(config, root, tmp_path, capsys):
    dataset, extra = CASES[config]
    before = tree(root)
    code, doc, err = _run(capsys, tmp_path / "runs.db", root, config, *TINY, *extra)
    assert code == 0, err
    assert doc["status"] == "completed"
    assert tree(root) == before, "the data root was written"
    (sweep,) = [s for s in doc["sweeps"] if s["labels"] == "true"]
    pts = {p["epsilon"]: p for p in sweep["points"]}
    assert set(pts) == {0.0, 0.1, 0.25} and all(p["n"] == 100 for p in pts.values())
    assert 0.0 <= doc["metrics"]["clean_error"] <= 1.0
    store = Store(str(tmp_path / "runs.db"))
    run = store.get_run(doc["run_id"])
    assert json.loads(run.config_json)["data"]["dataset"] == dataset
    side = 3 * 32 * 32 if dataset == "cifar10" else 28 * 28
    samples = store.samples(doc["run_id"])
    assert len(samples) == 2 and all(len(s.clean) == len(s.sign) == len(s.adversarial) == side for s in samples)
    store.close()
    # runs show draws the views (grey when stdout is not a colour terminal) and names the dataset
    code, out, err = main_in_process(capsys, "runs", "show", str(doc["run_id"]), "--db", str(tmp_path / "runs.db"))
    assert code == 0, err
    assert f"dataset {dataset}" in " ".join(out.split()) and "damaged" not in out and "sign(∇x J), ε=0.1" in out


def test_a_run_needs_its_own_dataset(root, tmp_path, capsys):
    """configs/softmax.toml is MNIST's: this root has none, so it is one line and no run row; the
    fashion config on a root without Fashion-MNIST likewise."""
    db = tmp_path / "runs.db"
    code, out, err = main_in_process(capsys, "run", str(REPO / "configs" / "softmax.toml"), "--headless", "--db", str(db), "--data-dir", str(root))
    assert code == 2 and "MNIST not found in" in err and str(root / "MNIST" / "raw") in err and len(err.strip().splitlines()) == 1
    (tmp_path / "empty").mkdir()
    code, out, err = main_in_process(capsys, "run", str(REPO / "configs" / "fashion_softmax.toml"), "--headless", "--db", str(db),
                                     "--data-dir", str(tmp_path / "empty"))
    assert code == 2 and str(tmp_path / "empty" / "FashionMNIST" / "raw") in err and "train-images-idx3-ubyte.gz" in err
    assert not db.exists() or not Store(str(db)).list_runs()


def test_data_command_checks_each_dataset(root, tmp_path, capsys):
    for name, title in (("fashion_mnist", "Fashion-MNIST"), ("kmnist", "KMNIST"), ("cifar10", "CIFAR-10")):
        code, out, err = main_in_process(capsys, "data", "--dataset", name, "--data-dir", str(root))
        assert code == 0, err
        assert out.startswith(f"{title} ok in {root}: 300 train, 100 test images")
    code, out, err = main_in_process(capsys, "data", "--dataset", "cifar10", "--data-dir", str(root), "--json")
    assert json.loads(out)["shape"] == [3, 32, 32]
    code, out, err = main_in_process(capsys, "data", "--data-dir", str(root))  # MNIST by default: not in this root
    assert code == 2 and str(root / "MNIST" / "raw") in err
    (root / "cifar-10-batches-py" / "test_batch").write_bytes(b"garbage")
    code, out, err = main_in_process(capsys, "data", "--dataset", "cifar10", "--data-dir", str(root))
    assert code == 2 and "corrupt" in err and "test_batch" in err and len(err.strip().splitlines()) == 1
    code, out, err = main_in_process(capsys, "data", "--dataset", "svhn", "--data-dir", str(root))
    assert code == 2


def test_other_datasets_never_fill_a_paper_claim(root, tmp_path, capsys, monkeypatch):
    """configs/softmax.toml on Fashion-MNIST is a different experiment from P01's; the same run with its
    stored dataset set back to MNIST would fill P01 (so the dataset is what keeps it out). The CIFAR-10
    run of configs/cifar10_conv_maxout.toml's experiment (at the quick profile's size) fills C01."""
    from tui_adv.claims import scorecard

    db = tmp_path / "runs.db"
    code, doc, err = _run(capsys, db, root, "softmax", "data.dataset=fashion_mnist", *TINY)
    assert code == 0, err
    store = Store(str(db))
    by_id = {r.id: r for r in scorecard(store)}
    assert all(r.verdict == "NOT RUN" for r in by_id.values()), {k: r.verdict for k, r in by_id.items() if r.verdict != "NOT RUN"}
    # the control: the same rows, the stored config saying MNIST, as configs/softmax.toml would have run it
    from tui_adv.config import load_config

    run = store.get_run(doc["run_id"])
    mnist_cfg = load_config(REPO / "configs" / "softmax.toml").to_json()
    store.update_run(run.id, config_json=mnist_cfg)
    assert scorecard(store, ["quick"])[0].runs == [run.id]
    store.update_run(run.id, config_json=run.config_json)
    # C01: the quick profile's step, run on the fixtures (with a tiny network, so it fits a test)
    import tui_adv.reproduce as rp

    orig = rp.step_config

    def tiny(step, profile, src=None):  # noqa: ANN001, ANN202
        cfg = orig(step, profile, src)
        return cfg.model_copy(update={"model": cfg.model.model_copy(update={"scale": 0.05})}) if step.key == "cifar10_conv_maxout" else cfg

    events = []
    rep = rp.Reproducer(store, "quick", only=["C01"], data_dir=str(root), device="cpu", emit=events.append)
    assert [s.key for s in rep.steps] == ["cifar10_conv_maxout"]
    monkeypatch.setattr(rp.orchestrator, "step_config", tiny)
    ids = rep.run()
    monkeypatch.setattr(rp.orchestrator, "step_config", orig)
    assert "cifar10_conv_maxout" in ids, events[-3:]
    c01 = {r.id: r for r in scorecard(store, ["quick"])}["C01"]
    assert c01.verdict in ("PASS", "FAIL") and c01.runs == [ids["cifar10_conv_maxout"]]
    assert {r.id: r for r in scorecard(store, ["quick"])}["P01"].verdict == "NOT RUN"
    store.close()


def test_the_suite_skips_cifar_without_the_data(tmp_path, capsys):
    """No CIFAR-10 (and no MNIST, which C01 does not need) in the root: `reproduce --only C01` skips the
    step with the line that says what to put where, exits 0, and C01 stays NOT RUN with a note that says
    the same."""
    (tmp_path / "empty").mkdir()
    db = tmp_path / "runs.db"
    code, out, err = main_in_process(capsys, "reproduce", "--only", "C01", "--profile", "quick", "--headless", "--json", "--db", str(db),
                                     "--data-dir", str(tmp_path / "empty"))
    assert code == 0, err
    assert "cifar10_conv_maxout: skipped (CIFAR-10 not found in" in " ".join(err.split()) and "data_batch_1" in err
    c01 = next(c for c in json.loads(out)["claims"] if c["id"] == "C01")
    assert c01["verdict"] == "NOT RUN" and "cifar-10-batches-py" in c01["note"]
    assert not Store(str(db)).list_runs()


def test_runs_list_and_the_report_show_the_dataset(root, tmp_path, capsys):
    db = tmp_path / "runs.db"
    for config in ("fashion_softmax", "kmnist_softmax"):
        code, _doc, err = _run(capsys, db, root, config, *TINY, "sweep.samples=0")
        assert code == 0, err
    store = Store(str(db))
    store.create_run(name="old", experiment="softmax", config_json=json.dumps({"name": "old", "model": {"kind": "softmax"}}), status="completed")
    store.close()
    code, out, err = main_in_process(capsys, "runs", "list", "--json", "--db", str(db))
    assert [r["dataset"] for r in json.loads(out)] == ["mnist", "kmnist", "fashion_mnist"]
    for name, want in (("kmnist", ["kmnist"]), ("fashion_mnist", ["fashion_mnist"]), ("mnist", ["mnist"]), ("cifar10", [])):
        code, out, err = main_in_process(capsys, "runs", "list", "--json", "--dataset", name, "--db", str(db))
        assert code == 0, err
        assert [r["dataset"] for r in json.loads(out)] == want, name
    from tui_adv.claims import Result
    from tui_adv.report import markdown

    store = Store(str(db))
    md = markdown(store, [Result("X", "t", "quick", "p", "m", "PASS", None, [1, 2, 3])])
    assert "| 1 | fashion_softmax | fashion_mnist |" in md and "| 2 | kmnist_softmax | kmnist |" in md and "| 3 | softmax | mnist |" in md
    store.close()


def test_cifar_views_in_colour_on_a_colour_terminal(root, tmp_path, capsys, monkeypatch):
    db = tmp_path / "runs.db"
    code, doc, err = _run(capsys, db, root, "cifar10_conv_maxout", *TINY, *CASES["cifar10_conv_maxout"][1])
    assert code == 0, err
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("COLORTERM", "truecolor")
    monkeypatch.delenv("NO_COLOR", raising=False)
    code, out, err = main_in_process(capsys, "runs", "show", str(doc["run_id"]), "--db", str(db), "--samples", "1")
    assert code == 0, err
    rows = [line for line in out.splitlines() if "▀" in line and "\x1b[38;2;" in line]
    assert len(rows) == 16  # one 32×32 view is 16 text rows; the three images share them
    store = Store(str(db))
    s = store.samples(doc["run_id"])[0]
    r, g, b = s.clean[0], s.clean[1024], s.clean[2048]
    assert f"\x1b[38;2;{r};{g};{b}" in rows[0]  # the first pixel in its own colour
    store.close()
