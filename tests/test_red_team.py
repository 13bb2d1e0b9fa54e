"""Issue #15: each attack of the red-team pass, done again, and what must happen now.

1 markup/control characters in stored strings · 2 the resume claim and the writer's ownership check ·
3 liveness by pid + process start time, bounded lock waits · 4 damaged rows and pages · 5 resume of a
run killed before its first checkpoint · 6 passwords · 7 the data root · 8 checkpoint paths and temp
files · 9 one-line errors · 10 validation gaps. (Fuzzing every command: tests/test_fuzz_cli.py; the
fault categories end to end, with kill -9: scripts/chaos.py.)
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from _helpers import catalog_rows, main_in_process

REPO = Path(__file__).resolve().parents[1]
SOFTMAX = str(REPO / "configs" / "softmax.toml")
TINY = ["--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=2"]
SECRET = "hunter2"

_main = main_in_process


@pytest.fixture(autouse=True)
def _wide_console(monkeypatch):
    """Tables as wide as they need (rich wraps cells at the 80 columns of a non-terminal)."""
    monkeypatch.setenv("COLUMNS", "200")


def one_line_error(code: int, err: str, *needles: str) -> str:
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2, (code, err)
    assert len(lines) == 1 and lines[0].startswith("adv-tui: error: "), err
    assert "Traceback" not in err
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])


def _sql(db: Path, sql: str, *args) -> None:
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


def _tiny_cfg(epochs: int = 3, **train):
    from tui_adv.config import validate

    return validate(
        {
            "name": "tiny",
            "experiment": "softmax",
            "seed": 5,
            "device": "cpu",
            "data": {"train_limit": 400, "test_limit": 100},
            "model": {"kind": "softmax"},
            "train": {"epochs": epochs, "batch_size": 50, **train},
            "sweep": {"epsilons": [0.0, 0.25], "samples": 1},
        }
    )


def _rows(store, run_id):
    return sorted((m.key, m.step, m.value) for m in store.metrics(run_id)), store.sweeps(run_id)


def _completed_then_cancelled(store, mnist_root, stop_at):
    """Two runs of the tiny softmax: one completed, one cancelled at the first batch event where
    ``stop_at(event)`` holds. Returns their runners."""
    from tui_adv.runner import Runner

    ref = Runner(_tiny_cfg(), store, data_dir=str(mnist_root))
    ref.create()
    assert ref.execute() == "completed"
    stop = threading.Event()
    r = Runner(_tiny_cfg(), store, data_dir=str(mnist_root), stop_event=stop)
    r.emit = lambda e: stop.set() if e["type"] == "batch" and stop_at(e) else None
    r.create()
    assert r.execute() == "cancelled"
    return ref, r


@pytest.fixture(scope="module")
def populated(tmp_path_factory, mnist_root):
    """Run 1 completed, run 2 cancelled in epoch 2 (checkpoint of epoch 1), on tiny softmax."""
    from tui_adv.catalog import Store

    base = tmp_path_factory.mktemp("red-team")
    store = Store(str(base / "runs.db"))
    _completed_then_cancelled(store, mnist_root, lambda e: e["epoch"] == 2)
    store.close()
    return base


@pytest.fixture
def db(populated, tmp_path):
    """A private copy of the populated catalog and its checkpoints."""
    src = sqlite3.connect(populated / "runs.db")
    dst = sqlite3.connect(tmp_path / "runs.db")
    src.backup(dst)
    src.close()
    for (rid, path) in dst.execute("SELECT id, checkpoint_path FROM runs WHERE checkpoint_path IS NOT NULL").fetchall():
        own = tmp_path / "checkpoints" / Path(path).name
        own.parent.mkdir(exist_ok=True)
        shutil.copy(path, own)
        dst.execute("UPDATE runs SET checkpoint_path = ? WHERE id = ?", (str(own), rid))
    dst.commit()
    dst.close()
    return tmp_path / "runs.db"


# ------------------------------------------------------------------------------------------ 1 markup
def test_a_markup_run_name_runs_and_every_reader_shows_it(tmp_path, mnist_root, capsys):
    """`--set 'name="[/]"'` crashed the progress line, left the row running, and then every reader."""
    db = str(tmp_path / "runs.db")
    code, out, err = _main(capsys, "run", SOFTMAX, "--headless", "--db", db, "--device", "cpu", *TINY, "--set", 'name="[/]"')
    assert code == 0, err
    assert "run 1 · [/]" in err and "Traceback" not in err  # the progress renderer's first line, literally
    code, out, err = _main(capsys, "runs", "list", "--db", db)
    assert code == 0 and "[/]" in out and "completed" in out, err
    code, out, err = _main(capsys, "runs", "show", "1", "--db", db)
    assert code == 0 and "run 1 · [/] ·" in out, err


def test_stored_markup_and_escape_sequences_reach_no_reader(db, capsys):
    """Rows written by something else (another tool, an older adv-tui): markup is shown literally and
    control characters never reach the terminal."""
    _sql(db, "UPDATE runs SET name = ?, experiment = ?, error = ?, device = ?, claims = ?, status = 'failed' WHERE id = 2",
         "[/]\x1b[2J\x1b]0;pwned\x07name", "[bold red]exp[/]", "boom [/red]\n\x1b[31mred", "[link=x]cpu", "P01\x1b[0m")  # fmt: skip
    con = sqlite3.connect(db)
    con.execute("INSERT INTO logs (run_id, ts, level, message) VALUES (2, '2025-01-01 00:00:00', 'info', ?)", ("[/]\x1b[5mlog",))
    con.commit()
    con.close()
    for args in (["runs", "list"], ["runs", "show", "2"], ["runs", "export", "2", "--format", "csv"]):
        code, out, err = _main(capsys, *args, "--db", str(db))
        assert code == 0, err
        assert "\x1b" not in out + err and "\x07" not in out + err, args
    code, out, _ = _main(capsys, "runs", "show", "2", "--db", str(db))
    assert "[/]" in out and "[bold red]exp[/]" in out and "boom [/red]" in out


def test_control_characters_in_a_new_name_are_refused(db, capsys):
    before = catalog_rows(db)
    code, _out, err = _main(capsys, "run", SOFTMAX, "--headless", "--db", str(db), *TINY, "--set", 'name="a\\u001b[31mb"')
    one_line_error(code, err, "name", "control characters")
    assert catalog_rows(db) == before


# ------------------------------------------------------------------------------------------ 2 the claim
def test_a_resume_that_passed_its_checks_after_another_completed_the_run_changes_nothing(db, mnist_root):
    """The 154-rows-lost race: resume B passes its checks, resume A completes the run, then B must not
    rewind it. B's conditional UPDATE finds the run completed and B stops with one line."""
    from tui_adv.catalog import Store
    from tui_adv.errors import UserError
    from tui_adv.runner import Runner

    store = Store(str(db))
    a = Runner.for_resume(store, 2, data_dir=str(mnist_root))
    b = Runner.for_resume(store, 2, data_dir=str(mnist_root))  # both checked while the run was cancelled
    assert a.execute() == "completed"
    done = catalog_rows(db)
    assert len(done["metrics"]) > 0
    with pytest.raises(UserError, match="claimed") as e:
        b.execute()
    assert "completed" in str(e.value) and "\n" not in str(e.value)
    assert catalog_rows(db) == done  # not one row deleted or rewritten
    assert _rows(store, 2) == _rows(store, 1)  # and run 2 equals the uninterrupted run 1


def test_two_resumes_at_once_only_one_runs(db, mnist_root):
    """Two `adv-tui resume 2` started together: exactly one claims the row and runs (exit 0), the
    other exits 2 with one line; the run ends completed with no duplicated or missing rows."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    argv = [sys.executable, "-m", "tui_adv.cli", "resume", "2", "--headless", "-q", "--db", str(db), "--device", "cpu"]
    procs = [subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=240), p.communicate()) for p in procs]
    codes = sorted(rc for rc, _ in results)
    assert codes == [0, 2], results
    loser = next(err for rc, (_o, err) in results if rc == 2)
    one_line_error(2, loser, "run 2")
    from tui_adv.catalog import Store

    store = Store(str(db))
    assert store.get_run(2).status == "completed"
    keys = lambda rid: sorted((m.key, m.step) for m in store.metrics(rid))  # noqa: E731 - (values: one thread here, not there)
    assert keys(2) == keys(1)
    assert [p["epsilon"] for p in store.sweeps(2)[0]["points"]] == [p["epsilon"] for p in store.sweeps(1)[0]["points"]]
    logs = [line.message for line in store.logs(2)]
    assert sum(m.startswith("resumed from") for m in logs) == 1


def test_the_writer_stops_when_another_process_takes_the_run(tmp_path, mnist_root):
    """A process that lost its row (resumed elsewhere) writes nothing more to it, not even its status."""
    from tui_adv.catalog import Store
    from tui_adv.catalog.store import ClaimLost
    from tui_adv.runner import Runner

    db = tmp_path / "runs.db"
    store = Store(str(db))
    r = Runner(_tiny_cfg(epochs=4), store, data_dir=str(mnist_root))
    taken: dict = {}

    def on(e):
        if e["type"] == "epoch_end" and e["epoch"] == 2 and not taken:
            r_db = sqlite3.connect(db)
            r_db.execute("UPDATE runs SET claim_token = 'someone-else', pid = 4242, host = 'other-host' WHERE id = ?", (r.run_id,))
            r_db.commit()
            r_db.close()
            taken.update(catalog_rows(db))

    r.emit = on
    r.create()
    with pytest.raises(ClaimLost, match="taken over by pid 4242 on other-host"):
        r.execute()
    assert catalog_rows(db) == taken  # nothing after the takeover: no metric, no log, no status
    assert store.get_run(r.run_id).status == "running" and store.get_run(r.run_id).pid == 4242


def test_a_reader_marking_a_dead_run_never_marks_a_run_just_claimed(db):
    """refresh_liveness read the row while its old process was dead; a resume claimed it before the
    mark: the mark (conditional on pid and claim token) leaves the claimed run alone."""
    from tui_adv.catalog import Store

    store = Store(str(db))
    _sql(db, "UPDATE runs SET status = 'running', pid = ?, pid_start = NULL, host = ?, claim_token = 'old' WHERE id = 2", _dead_pid(), socket.gethostname())
    stale = store.list_runs(status=["running"])
    assert store.claim_run(2, token="new", from_statuses=["running"], pid=os.getpid(), host=socket.gethostname())
    store.list_runs = lambda **kw: stale  # the reader's view from before the claim
    assert store.refresh_liveness() == []
    assert Store(str(db)).get_run(2).status == "running"


# ------------------------------------------------------------------------------------------ 3 liveness
def test_a_stopped_process_with_a_stale_heartbeat_is_alive(db, capsys):
    """Ctrl-Z on a run for > 2 minutes: same host, same pid and start time → still running; a second
    trainer (resume) is refused."""
    from tui_adv.catalog.schema import utcnow
    from tui_adv.catalog.store import process_start_time

    proc = _sleeper()
    try:
        os.kill(proc.pid, signal.SIGSTOP)
        _sql(db, "UPDATE runs SET status = 'running', pid = ?, pid_start = ?, host = ?, heartbeat_at = ? WHERE id = 2",
             proc.pid, process_start_time(proc.pid), socket.gethostname(), (utcnow() - timedelta(minutes=10)).isoformat(" "))  # fmt: skip
        code, out, err = _main(capsys, "runs", "list", "--json", "--db", str(db))
        assert code == 0, err
        assert {r["run_id"]: r["status"] for r in json.loads(out)}[2] == "running"
        code, _out, err = _main(capsys, "resume", "2", "--headless", "--db", str(db))
        one_line_error(code, err, "still running", f"pid {proc.pid}")
    finally:
        os.kill(proc.pid, signal.SIGCONT)
        proc.kill()
        proc.wait()


def test_a_reused_pid_is_not_the_run(db, capsys):
    """The run's pid now belongs to an unrelated process (another start time): the run is dead, and the
    dashboard's cancel would not signal that process (tests/tui/test_red_team_tui.py presses x)."""
    from tui_adv.catalog import Store
    from tui_adv.catalog.store import process_start_time
    from tui_adv.tui.screens.dialogs import can_signal

    proc = _sleeper()
    try:
        _sql(db, "UPDATE runs SET status = 'running', pid = ?, pid_start = ?, host = ? WHERE id = 2", proc.pid, process_start_time(proc.pid) - 1, socket.gethostname())
        store = Store(str(db))
        assert "is gone" in can_signal(store.get_run(2))
        assert store.refresh_liveness() == [2]
        assert proc.poll() is None  # nothing was sent to it
    finally:
        proc.kill()
        proc.wait()


def test_readers_do_not_wait_for_a_stopped_writers_lock(db, capsys, monkeypatch):
    """A writer stopped while it holds the write lock: `runs list`/`runs show` answer within the bounded
    wait (here 2 s) with a one-line note, instead of blocking for minutes."""
    import tui_adv.catalog.store as store_mod

    monkeypatch.setattr(store_mod, "READER_LOCK_WAIT_S", 2.0)
    _sql(db, "UPDATE runs SET status = 'running', pid = ?, host = ? WHERE id = 2", _dead_pid(), socket.gethostname())  # liveness wants to write
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import os, signal, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE');"
         "c.execute(\"UPDATE runs SET name = name WHERE id = 1\"); print('locked', flush=True); os.kill(os.getpid(), signal.SIGSTOP)", str(db)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        for args in (["runs", "list"], ["runs", "show", "2"]):
            t0 = time.monotonic()
            code, out, err = _main(capsys, *args, "--db", str(db))
            took = time.monotonic() - t0
            assert code == 0, err
            assert took < 15, took
            lines = [x for x in err.splitlines() if x.strip()]
            assert len(lines) == 1 and "locked by another process" in lines[0] and "adv-tui: note:" in lines[0], err
            assert "tiny" in out
    finally:
        holder.kill()
        holder.wait()


# ------------------------------------------------------------------------------------------ 4 damaged rows and pages
def test_damaged_rows_are_shown_as_damaged_never_crash_a_listing(db, capsys):
    _sql(db, "UPDATE runs SET summary_json = '[[' WHERE id = 1")
    _sql(db, "UPDATE runs SET created_at = 'garbage', progress = 'abc', config_json = 'not json' WHERE id = 2")
    code, out, err = _main(capsys, "runs", "list", "--db", str(db))
    assert code == 0, err
    assert out.count("(damaged)") == 2
    code, out, err = _main(capsys, "runs", "list", "--json", "--db", str(db))
    rows = {r["run_id"]: r for r in json.loads(out)}
    assert rows[1]["damaged"] == ["summary_json is not a JSON object"]
    assert "created_at 'garbage' is not a date" in rows[2]["damaged"] and "progress 'abc' is not a number" in rows[2]["damaged"]
    for rid in (1, 2):
        code, out, err = _main(capsys, "runs", "show", str(rid), "--db", str(db))
        assert code == 0 and "damaged row:" in out, err
        code, out, err = _main(capsys, "runs", "export", str(rid), "--db", str(db))
        assert code == 0 and json.loads(out)["damaged"], err
    before = catalog_rows(db)
    code, _out, err = _main(capsys, "resume", "2", "--headless", "--db", str(db))
    one_line_error(code, err, "damaged", "cannot be resumed")
    assert catalog_rows(db) == before


def test_damaged_pages_stop_run_before_it_adds_a_row(db, capsys):
    """Random pages overwritten inside a valid file: `run` checks the file first and fails with one line,
    instead of adding a row and failing late."""
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page = con.execute("PRAGMA page_size").fetchone()[0]
    pages = con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    assert pages > 6
    with open(db, "r+b") as f:
        for p in range(pages // 2, pages - 1):  # leave the header page alone: the file still opens
            f.seek(p * page + 8)
            f.write(os.urandom(page - 16))
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA quick_check").fetchone()[0] != "ok"
    except sqlite3.DatabaseError:  # "database disk image is malformed": damaged as well
        pass
    con.close()
    before = db.read_bytes()
    code, _out, err = _main(capsys, "run", SOFTMAX, "--headless", "--db", str(db), *TINY)
    line = one_line_error(code, err, f"catalog {db}")
    assert "is damaged" in line or "is corrupt" in line  # found by the check, or by opening it already
    assert db.read_bytes() == before


# ------------------------------------------------------------------------------------------ 5 restart from epoch 0
def test_a_run_stopped_before_its_first_checkpoint_resumes_from_epoch_0(tmp_path, mnist_root):
    from tui_adv.catalog import Store
    from tui_adv.checkpoints import checkpoint_file
    from tui_adv.runner import Runner

    store = Store(str(tmp_path / "runs.db"))
    ref, r = _completed_then_cancelled(store, mnist_root, lambda e: e["epoch"] == 1 and e["batch"] >= 3)
    run = store.get_run(r.run_id)
    assert not run.checkpoint_path and not checkpoint_file(store, run).exists()
    config = run.config_json
    resumed = Runner.for_resume(store, r.run_id, data_dir=str(mnist_root))
    assert resumed.execute() == "completed"
    assert store.count_runs() == 2 and store.get_run(r.run_id).config_json == config
    assert _rows(store, r.run_id) == _rows(store, ref.run_id)  # as if it had never been stopped
    logs = [line.message for line in store.logs(r.run_id)]
    assert any("restarts from epoch 0 in the same row" in m for m in logs), logs


@pytest.mark.slow
def test_kill9_before_the_first_checkpoint_then_resume(tmp_path, mnist_root):
    """What the attacker did: SIGKILL during epoch 1 (no checkpoint yet), then `adv-tui resume`."""
    db = tmp_path / "runs.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADV_TUI_CHECKPOINTS": str(tmp_path / "ck")}
    argv = [sys.executable, "-m", "tui_adv.cli", "run", SOFTMAX, "--headless", "-q", "--device", "cpu", "--db", str(db),
            "--set", "data.train_limit=60000", "--set", "data.test_limit=200", "--set", "train.epochs=1", "--set", "train.batch_size=4",
            "--set", "sweep.epsilons=[0,.25]"]  # fmt: skip
    victim = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    seen = 0
    while time.monotonic() < deadline and victim.poll() is None and seen < 3:
        try:
            with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as c:
                seen = c.execute("SELECT COUNT(*) FROM metrics WHERE key = 'batch_loss'").fetchone()[0]
        except sqlite3.OperationalError:
            pass
        time.sleep(0.05)
    assert victim.poll() is None and seen >= 3
    victim.kill()
    victim.wait()
    assert not list((tmp_path / "ck").glob("*.pt"))  # really before the first checkpoint
    p = subprocess.run([sys.executable, "-m", "tui_adv.cli", "resume", "1", "--headless", "-q", "--json", "--db", str(db)],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert p.returncode == 0, p.stderr
    doc = json.loads(p.stdout)
    assert doc["run_id"] == 1 and doc["status"] == "completed"
    with sqlite3.connect(db) as c:
        assert c.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 1
        assert c.execute("SELECT COUNT(*) FROM metrics WHERE key = 'batch_loss'").fetchone()[0] == 50  # 15000 batches, every 300th reported
        logs = [m for (m,) in c.execute("SELECT message FROM logs WHERE run_id = 1")]
    assert any("restarts from epoch 0" in m for m in logs)


# ------------------------------------------------------------------------------------------ 6 secrets
@pytest.fixture
def pg_url(db, monkeypatch):
    """A PostgreSQL-style URL with a password whose engine is the SQLite copy: every message and title
    that shows the URL runs for real, no server needed."""
    from sqlmodel import create_engine

    from tui_adv.catalog.store import Store

    url = f"postgresql+psycopg://me:{SECRET}@db.example:5432/catalog"
    real = f"sqlite:///{db}"
    monkeypatch.setattr(Store, "_make_engine", lambda self: create_engine(real if self.url == url else self.url))
    return url


def test_the_password_is_never_shown(pg_url, db, capsys):
    outputs = []
    for args in (["runs", "list"], ["runs", "show", "1"], ["runs", "show", "999"], ["resume", "999", "--headless"], ["runs", "export", "999"],
                 ["run", SOFTMAX, "--headless", "-q", "--device", "cpu", *TINY]):  # fmt: skip
        code, out, err = _main(capsys, *args, "--db", pg_url)
        outputs.append(out + err)
        assert code in (0, 2), (args, err)
    assert all(SECRET not in o for o in outputs)
    assert "me:***@db.example" in outputs[0] and "me:***@db.example" in outputs[1]  # runs list title, runs show summary
    assert "no run with id 999 in postgresql+psycopg://me:***@" in outputs[2] + outputs[3] + outputs[4]
    assert "catalog postgresql+psycopg://me:***@" in outputs[5]  # run's summary line
    _sql(db, "UPDATE schema_info SET version = 99")
    code, _out, err = _main(capsys, "runs", "list", "--db", pg_url)
    one_line_error(code, err, "newer", "me:***@")
    assert SECRET not in err


def test_the_dashboard_and_its_children_never_show_the_password(tmp_path, monkeypatch):
    from tui_adv.services import launch as model
    from tui_adv.tui.app import _label

    url = f"postgresql://me:{SECRET}@db.example/catalog"
    assert _label(url) == "postgresql://me:***@db.example/catalog"
    assert model.child_env(url)["ADV_TUI_DB"] == url  # the child learns it from its environment
    monkeypatch.setattr(model, "launch_log_dir", lambda: tmp_path / "launch-logs")
    launched = model.spawn_run(str(tmp_path / "missing.toml"), ["train.epochs=1"], db_url=url)
    try:
        assert SECRET not in " ".join(launched.popen.args)  # `ps` shows argv to every user
        cmdline = Path(f"/proc/{launched.pid}/cmdline")
        if cmdline.exists():
            assert SECRET.encode() not in cmdline.read_bytes()
    finally:
        launched.popen.wait(timeout=60)
    assert launched.log_path.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "launch-logs").stat().st_mode & 0o777 == 0o700
    assert "config file not found" in launched.log_path.read_text()


# ------------------------------------------------------------------------------------------ 7 the data root
def test_a_missing_data_dir_is_one_line_and_nothing_is_created(db, tmp_path, capsys):
    absent = tmp_path / "absent" / "mnist"
    before = catalog_rows(db)
    for args in (["run", SOFTMAX, "--headless", "--db", str(db), *TINY], ["data"]):
        code, _out, err = _main(capsys, *args, "--data-dir", str(absent))
        one_line_error(code, err, "does not exist", str(absent))
    assert not (tmp_path / "absent").exists()
    assert catalog_rows(db) == before


def test_a_data_root_without_the_files_is_never_written(tmp_path, capsys, monkeypatch):
    from torchvision.datasets import MNIST

    monkeypatch.setattr(MNIST, "mirrors", ["http://127.0.0.1:9/"])
    root = tmp_path / "root"
    root.mkdir()
    code, _out, err = _main(capsys, "data", "--data-dir", str(root))
    one_line_error(code, err, "MNIST not found")
    assert list(root.iterdir()) == []


# ------------------------------------------------------------------------------------------ 8 checkpoints
def test_a_relative_checkpoint_dir_is_stored_absolute(tmp_path, mnist_root, capsys, monkeypatch):
    import tui_adv

    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("ADV_TUI_CHECKPOINTS", "ck")
    db = str(tmp_path / "runs.db")
    code, _out, err = _main(capsys, "run", SOFTMAX, "--headless", "-q", "--db", db, "--device", "cpu", *TINY, "--set", "sweep.enabled=false")
    assert code == 0, err
    from tui_adv.catalog import Store

    path = Path(Store(db).get_run(1).checkpoint_path)
    assert path.is_absolute() and path.parent == work / "ck"
    monkeypatch.chdir(tmp_path)  # elsewhere
    model = tui_adv.load_model(1, db)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)


def test_temp_files_of_killed_checkpoint_writes_are_cleaned_on_the_next_write(tmp_path):
    from tui_adv.checkpoints import STALE_TEMP_S, atomic_save

    ck = tmp_path / "ck"
    ck.mkdir()
    target = ck / "run-1-20250101T000000000000.pt"
    live = _sleeper()
    try:
        mine_dead = ck / f".{target.name}.{_dead_pid()}.tmp"  # this run's, left by a killed writer
        mine_live = ck / f".{target.name}.{live.pid}.tmp"  # a writer that is still running
        other_young = ck / f".run-2-20250101T000000000000.pt.{_dead_pid()}.tmp"  # maybe another host's
        other_old = ck / f".run-3-20250101T000000000000.pt.{_dead_pid()}.tmp"
        unrelated = ck / "notes.txt"
        for p in (mine_dead, mine_live, other_young, other_old, unrelated):
            p.write_bytes(b"partial")
        old = time.time() - STALE_TEMP_S - 60
        os.utime(other_old, (old, old))
        atomic_save({"w": torch.ones(2)}, target)
        assert sorted(p.name for p in ck.iterdir()) == sorted([target.name, mine_live.name, other_young.name, unrelated.name])
    finally:
        live.kill()
        live.wait()


# ------------------------------------------------------------------------------------------ 9 one line
@pytest.mark.parametrize("command", ["show", "export", "resume"])
@pytest.mark.parametrize("run_id", ["9223372036854775808", "-1", "abc", "0", "1e3"])
def test_a_bad_run_id_is_one_line(command, run_id, db, capsys):
    args = ["resume", run_id, "--headless"] if command == "resume" else ["runs", command, run_id]
    before = catalog_rows(db)
    code, _out, err = _main(capsys, *args, "--db", str(db))
    one_line_error(code, err)
    assert catalog_rows(db) == before


def test_a_failed_run_says_so_once_on_one_line(tmp_path, mnist_root, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")  # a narrow terminal used to wrap it
    code, _out, err = _main(capsys, "run", SOFTMAX, "--headless", "--db", str(tmp_path / "r.db"), "--device", "cpu", *TINY, "--set", "train.lr=1e38")
    assert code == 1
    lines = [x for x in err.splitlines() if "diverged" in x]
    assert len(lines) == 1 and lines[0].startswith("adv-tui: run 1 failed: diverged:") and "lower train.lr" in lines[0], err


def test_an_unexpected_exception_is_one_line_and_a_private_log(db, capsys, monkeypatch):
    import tui_adv.cli.runs as cli_runs

    def broken(*_a, **_k):
        raise RuntimeError(f"boom at postgresql://me:{SECRET}@host/db")

    monkeypatch.setattr(cli_runs, "run_document", broken)
    code, _out, err = _main(capsys, "runs", "show", "1", "--db", str(db))
    assert code == 1
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("adv-tui: error: internal error: RuntimeError: boom"), err
    assert SECRET not in err
    log = Path(lines[0].split("the traceback is in ")[1].split(" (please report it)")[0])
    assert log.stat().st_mode & 0o777 == 0o600
    text = log.read_text()
    assert "Traceback (most recent call last)" in text and "in broken" in text and SECRET not in text


# ------------------------------------------------------------------------------------------ 10 validation
@pytest.mark.parametrize(
    "override,key",
    [
        ("train.lr=inf", "train.lr"),
        ("train.lr=nan", "train.lr"),
        ("train.weight_decay=inf", "train.weight_decay"),
        ("train.epsilon=inf", "train.epsilon"),
        ("model.init_range=inf", "model"),
        ("train.epochs=true", "train.epochs"),
        ('data.pair=["3","7"]', "data.pair"),
        ("data.pair=[3.0,7]", "data.pair"),
        ("seed=1e20", "seed"),
        ("seed=99999999999999999999", "seed"),
        ("train.batch_size=1e9", "train.batch_size"),
        ('train.lr="0.1"', "train.lr"),
    ],
)
def test_values_a_user_gets_wrong_are_refused(override, key, db, capsys):
    before = catalog_rows(db)
    code, _out, err = _main(capsys, "run", SOFTMAX, "--headless", "--db", str(db), *TINY, "--set", override)
    one_line_error(code, err, key)
    assert catalog_rows(db) == before


def test_a_huge_set_of_unknown_keys_is_a_short_line(db, tmp_path, capsys):
    cfg = tmp_path / "huge.toml"
    cfg.write_text('[model]\nkind = "softmax"\n[train]\n' + "".join(f"k{i} = 1\n" for i in range(200_000)))
    code, _out, err = _main(capsys, "run", str(cfg), "--headless", "--db", str(db))
    line = one_line_error(code, err, "train.k0: unknown key", "more problems")
    assert len(line) < 1000


# ------------------------------------------------------------------------------------------ schema
def test_a_version_2_catalog_gains_the_ownership_columns(db):
    """Catalogs written before issue #15 (schema 2: no pid start time, no claim token) are migrated in
    place when opened, their runs kept; a run row without a start time falls back to pid + heartbeat."""
    from tui_adv.catalog import SCHEMA_VERSION, Store

    before = catalog_rows(db)["runs"]
    con = sqlite3.connect(db)
    con.execute("ALTER TABLE runs DROP COLUMN claim_token")
    con.execute("ALTER TABLE runs DROP COLUMN pid_start")
    con.execute("UPDATE schema_info SET version = 2")
    con.commit()
    con.close()
    store = Store(str(db))
    cols = [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(runs)")]
    assert {"pid_start", "claim_token"} <= set(cols)
    assert sqlite3.connect(db).execute("SELECT version FROM schema_info").fetchone()[0] == SCHEMA_VERSION
    assert [r.id for r in store.list_runs()] == [2, 1] and len(catalog_rows(db)["runs"]) == len(before)


def test_a_second_ctrl_c_interrupts_only_while_the_run_works():
    """Chaos found it: a second SIGINT that arrived after the run had stopped raised KeyboardInterrupt
    while the process was recording its end or exiting (a traceback, or no final line)."""
    from tui_adv.cli.run import install_signal_handlers

    old = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    try:
        stop, working = threading.Event(), {"now": True}
        install_signal_handlers(stop, lambda: working["now"])
        handler = signal.getsignal(signal.SIGINT)
        handler(signal.SIGINT, None)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):  # training: the second one cuts the batch short
            handler(signal.SIGINT, None)
        working["now"] = False
        handler(signal.SIGINT, None)  # recording the end: ignored
        handler(signal.SIGTERM, None)
    finally:
        signal.signal(signal.SIGINT, old[0])
        signal.signal(signal.SIGTERM, old[1])
