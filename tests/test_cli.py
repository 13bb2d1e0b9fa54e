"""End to end through the CLI on real MNIST (subprocess), the runs commands, errors, and load_model."""

from __future__ import annotations

import csv
import io
import json
import math
import sqlite3
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
POINT_KEYS = {"epsilon", "accuracy", "error", "mean_confidence", "mean_confidence_wrong", "n"}
SMALL = ["--set", "data.train_limit=2000", "--set", "data.test_limit=500", "--set", "train.epochs=2"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, mnist_root, cli):
    """One real headless run of configs/softmax.toml, shared by the tests of this module."""
    db = tmp_path_factory.mktemp("cli") / "runs.db"
    proc = cli("run", "configs/softmax.toml", "--headless", "--json", "--db", str(db), *SMALL)
    return db, proc


def _assert_user_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    err = proc.stderr.strip()
    assert "Traceback" not in proc.stderr, proc.stderr
    assert err.startswith("adv-tui: error: "), err
    assert len(err.splitlines()) == 1, err
    for n in needles:
        assert n in err, err
    assert proc.stdout.strip() == ""


def test_headless_run_json(e2e):
    db, proc = e2e
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)  # exactly one JSON document on stdout
    assert {"run_id", "status", "experiment", "metrics", "sweeps"} <= set(doc)
    assert doc["status"] == "completed" and doc["experiment"] == "softmax" and isinstance(doc["run_id"], int)
    m = doc["metrics"]
    assert m["epochs_run"] == 2 and 0 < m["clean_error"] < 0.3 and m["fgsm_error"] > 0.9
    assert {"train_loss", "test_error"} <= set(m) and "batch_loss" not in m
    assert len(doc["sweeps"]) == 1
    sweep = doc["sweeps"][0]
    assert sweep["attack"] == "fgsm"
    pts = sweep["points"]
    assert [p["epsilon"] for p in pts] == [0.0, 0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.225, 0.25, 0.3]
    for p in pts:
        assert set(p) == POINT_KEYS
        assert p["n"] == 500 and math.isclose(p["error"], 1 - p["accuracy"], abs_tol=1e-12)
        assert 0 < p["mean_confidence"] <= 1
        assert p["mean_confidence_wrong"] is None or 0 < p["mean_confidence_wrong"] <= 1
    assert pts[0]["error"] == m["clean_error"]
    assert next(p for p in pts if p["epsilon"] == 0.25)["error"] == m["fgsm_error"]
    assert [p["error"] for p in pts] == sorted(p["error"] for p in pts)
    assert doc["config"]["data"]["train_limit"] == 2000 and doc["config"]["train"]["epochs"] == 2


def test_run_is_in_the_catalog(e2e):
    db, proc = e2e
    run_id = json.loads(proc.stdout)["run_id"]
    con = sqlite3.connect(db)
    status, ckpt, device = con.execute("SELECT status, checkpoint_path, device FROM runs WHERE id = ?", (run_id,)).fetchone()
    assert status == "completed" and device == "cpu" and Path(ckpt).is_file()
    epochs = con.execute("SELECT step FROM metrics WHERE run_id = ? AND key = 'test_error' ORDER BY step", (run_id,)).fetchall()
    assert epochs == [(1,), (2,)]
    assert con.execute("SELECT count(*) FROM sweep_points WHERE run_id = ?", (run_id,)).fetchone()[0] == 12
    assert con.execute("SELECT count(*) FROM samples WHERE run_id = ?", (run_id,)).fetchone()[0] == 16 * 2
    assert con.execute("SELECT count(*) FROM metrics WHERE run_id = ? AND key = 'batch_loss'", (run_id,)).fetchone()[0] > 0
    con.close()


def test_runs_list_show_export(e2e, cli):
    db, proc = e2e
    run_id = json.loads(proc.stdout)["run_id"]

    lst = cli("runs", "list", "--json", "--db", str(db))
    assert lst.returncode == 0, lst.stderr
    rows = json.loads(lst.stdout)
    assert [r["run_id"] for r in rows] == [run_id] and rows[0]["status"] == "completed"
    assert rows[0]["clean_error"] == json.loads(proc.stdout)["metrics"]["clean_error"]

    show = cli("runs", "show", str(run_id), "--json", "--db", str(db))
    assert show.returncode == 0, show.stderr
    doc = json.loads(show.stdout)
    original = json.loads(proc.stdout)
    assert doc["sweeps"] == original["sweeps"] and doc["metrics"] == original["metrics"]

    ex = cli("runs", "export", str(run_id), "--format", "json", "--db", str(db))
    assert ex.returncode == 0, ex.stderr
    exported = json.loads(ex.stdout)
    assert exported["sweeps"] == original["sweeps"]
    assert any(r["key"] == "test_error" and r["step"] == 2 for r in exported["metric_rows"])

    ex = cli("runs", "export", str(run_id), "--format", "csv", "--db", str(db))
    assert ex.returncode == 0, ex.stderr
    rows = list(csv.DictReader(io.StringIO(ex.stdout)))
    assert set(rows[0]) == {"run_id", "table", "attack", "labels", "key", "step", "epsilon", "value"}
    sweep_err = {float(r["epsilon"]): float(r["value"]) for r in rows if r["table"] == "sweep" and r["key"] == "error"}
    assert sweep_err == {p["epsilon"]: p["error"] for p in original["sweeps"][0]["points"]}
    assert any(r["table"] == "metric" and r["key"] == "train_loss" for r in rows)


def test_load_model_reproduces_clean_error(e2e, mnist_root):
    import tui_adv
    from tui_adv.core.data import load_mnist
    from tui_adv.core.sweep import evaluate

    db, proc = e2e
    doc = json.loads(proc.stdout)
    model = tui_adv.load_model(doc["run_id"], db=str(db))
    assert isinstance(model, torch.nn.Module)
    assert not any(m.training for m in model.modules())
    data = load_mnist(mnist_root, test_limit=500)
    with torch.no_grad():
        logits = model(data.test.x[:3])
    assert logits.shape == (3, 10)
    assert evaluate(model, data.test.x, data.test.y, batch_size=1000).error == doc["metrics"]["clean_error"]


def test_load_model_unknown_run(e2e):
    import tui_adv
    from tui_adv.errors import NotFoundError

    db, _ = e2e
    with pytest.raises(NotFoundError):
        tui_adv.load_model(999, db=str(db))


# ------------------------------------------------------------------------------------------ bad inputs
def test_missing_config(cli, tmp_path):
    _assert_user_error(cli("run", "configs/nope.toml", "--headless", "--db", str(tmp_path / "r.db")), "configs/nope.toml")
    assert not (tmp_path / "r.db").exists()


def test_unknown_key(cli, tmp_path):
    proc = cli("run", "configs/softmax.toml", "--headless", "--db", str(tmp_path / "r.db"), "--set", "train.epoch=3")
    _assert_user_error(proc, "train.epoch", "unknown key")
    assert not (tmp_path / "r.db").exists(), "an invalid config must not create a run"


def test_wrong_run_id(e2e, cli):
    db, _ = e2e
    _assert_user_error(cli("runs", "show", "999", "--db", str(db)), "999")
    _assert_user_error(cli("runs", "export", "999", "--format", "csv", "--db", str(db)), "999")


def test_bad_export_format(e2e, cli):
    db, proc = e2e
    _assert_user_error(cli("runs", "export", str(json.loads(proc.stdout)["run_id"]), "--format", "xml", "--db", str(db)), "--format")


def test_corrupt_catalog(cli, tmp_path):
    db = tmp_path / "runs.db"
    db.write_bytes(b"garbage, not sqlite" * 200)
    _assert_user_error(cli("runs", "list", "--db", str(db)), str(db))
    _assert_user_error(cli("runs", "show", "1", "--json", "--db", str(db)), str(db))


def test_missing_data_dir(cli, tmp_path):
    """No dataset and no network (mirrors unreachable): one line naming the directory, no run row."""
    proc = cli(
        "run", "configs/softmax.toml", "--headless", "--db", str(tmp_path / "r.db"), "--data-dir", str(tmp_path / "nodata"),
        env={"HTTPS_PROXY": "http://127.0.0.1:9", "HTTP_PROXY": "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9",
             "http_proxy": "http://127.0.0.1:9", "NO_PROXY": "", "no_proxy": ""},
    )
    _assert_user_error(proc, str(tmp_path / "nodata"))
