"""Bad input: each case is one line on stderr (``adv-tui: error: …``), a non-zero exit, no traceback, and
the catalog exactly as it was (every row of every table compared before and after).

Most cases run in this process through ``tui_adv.cli.main`` (the console script's entry point, so the
same error handling); a few run as real subprocesses to check the process-level behaviour too.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from _helpers import main_in_process

REPO = Path(__file__).resolve().parents[1]
SOFTMAX = str(REPO / "configs" / "softmax.toml")
TINY = ["--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=2"]
MNIST_GZ = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


_main = main_in_process


def snapshot(db: Path) -> dict:
    """Every row of every table (and the raw bytes when the file is not a readable SQLite catalog)."""
    if not db.exists():
        return {"missing": True}
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        out = {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
        con.close()
        return out
    except sqlite3.DatabaseError:
        return {"bytes": db.read_bytes()}


def assert_one_line_error(code: int, err: str, *needles: str) -> None:
    assert code not in (0, None), f"exit {code}, stderr: {err}"
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{err}"
    assert lines[0].startswith("adv-tui: error: "), lines[0]
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in lines[0].lower(), f"{n!r} not in {lines[0]!r}"


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def populated(tmp_path_factory, mnist_root):
    """A catalog with a completed run (1) and a cancelled one with a checkpoint (2)."""
    from tui_adv.catalog import Store
    from tui_adv.config import load_config
    from tui_adv.runner import Runner

    base = tmp_path_factory.mktemp("bad-input")
    db = base / "runs.db"
    store = Store(str(db))
    cfg = load_config(SOFTMAX, TINY[1::2])
    r = Runner(cfg, store, data_dir=str(mnist_root))
    r.create()
    assert r.execute() == "completed"
    stop = threading.Event()
    r2 = Runner(cfg, store, data_dir=str(mnist_root), stop_event=stop)
    r2.emit = lambda e: stop.set() if e["type"] == "epoch_end" else None
    r2.create()
    assert r2.execute() == "cancelled"
    assert store.get_run(2).checkpoint_path
    store.close()
    return db


@pytest.fixture
def db(populated, tmp_path):
    """A private copy of the populated catalog (and of run 2's checkpoint) per test."""
    from tui_adv.catalog import Store

    target = tmp_path / "runs.db"
    src = sqlite3.connect(populated)
    dst = sqlite3.connect(target)
    src.backup(dst)
    src.close()
    ck = Path(Store(str(populated)).get_run(2).checkpoint_path)
    own = tmp_path / "checkpoints" / ck.name
    own.parent.mkdir()
    shutil.copy(ck, own)
    dst.execute("UPDATE runs SET checkpoint_path = ? WHERE id = 2", (str(own),))
    dst.commit()
    dst.close()
    return target


def _ckpt(db: Path) -> Path:
    con = sqlite3.connect(db)
    (p,) = con.execute("SELECT checkpoint_path FROM runs WHERE id = 2").fetchone()
    con.close()
    return Path(p)


def check(capsys, db: Path, args: list[str], *needles: str) -> str:
    before = snapshot(db)
    code, out, err = _main(capsys, *args)
    assert_one_line_error(code, err, *needles)
    assert snapshot(db) == before, "the catalog changed"
    return err


# ------------------------------------------------------------------------------------------ configs
CONFIG_CASES = {
    "malformed_toml": ('name = "x"\n[model\nkind = "softmax"\n', [], "malformed TOML"),
    "unknown_key": ('[model]\nkind = "softmax"\ncolour = "red"\n', [], "model.colour: unknown key"),
    "unknown_section": ('[model]\nkind = "softmax"\n[trian]\nepochs = 3\n', [], "trian: unknown key"),
    "wrong_type": ('[model]\nkind = "softmax"\n[train]\nepochs = "ten"\n', [], "train.epochs"),
    "wrong_type_list": ('[model]\nkind = "softmax"\n[sweep]\nepsilons = 0.25\n', [], "sweep.epsilons"),
    "negative_sweep_eps": ('[model]\nkind = "softmax"\n[sweep]\nepsilons = [0, -0.1]\n', [], "sweep.epsilons"),
    "negative_train_eps": ('[model]\nkind = "softmax"\n[train]\nepsilon = -0.25\n', [], "train.epsilon"),
    "alpha_above_1": ('[model]\nkind = "softmax"\n[train]\nalpha = 1.5\n', [], "train.alpha"),
    "alpha_below_0": ('[model]\nkind = "softmax"\n[train]\nalpha = -0.1\n', [], "train.alpha"),
    "set_negative_eps": ('[model]\nkind = "softmax"\n', ["--set", "sweep.epsilons=[0,-.1]"], "sweep.epsilons"),
    "set_alpha": ('[model]\nkind = "softmax"\n', ["--set", "train.alpha=2"], "train.alpha"),
    "set_without_equals": ('[model]\nkind = "softmax"\n', ["--set", "train.epochs"], "--set expects"),
    "missing_model": ('name = "x"\n', [], "model: required key is missing"),
}


@pytest.mark.parametrize("case", sorted(CONFIG_CASES))
def test_bad_config(case, capsys, db, tmp_path):
    text, extra, needle = CONFIG_CASES[case]
    cfg = tmp_path / f"{case}.toml"
    cfg.write_text(text)
    check(capsys, db, ["run", str(cfg), "--headless", "--db", str(db), *extra], needle)


def test_missing_config_file(capsys, db, tmp_path):
    check(capsys, db, ["run", str(tmp_path / "nope.toml"), "--headless", "--db", str(db)], "config file not found", "nope.toml")


# ------------------------------------------------------------------------------------------ dataset
@pytest.fixture
def data_copy(tmp_path, mnist_root):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_GZ:
        shutil.copy(mnist_root / "MNIST" / "raw" / name, raw / name)
    return raw


def test_dataset_missing(capsys, db, tmp_path, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # no download, even with internet
    empty = tmp_path / "empty"
    empty.mkdir()
    check(capsys, db, ["run", SOFTMAX, "--headless", "--db", str(db), "--data-dir", str(empty)], "MNIST not found", str(empty))


def test_dataset_bad_md5(capsys, db, data_copy):
    p = data_copy / "t10k-labels-idx1-ubyte.gz"
    b = bytearray(p.read_bytes())
    b[len(b) // 2] ^= 0xFF
    p.write_bytes(bytes(b))
    check(capsys, db, ["run", SOFTMAX, "--headless", "--db", str(db), "--data-dir", str(data_copy.parents[1])], "md5 mismatch", p.name)


def test_dataset_truncated_gzip(capsys, db, data_copy):
    p = data_copy / "train-images-idx3-ubyte.gz"
    with open(p, "r+b") as f:
        f.truncate(p.stat().st_size // 3)
    check(capsys, db, ["run", SOFTMAX, "--headless", "--db", str(db), "--data-dir", str(data_copy.parents[1])], "corrupt", p.name)


def test_dataset_truncated_unpacked_files(capsys, db, data_copy, mnist_root):
    for name in MNIST_GZ:
        with gzip.open(data_copy / name) as src, open(data_copy / name[:-3], "wb") as dst:
            shutil.copyfileobj(src, dst)
    bad = data_copy / "t10k-images-idx3-ubyte"
    with open(bad, "r+b") as f:
        f.truncate(1000)
    check(capsys, db, ["run", SOFTMAX, "--headless", "--db", str(db), "--data-dir", str(data_copy.parents[1])], "truncated or corrupt", bad.name)


# ------------------------------------------------------------------------------------------ catalog
def test_catalog_not_a_database(capsys, tmp_path):
    bad = tmp_path / "runs.db"
    bad.write_bytes(b"this is not a SQLite file\n" * 100)
    for args in (["runs", "list"], ["runs", "show", "1"], ["resume", "1", "--headless"], ["run", SOFTMAX, "--headless", *TINY]):
        check(capsys, bad, [*args, "--db", str(bad)], "corrupt or not a SQLite database")


def test_catalog_truncated(capsys, populated, tmp_path):
    bad = tmp_path / "runs.db"
    shutil.copy(populated, bad)
    with open(bad, "r+b") as f:
        f.truncate(8192)
    check(capsys, bad, ["runs", "show", "1", "--db", str(bad)], "corrupt")


@pytest.mark.parametrize("where", ["directory", "missing_parent", "read_only_fs"])
def test_catalog_unwritable(where, capsys, tmp_path, mnist_root):
    target = {
        "directory": tmp_path,
        "missing_parent": tmp_path / "no" / "such" / "dir" / "runs.db",
        "read_only_fs": Path("/proc/adv-tui-test/runs.db"),
    }[where]
    if where == "read_only_fs" and not Path("/proc").is_dir():
        pytest.skip("no /proc")
    check(capsys, tmp_path / "unused.db", ["run", SOFTMAX, "--headless", "--db", str(target), *TINY], "catalog")
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root can write read-only files")
def test_catalog_read_only_file(capsys, db):
    os.chmod(db, 0o444)
    os.chmod(db.parent, 0o555)
    try:
        check(capsys, db, ["run", SOFTMAX, "--headless", "--db", str(db), *TINY], "catalog")
    finally:
        os.chmod(db.parent, 0o755)
        os.chmod(db, 0o644)


def test_database_url_unreachable(capsys, tmp_path):
    url = "postgresql://nobody:secret@127.0.0.1:1/x"
    for args in (["runs", "list"], ["run", SOFTMAX, "--headless", *TINY]):
        err = check(capsys, tmp_path / "unused.db", [*args, "--db", url], "postgresql://nobody")
        assert "secret" not in err  # the password is not echoed


def test_database_url_unknown_dialect(capsys, tmp_path):
    check(capsys, tmp_path / "unused.db", ["runs", "list", "--db", "nosuchdb://x/y"], "nosuchdb://x/y")


# ------------------------------------------------------------------------------------------ run ids
@pytest.mark.parametrize("args", [["runs", "show", "99"], ["runs", "export", "99"], ["resume", "99", "--headless"]])
def test_unknown_run_id(args, capsys, db):
    check(capsys, db, [*args, "--db", str(db)], "no run with id 99")


# ------------------------------------------------------------------------------------------ resume
@pytest.mark.parametrize("rid, why", [("99", "no run with id 99"), ("1", "already completed")])
def test_resume_without_headless_checks_before_opening_the_dashboard(rid, why, capsys, db, monkeypatch):
    """``adv-tui resume ID`` (no --headless) refuses a run it cannot resume in one line, before any
    terminal is taken over; a resumable one opens the dashboard with the resume requested."""
    import tui_adv.tui.app as tui_app

    opened = []
    monkeypatch.setattr(tui_app, "run_app", lambda **kw: opened.append(kw))
    check(capsys, db, ["resume", rid, "--db", str(db)], why)
    assert opened == []
    code, _out, err = _main(capsys, "resume", "2", "--db", str(db), "--device", "cpu")
    assert code == 0, err
    assert len(opened) == 1 and opened[0]["resume"] == (2, "cpu")


def test_resume_completed_run(capsys, db):
    check(capsys, db, ["resume", "1", "--headless", "--db", str(db)], "already completed")


def test_resume_missing_checkpoint(capsys, db):
    _ckpt(db).unlink()
    check(capsys, db, ["resume", "2", "--headless", "--db", str(db)], "has no checkpoint")


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_resume_corrupt_checkpoint(damage, capsys, db):
    p = _ckpt(db)
    if damage == "truncated":
        with open(p, "r+b") as f:
            f.truncate(p.stat().st_size // 2)
    elif damage == "garbage":
        p.write_bytes(os.urandom(4096))
    else:
        p.write_bytes(b"")
    check(capsys, db, ["resume", "2", "--headless", "--db", str(db)], "corrupt or unreadable")


def test_resume_checkpoint_of_another_model(capsys, db):
    p = _ckpt(db)
    state = torch.load(p, weights_only=True)
    state["model"] = {"linear.weight": torch.zeros(3, 3), "linear.bias": torch.zeros(3)}
    torch.save(state, p)
    check(capsys, db, ["resume", "2", "--headless", "--db", str(db)], "does not match")


def test_resume_checkpoint_missing_keys(capsys, db):
    p = _ckpt(db)
    torch.save({"model": {}}, p)
    check(capsys, db, ["resume", "2", "--headless", "--db", str(db)], "incomplete")


def test_resume_a_run_that_is_still_running(capsys, db):
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE id = 2", (os.getpid(), __import__("socket").gethostname()))
    con.commit()
    con.close()
    check(capsys, db, ["resume", "2", "--headless", "--db", str(db)], "still running")


# ------------------------------------------------------------------------------------------ device
@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is visible")
@pytest.mark.parametrize("args", [["run", SOFTMAX, "--headless", *TINY], ["resume", "2", "--headless"]])
def test_cuda_without_gpu(args, capsys, db):
    check(capsys, db, [*args, "--device", "cuda", "--db", str(db)], "no CUDA GPU")


def test_unknown_device(capsys, db):
    check(capsys, db, ["run", SOFTMAX, "--headless", "--device", "tpu", "--db", str(db)], "--device")


# ------------------------------------------------------------------------------------------ real processes
@pytest.mark.slow
@pytest.mark.parametrize(
    "args,needle",
    [
        (["run", "{tmp}/bad.toml", "--headless"], "malformed TOML"),
        (["resume", "2", "--headless"], "has no checkpoint"),
        (["runs", "list", "--db", "postgresql://nobody@127.0.0.1:1/x"], "postgresql://nobody@127.0.0.1:1/x"),
    ],
)
def test_real_process_prints_one_line_and_exits_2(args, needle, db, tmp_path):
    (tmp_path / "bad.toml").write_text("[model\n")
    _ckpt(db).unlink()
    before = snapshot(db)
    argv = [a.format(tmp=tmp_path) for a in args]
    if "--db" not in argv:
        argv += ["--db", str(db)]
    p = subprocess.run([sys.executable, "-m", "tui_adv.cli", *argv], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2
    assert_one_line_error(p.returncode, p.stderr, needle)
    assert p.stdout == ""
    assert snapshot(db) == before


# ------------------------------------------------------------------------------------------ fuzz
KEYS = {
    None: ["name", "description", "claims", "experiment", "seed", "device", "profile", "data", "model", "train", "sweep", "bogus"],
    "data": ["pair", "validation", "train_limit", "test_limit", "bogus"],
    "model": ["kind", "units", "pieces", "layers", "input_dropout", "hidden_dropout", "init_range", "max_col_norm", "init_beta", "width"],
    "train": [
        "epochs", "batch_size", "optimizer", "lr", "lr_decay", "min_lr", "momentum", "final_momentum", "momentum_saturate",
        "weight_decay", "mode", "alpha", "epsilon", "l1", "augment_ratio", "augment_after", "early_stopping", "eval_adv",
        "eval_limit", "checkpoint_every",
    ],
    "sweep": ["enabled", "epsilons", "labels", "batch_size", "samples", "sample_epsilons"],
    "early_stopping": ["metric", "patience"],
}  # fmt: skip
WORDS = ["softmax", "logistic", "maxout", "rbf", "inception", "clean", "adversarial", "analytic", "augment", "sgd", "adam", "true",
         "predicted", "cpu", "cuda", "auto", "valid_error", "valid_adv_error", "", "x"]  # fmt: skip
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.text(max_size=8),
)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=8)


def section(name):
    keys = st.sampled_from(KEYS[name])
    if name == "train":
        val = st.one_of(values, st.builds(dict, st.dictionaries(st.sampled_from(KEYS["early_stopping"]), values, max_size=2)))
    else:
        val = values
    return st.dictionaries(keys, val, max_size=6)


raw_configs = st.fixed_dictionaries(
    {},
    optional={
        "name": st.one_of(st.text(max_size=5), values),
        "model": st.one_of(section("model"), values),
        "data": st.one_of(section("data"), values),
        "train": st.one_of(section("train"), values),
        "sweep": st.one_of(section("sweep"), values),
        "seed": values,
        "device": values,
        "bogus": values,
    },
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.one_of(raw_configs, values))
def test_fuzz_validate_only_raises_user_error(raw):
    from tui_adv.config import RunConfig, validate
    from tui_adv.errors import UserError

    try:
        cfg = validate(raw, "<fuzz>")
    except UserError as e:
        msg = str(e)
        assert msg.startswith("invalid config <fuzz>") and "\n" not in msg
    else:
        assert isinstance(cfg, RunConfig)
        # whatever validates must survive the catalog round trip (resume rebuilds the config from JSON)
        from tui_adv.config import config_from_json

        assert config_from_json(cfg.to_json()) == cfg


@settings(max_examples=300, deadline=None)
@given(overrides=st.lists(st.text(alphabet="abcdefghijklmnopqrstuvwxyz._=[]{},-+0123456789 \"'", max_size=24), max_size=4))
def test_fuzz_overrides_only_raise_user_error(overrides):
    from tui_adv.config import apply_overrides, validate
    from tui_adv.errors import UserError

    try:
        validate(apply_overrides({"name": "x", "model": {"kind": "softmax"}}, overrides))
    except UserError as e:
        assert "\n" not in str(e)


def test_resume_on_another_device_than_it_trained_on(capsys, db):
    """Run 2 trained on the CPU; its generator states do not fit a CUDA generator. Without --device the
    resume picks the CPU by itself (also where a GPU is visible); asking for another device is refused."""
    con = sqlite3.connect(db)
    con.execute("UPDATE runs SET device = 'cuda:0' WHERE id = 2")  # pretend it trained on a GPU
    con.commit()
    con.close()
    check(capsys, db, ["resume", "2", "--headless", "--device", "cpu", "--db", str(db)], "was trained on cuda", "--device cuda")
