"""Random argv for every command (issue #15): ids, database URLs, ``--set`` paths and values, names with
markup and control characters, data directories, devices, formats. Whatever comes in:

- the exit code is 0, 1 or 2 and there is no traceback (nor an "internal error");
- exit 2 (bad input) is exactly one line on stderr, ``adv-tui: error: …``;
- a read-only command (runs list/show/export, report, data, --help) leaves the catalog's rows as they were.

It runs in this process (``tests/_helpers.main_in_process``, the console script's entry point), with a
bounded number of examples so it stays well under a minute. Commands that would train are kept tiny by
overrides placed last (``train.epochs=0``, no sweep, 50 images), so a valid random config runs in a
fraction of a second; ``reproduce`` always gets a claim id that does not exist.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from _helpers import catalog_rows, main_in_process

REPO = Path(__file__).resolve().parents[1]
SOFTMAX = str(REPO / "configs" / "softmax.toml")
LAST = ["--set", "train.epochs=0", "--set", "sweep.enabled=false", "--set", "data.train_limit=50", "--set", "data.test_limit=20"]
EXAMPLES = int(os.environ.get("ADV_TUI_FUZZ_EXAMPLES", "120"))  # more for a deeper run, e.g. 2000


@pytest.fixture(scope="module")
def world(tmp_path_factory, mnist_root):
    """A read-only catalog (a completed and a cancelled run), a scratch copy for commands that write,
    a malformed config, and a working directory for the relative paths the fuzzer makes up."""
    from tui_adv.catalog import Store
    from tui_adv.config import validate
    from tui_adv.runner import Runner

    base = tmp_path_factory.mktemp("fuzz")
    ro = base / "ro.db"
    store = Store(str(ro))
    cfg = validate({"name": "fz", "model": {"kind": "softmax"}, "data": {"train_limit": 200, "test_limit": 50}, "train": {"epochs": 2}, "sweep": {"epsilons": [0, 0.25], "samples": 1}})
    Runner(cfg, store, data_dir=str(mnist_root)).execute()
    stop = threading.Event()
    r = Runner(cfg, store, data_dir=str(mnist_root), stop_event=stop)
    r.emit = lambda e: stop.set() if e["type"] == "batch" and e["epoch"] == 2 else None
    r.execute()
    store.close()
    scratch = base / "scratch.db"
    src, dst = sqlite3.connect(ro), sqlite3.connect(scratch)
    src.backup(dst)
    src.close()
    dst.close()
    (base / "bad.toml").write_text('name = "x"\n[model\n')
    (base / "work").mkdir()
    mp = pytest.MonkeyPatch()
    from torchvision.datasets import MNIST

    mp.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])  # a made-up data dir never downloads for real
    mp.chdir(base / "work")  # made-up relative paths (--db, -o, --data-dir) land here
    mp.setenv("COLUMNS", "120")
    yield {"base": base, "ro": ro, "scratch": scratch, "mnist": str(mnist_root)}
    mp.undo()
    shutil.rmtree(base / "work", ignore_errors=True)


# ------------------------------------------------------------------------------------------ strategies
NASTY = ["[/]", "[bold]x[/bold]", "\x1b[2J", "a\nb", "\t", "\x00", "\u202e", "[link=file:///etc/passwd]x", "\\", '"', "'", "é", "🙂"]
ids = st.one_of(
    st.sampled_from(["1", "2"]),  # the runs that exist, often enough that show/export/resume really run
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
    st.sampled_from(["1", "2", "3", "0", "-1", "abc", "1e3", "", " 1", "0x10", "١", "9223372036854775807", "9223372036854775808"]),
    st.text(max_size=6),
)
words = st.one_of(st.sampled_from(NASTY), st.text(max_size=8))
relative = st.text(alphabet=st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",)), min_size=1, max_size=10).map(lambda s: s.strip(".") or "x")
KEYS = [
    "name", "seed", "device", "experiment", "bogus", "data.pair", "data.validation", "data.train_limit", "model.kind", "model.units",
    "model.pieces", "model.init_range", "train.lr", "train.epochs", "train.weight_decay", "train.epsilon", "train.alpha", "train.mode",
    "train.batch_size", "train.momentum", "train.early_stopping.patience", "sweep.epsilons", "sweep.labels", "sweep.samples", "a.b.c", "",
    "train", ".", "..", "name.x",
]  # fmt: skip
VALUES = [
    "inf", "-inf", "nan", "1e20", "1e400", "-1", "0", "true", "false", "[3,7]", '["3","7"]', "[0,.1,.25]", "[]", "{}", '"[/]"',
    '"a\\u001bb"', "99999999999999999999", "0.5", ".25", "softmax", "maxout", "inception", "adversarial", "{patience = 2}", "[[1]]", '"x"',
]  # fmt: skip
set_values = st.one_of(st.sampled_from(VALUES), words, st.integers(min_value=-(2**70), max_value=2**70).map(str), st.floats().map(repr))
overrides = st.lists(
    st.one_of(
        st.tuples(st.sampled_from(KEYS), set_values).map(lambda kv: f"{kv[0]}={kv[1]}"),
        st.builds(lambda n: f"name={n!r}".replace("'", '"'), st.one_of(st.sampled_from(NASTY), st.text(max_size=12))),
        words,  # no "=" at all
    ),
    max_size=3,
)


def _db_choice(world, *, read_only: bool = True) -> st.SearchStrategy:
    main = world["ro"] if read_only else world["scratch"]
    return st.one_of(
        st.just(str(main)),
        st.just(f"sqlite:///{main}"),
        st.sampled_from(["postgresql://me:pw@127.0.0.1:1/x", "nosuchdb://x/y", "sqlite:///no/such/dir/x.db", "sqlite://", "::", "http://x"]),
        relative,  # a fresh catalog file in the working directory
    )


@st.composite
def read_only(draw, world):
    """(argv, database the command reads)"""
    db = draw(_db_choice(world))
    kind = draw(st.sampled_from(["list", "show", "export", "report", "data", "help"]))
    if kind == "list":
        argv = ["runs", "list", *draw(st.sampled_from([[], ["--json"]]))]
        if draw(st.booleans()):
            argv += ["-n", draw(st.one_of(ids, st.integers(-5, 10**6).map(str)))]
        if draw(st.booleans()):
            argv += ["--status", draw(st.one_of(st.sampled_from(["running", "completed", "interrupted"]), words))]
    elif kind == "show":
        argv = ["runs", "show", draw(ids), *draw(st.sampled_from([[], ["--json"]]))]
        if draw(st.booleans()):
            argv += ["--samples", draw(st.one_of(ids, st.integers(-3, 5).map(str)))]
    elif kind == "export":
        argv = ["runs", "export", draw(ids), "--format", draw(st.one_of(st.sampled_from(["csv", "json"]), words))]
        if draw(st.booleans()):
            argv += ["-o", draw(relative)]
    elif kind == "report":
        argv = ["report", *draw(st.sampled_from([[], ["--json"], ["--markdown"]]))]
        if draw(st.booleans()):
            argv += ["--profile", draw(st.one_of(st.sampled_from(["quick", "paper"]), words))]
        if draw(st.booleans()):
            argv += ["--discussion", draw(relative)]
    elif kind == "data":
        return ["data", "--data-dir", draw(st.one_of(st.just(world["mnist"]), relative))], None
    else:
        argv = [draw(st.sampled_from(["runs", "run", "resume", "report", "data", "reproduce"])), "--help"]
        return argv, None
    return [*argv, "--db", db], db


@st.composite
def writing(draw, world):
    kind = draw(st.sampled_from(["run", "run", "resume", "reproduce"]))
    db = draw(_db_choice(world, read_only=False))
    device = draw(st.one_of(st.just([]), st.sampled_from(["cpu", "cuda", "auto", "tpu", ""]).map(lambda d: ["--device", d])))
    data = draw(st.one_of(st.just(["--data-dir", world["mnist"]]), relative.map(lambda d: ["--data-dir", d])))
    if kind == "run":
        config = draw(st.one_of(st.just(SOFTMAX), st.just(str(world["base"] / "bad.toml")), relative))
        sets = [a for o in draw(overrides) for a in ("--set", o)]
        return ["run", config, "--headless", "-q", "--db", db, *device, *data, *sets, *LAST]
    if kind == "resume":
        return ["resume", draw(ids), "--headless", "-q", "--db", db, *device, *data, *draw(st.sampled_from([[], ["--json"]]))]
    only = "Z" + draw(st.text(max_size=6))  # never a claim id: the suite itself never starts
    return ["reproduce", "--only", only, "--profile", draw(st.one_of(st.sampled_from(["quick", "paper"]), words)), "--db", db, *device, *data]


def _check(code: int, out: str, err: str, argv: list[str]) -> None:
    event(f"{argv[0]} {argv[1] if argv[0] == 'runs' else ''} exit {code}")  # see: pytest --hypothesis-show-statistics
    assert code in (0, 1, 2), (argv, code, err)
    assert "Traceback" not in out + err, (argv, err)
    assert "internal error" not in err, (argv, err)
    if code == 2:
        lines = [x for x in err.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("adv-tui: error: "), (argv, err)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_fuzz_read_only_commands(world, capsys, data):
    argv, db = data.draw(read_only(world))
    before = catalog_rows(world["ro"])
    code, out, err = main_in_process(capsys, *argv)
    _check(code, out, err, argv)
    assert catalog_rows(world["ro"]) == before, argv  # read-only: not one row changed


@settings(max_examples=EXAMPLES // 3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow], database=None)
@given(data=st.data())
def test_fuzz_commands_that_write(world, capsys, data):
    argv = data.draw(writing(world))
    before = catalog_rows(world["ro"])
    code, out, err = main_in_process(capsys, *argv)
    _check(code, out, err, argv)
    assert catalog_rows(world["ro"]) == before, argv  # they never touch another catalog
