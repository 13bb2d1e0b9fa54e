"""adv-tui grid: the cross product of --vary values as a named group of runs, validated before anything is stored."""

from __future__ import annotations

import json
import sqlite3

import pytest

from tui_adv.errors import UserError
from tui_adv.grid import grid_points, parse_vary

TINY = ["--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=1",
        "--set", "sweep.samples=0", "--set", "sweep.epsilons=[0,.25]", "--set", "train.mode=adversarial"]
VARY = ["--vary", "train.alpha=0,.5", "--vary", "train.epsilon=.1,.25"]


def test_parse_vary_splits_values_outside_brackets():
    assert parse_vary(["train.alpha=0,.5", "sweep.epsilons=[0,.1],[.25]"]) == [
        ("train.alpha", ["0", ".5"]), ("sweep.epsilons", ["[0,.1]", "[.25]"])]
    for bad in (["train.alpha"], ["=1,2"], ["train.alpha=0,,1"], ["train.alpha=0,0.0"], ["name=a,b"], ["train.alpha=0", "train.alpha=1"]):
        with pytest.raises(UserError):
            parse_vary(bad)


def test_grid_points_are_the_validated_cross_product():
    pts = grid_points("configs/softmax.toml", parse_vary(["train.alpha=0,.5", "train.epsilon=.1,.25,.3"]), "g", ["train.mode=adversarial"])
    assert len(pts) == 6
    assert {(p.cfg.train.alpha, p.cfg.train.epsilon) for p in pts} == {(a, e) for a in (0, .5) for e in (.1, .25, .3)}
    assert {p.cfg.experiment for p in pts} == {"g"} and len({p.cfg.name for p in pts}) == 6


@pytest.mark.parametrize("vary,needle", [("train.bogus=1,2", "train.bogus"), ("train.alpha=0,2", "train.alpha"), ("train.alpha", "--vary")])
def test_bad_vary_is_one_line_and_stores_nothing(cli, tmp_path, vary, needle):
    db = tmp_path / "runs.db"
    proc = cli("grid", "configs/softmax.toml", "--vary", vary, "--db", str(db), *TINY)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("adv-tui: error: ") and len(err.splitlines()) == 1 and needle in err, err
    assert not db.exists()


def _results(db, group):
    con = sqlite3.connect(db)
    try:
        rows = con.execute("SELECT id, name, status, clean_error, fgsm_error FROM runs WHERE experiment = ? ORDER BY id", (group,)).fetchall()
        out = {}
        for rid, name, status, clean, fgsm in rows:
            metrics = con.execute("SELECT key, step, value FROM metrics WHERE run_id = ? AND key != 'batch_loss' ORDER BY key, step", (rid,)).fetchall()
            sweep = con.execute("SELECT attack, labels, gradient, mask, epsilon, accuracy, error, mean_confidence FROM sweep_points"
                                " WHERE run_id = ? ORDER BY attack, labels, gradient, mask, epsilon", (rid,)).fetchall()
            point = name.split(" ", 1)[1]
            out[point] = (status, clean, fgsm, metrics, sweep)
        return out
    finally:
        con.close()


def test_four_point_grid_completes_and_repeats_exactly(cli, mnist_root, tmp_path):
    db = tmp_path / "runs.db"
    a = cli("grid", "configs/softmax.toml", *VARY, "--name", "ga", "--jobs", "2", "--json", "--db", str(db), *TINY, timeout=600)
    assert a.returncode == 0, a.stderr[-3000:]
    doc = json.loads(a.stdout)
    assert doc["group"] == "ga" and [r["status"] for r in doc["runs"]] == ["completed"] * 4
    assert [r["point"] for r in doc["runs"]] == [{"train.alpha": x, "train.epsilon": e} for x in ("0", ".5") for e in (".1", ".25")]
    # again, the same way (the pool's workers run 1 torch thread each where this process would run
    # one per core, and a different thread count sums in a different order: not bit-identical)
    b = cli("grid", "configs/softmax.toml", *VARY, "--name", "gb", "--jobs", "2", "--db", str(db), *TINY, timeout=600)
    assert b.returncode == 0, b.stderr[-3000:]
    ra, rb = _results(db, "ga"), _results(db, "gb")
    assert len(ra) == 4 and ra.keys() == rb.keys()
    assert all(v[0] == "completed" and v[3] and v[4] for v in ra.values())
    assert ra == rb  # same seeds, same points: the same metrics and sweeps to the last bit
    listed = cli("runs", "list", "--group", "ga", "--json", "--db", str(db))
    assert listed.returncode == 0, listed.stderr
    assert sorted(r["run_id"] for r in json.loads(listed.stdout)) == sorted(r["run_id"] for r in doc["runs"])


def test_one_job_grid_runs_in_this_process(cli, mnist_root, tmp_path):
    db = tmp_path / "runs.db"
    proc = cli("grid", "configs/softmax.toml", "--vary", "seed=1,2", "--name", "gs", "--db", str(db), *TINY, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [v[0] for v in _results(db, "gs").values()] == ["completed"] * 2
