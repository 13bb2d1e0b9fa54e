#!/usr/bin/env python3
"""Fault injection: the red team's categories (issue #15) as a repeatable script, with a table of faults
tried / survived and rows lost, like ``scripts/stress.py`` does for concurrency.

    python scripts/chaos.py [--only kill,signals,races,heartbeats,disk,corrupt,wal] [--json] [--keep]

Every fault runs against its own fresh catalog (SQLite, in a temporary directory) with small softmax runs
(``adv-tui run --headless`` subprocesses, one thread each). After the fault, a fault is **survived** when

- the SQLite file passes ``PRAGMA integrity_check`` and ``adv-tui runs list --json`` exits 0;
- every process the fault touched ended with exit 0, 1 or 2 and no traceback, and an exit 2 said one line;
- the run can be brought to the end (``adv-tui resume`` where the fault stopped it) and then has every
  row its config implies, none twice, and no checkpoint temp file is left;
- and whatever the fault says it checks in particular (one resume of two wins, a stopped process stays
  alive, a damaged file is refused before a row is added...).

**Rows lost** counts rows a completed run must have (every epoch metric, every reported batch loss, every
sweep point and perturbation view, as in scripts/stress.py) that are missing once the fault was survived,
plus rows of other runs the fault made disappear. For the one case SQLite itself cannot survive (the
-wal file deleted while a run writes, then the writer killed) it counts the committed rows that are gone
from the catalog after the kill (read through a connection opened before the deletion, which still sees
the deleted log); ``resume`` then recreates them from the run's last checkpoint.

Disk full needs a small tmpfs (``mount -t tmpfs``, i.e. root or CAP_SYS_ADMIN); where the machine does
not allow it the fault is reported as skipped and why. Exit status 0 when every fault but the SQLite case
was survived with 0 rows lost.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

SQLITE_CASE = "WAL deleted, then the writer killed"
EPOCH_BATCHES = 12000  # 60000 images, batches of 5 (see Lab.run_args)
B = EPOCH_BATCHES // 50  # the batch-loss rows come every B batches


@dataclass
class Result:
    category: str
    fault: str
    survived: bool | None  # None: skipped
    rows_lost: int = 0
    note: str = ""
    problems: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ plumbing
class Lab:
    """One fault's world: a catalog, a checkpoint directory, and helpers to run adv-tui against them."""

    def __init__(self, root: Path, name: str):
        self.dir = root / name
        self.dir.mkdir(parents=True)
        self.db = self.dir / "runs.db"
        self.ck = self.dir / "checkpoints"
        self.env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "ADV_TUI_CHECKPOINTS": str(self.ck),
                    "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "200"}  # fmt: skip
        self.problems: list[str] = []

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "tui_adv.cli", *args, "--db", str(self.db)]

    def run_args(self, *, train_limit: int = 60000, batch: int = 5, epochs: int = 3, extra: tuple[str, ...] = ()) -> list[str]:
        """A softmax run of EPOCH_BATCHES batches an epoch: seconds an epoch even on a quiet machine, so
        a fault can be aimed at a phase (the catalog shows progress every 0.5 s)."""
        return self.argv(
            "run", "configs/softmax.toml", "--headless", "-q", "--device", "cpu",
            "--set", f"data.train_limit={train_limit}", "--set", "data.test_limit=300", "--set", f"train.epochs={epochs}",
            "--set", f"train.batch_size={batch}", "--set", "sweep.epsilons=[0,.1,.25]", "--set", "sweep.samples=1", *extra,
        )  # fmt: skip

    def spawn(self, argv: list[str]) -> subprocess.Popen:
        return subprocess.Popen(argv, cwd=REPO, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(*args), cwd=REPO, env=self.env, capture_output=True, text=True, timeout=timeout)

    def q(self, sql: str, *a, rw: bool = False) -> list[tuple]:
        """One read through a fresh connection, closed at once ([] when unreadable). Read-only while a
        run writes; ``rw`` after a fault, so SQLite may recover the log (a read-only one cannot)."""
        try:
            con = sqlite3.connect(self.db if rw else f"file:{self.db}?mode=ro", uri=not rw, timeout=5)
        except sqlite3.Error:
            return []
        try:
            return con.execute(sql, a).fetchall()
        except sqlite3.Error:
            return []
        finally:
            con.close()

    def scalar(self, sql: str, *a, default=0, rw: bool = False):  # noqa: ANN001
        rows = self.q(sql, *a, rw=rw)
        return rows[0][0] if rows and rows[0][0] is not None else default

    def sql(self, sql: str, *a) -> None:
        con = sqlite3.connect(self.db, timeout=30)
        con.execute(sql, a)
        con.commit()
        con.close()

    def wait(self, cond, timeout: float = 180, step: float = 0.02, proc: subprocess.Popen | None = None) -> bool:  # noqa: ANN001
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            if proc is not None and proc.poll() is not None:
                return bool(cond())
            time.sleep(step)
        return False

    def clean_exit(self, what: str, rc: int, err: str, expect: tuple[int, ...] = (0, 1, 2)) -> None:
        """A process that ended by itself: exit code, no traceback, one line on exit 2."""
        if rc not in expect:
            self.problems.append(f"{what}: exit {rc} (expected {expect}): {err.strip().splitlines()[-1:] if err.strip() else ''}")
        if "Traceback" in err or "internal error" in err:
            self.problems.append(f"{what}: traceback on stderr")
        lines = [x for x in err.splitlines() if x.strip()]
        if rc == 2 and (len(lines) != 1 or not lines[0].startswith("adv-tui: error: ")):
            self.problems.append(f"{what}: exit 2 without exactly one error line: {lines[:3]}")

    def resume(self, run_id: int = 1, expect: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
        p = self.cli("resume", str(run_id), "--headless", "-q")
        self.clean_exit(f"resume {run_id}", p.returncode, p.stderr, expect)
        return p

    def audit(self) -> int:
        """Integrity, readers, and rows: returns the rows missing from completed runs (problems noted)."""
        con = sqlite3.connect(self.db, timeout=30)  # not read-only: it may have to recover the log
        try:
            ok = con.execute("PRAGMA integrity_check").fetchone()[0]
            runs = con.execute("SELECT id, status, config_json FROM runs ORDER BY id").fetchall()
        finally:
            con.close()
        if ok != "ok":
            self.problems.append(f"integrity_check: {ok}")
        listed = self.cli("runs", "list", "--json")
        self.clean_exit("runs list", listed.returncode, listed.stderr, (0,))
        lost = 0
        from stress import expected_rows

        for run_id, status, cfg in runs:
            if status != "completed":
                self.problems.append(f"run {run_id} ended {status}, not completed")
                continue
            exp = expected_rows(json.loads(cfg))
            for table, n in exp.items():
                keys = {"metrics": "key, step", "sweep_points": "attack, labels, epsilon", "samples": "idx, epsilon"}[table]
                have = self.scalar(f"SELECT COUNT(*) FROM (SELECT DISTINCT {keys} FROM {table} WHERE run_id = ?)", run_id, rw=True)
                total = self.scalar(f"SELECT COUNT(*) FROM {table} WHERE run_id = ?", run_id, rw=True)
                lost += max(0, n - have)
                if total != have:
                    self.problems.append(f"run {run_id}: {total - have} duplicated {table} rows")
        temps = [p.name for p in self.ck.glob(".*.tmp")] if self.ck.exists() else []
        if temps:
            self.problems.append(f"checkpoint temp files left: {temps}")
        return lost

    def result(self, category: str, fault: str, *, note: str = "", extra_lost: int = 0, audit: bool = True) -> Result:
        lost = (self.audit() if audit else 0) + extra_lost
        return Result(category, fault, survived=not self.problems and lost == 0, rows_lost=lost, note=note, problems=list(self.problems))

    # --- timing helpers for the victim run ---------------------------------------------------------
    def batches(self) -> int:
        return self.scalar("SELECT COALESCE(MAX(step), 0) FROM metrics WHERE key = 'batch_loss'")

    def epochs_done(self) -> int:
        return self.scalar("SELECT COALESCE(MAX(step), 0) FROM metrics WHERE key = 'test_error'")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _stop_outside_a_write(lab: Lab, p: subprocess.Popen) -> None:
    """SIGSTOP the process at a moment it holds no write lock (else retry), like a Ctrl-Z between writes."""
    for _ in range(50):
        p.send_signal(signal.SIGSTOP)
        time.sleep(0.2)
        con = sqlite3.connect(lab.db, timeout=0.5, isolation_level=None)
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute("ROLLBACK")
            return
        except sqlite3.OperationalError:
            p.send_signal(signal.SIGCONT)
            time.sleep(0.05)
        finally:
            con.close()
    raise RuntimeError("the process always held the write lock")


def _kill(p: subprocess.Popen, sig: int = signal.SIGKILL) -> tuple[int, str]:
    p.send_signal(sig)
    _out, err = p.communicate(timeout=120)
    return p.returncode, err


def _in_process_run(db: Path, ck: Path, *, cancel_in_epoch: int | None = None, epochs: int = 3) -> int:
    """A small run in this process (faster than a subprocess); cancelled in ``cancel_in_epoch``."""
    os.environ["ADV_TUI_CHECKPOINTS"] = str(ck)
    from tui_adv.catalog import Store
    from tui_adv.config import load_config
    from tui_adv.runner import Runner

    cfg = load_config(REPO / "configs" / "softmax.toml", [
        "data.train_limit=3000", "data.test_limit=300", f"train.epochs={epochs}", "train.batch_size=50", "sweep.epsilons=[0,.1,.25]",
        "sweep.samples=1", "device=\"cpu\""])  # fmt: skip
    store = Store(str(db))
    stop = threading.Event()
    r = Runner(cfg, store, stop_event=stop)
    if cancel_in_epoch is not None:
        r.emit = lambda e: stop.set() if e["type"] == "batch" and e["epoch"] == cancel_in_epoch and e["batch"] >= 10 else None
    r.create()
    r.execute()
    store.close()
    return int(r.run_id)


# ------------------------------------------------------------------------------------------ kill -9
def kill_faults(root: Path) -> list[Result]:
    out = []
    phases = [
        ("kill -9 while loading the data", lambda lab: lab.scalar("SELECT COUNT(*) FROM runs WHERE status = 'running'") > 0),
        ("kill -9 in epoch 1 (before the first checkpoint)", lambda lab: lab.batches() >= 2 * B and lab.epochs_done() == 0),
        ("kill -9 in epoch 2 (after a checkpoint)", lambda lab: lab.epochs_done() >= 1 and lab.batches() >= EPOCH_BATCHES + 2 * B),
        ("kill -9 during the sweep", lambda lab: lab.scalar("SELECT COUNT(*) FROM runs WHERE phase = 'sweep'") > 0),
    ]
    for i, (name, ready) in enumerate(phases):
        lab = Lab(root, f"kill{i}")
        # 61 ε on the full test set: a sweep of seconds, so the kill lands inside it
        slow_sweep = ("--set", "sweep.epsilons=[" + ",".join(f"{i / 200:g}" for i in range(61)) + "]", "--set", "data.test_limit=10000", "--set", "train.epochs=1")
        victim = lab.spawn(lab.run_args(extra=slow_sweep) if "sweep" in name else lab.run_args())
        if not lab.wait(lambda: ready(lab), proc=victim):
            lab.problems.append("the run never reached the phase")
        _kill(victim)
        listed = json.loads(lab.cli("runs", "list", "--json").stdout or "[]")
        if not listed or listed[0]["status"] != "interrupted":
            lab.problems.append(f"not shown as interrupted: {listed[:1]}")
        lab.resume()
        out.append(lab.result("kill -9", name))
    out.append(kill_inside_checkpoint_write(root))
    return out


def kill_inside_checkpoint_write(root: Path, tries: int = 3) -> Result:
    """A maxout run whose checkpoints take long enough to write (~30 MB): SIGKILL as soon as the temp file
    appears. The next write of that run (the resume) must clean the temp file up."""
    lab = Lab(root, "kill-ckpt")
    caught = 0
    extra = ("--set", "model.kind=\"maxout\"", "--set", "model.units=1200", "--set", "model.pieces=2", "--set", "train.epochs=4")
    for attempt in range(tries):
        victim = lab.spawn(lab.run_args(train_limit=400, batch=100, extra=extra))
        hit = False
        while victim.poll() is None:
            if lab.ck.exists() and any(n.endswith(".tmp") for n in os.listdir(lab.ck)):
                victim.send_signal(signal.SIGKILL)
                hit = True
                break
            time.sleep(0.001)
        _out, err = victim.communicate(timeout=120)
        if hit:
            caught += 1
            left = [n for n in os.listdir(lab.ck) if n.endswith(".tmp")]
            run_id = lab.scalar("SELECT MAX(id) FROM runs")
            lab.resume(run_id)
            if left and [n for n in os.listdir(lab.ck) if n in left]:
                lab.problems.append(f"temp file {left} not cleaned by the next write")
            break
        lab.clean_exit("victim", victim.returncode, err, (0,))
    if not caught:
        return Result("kill -9", "kill -9 inside a checkpoint write", survived=None, note=f"the write was never caught in {tries} tries")
    return lab.result("kill -9", "kill -9 inside a checkpoint write", note=f"caught on try {attempt + 1}, temp file left and cleaned")


# ------------------------------------------------------------------------------------------ signals
def signal_faults(root: Path) -> list[Result]:
    out = []
    cases = [
        ("SIGTERM mid-epoch", [signal.SIGTERM], "cancelled", 1),
        ("SIGINT (Ctrl-C) mid-epoch", [signal.SIGINT], "cancelled", 1),
        ("SIGINT twice", [signal.SIGINT, signal.SIGINT], "cancelled", 1),  # (130 when the second one cuts the batch)
        ("SIGHUP (terminal closed)", [signal.SIGHUP], "interrupted", -signal.SIGHUP),
    ]
    for i, (name, sigs, status, rc) in enumerate(cases):
        lab = Lab(root, f"sig{i}")
        victim = lab.spawn(lab.run_args())
        if not lab.wait(lambda: lab.epochs_done() >= 1 and lab.batches() >= EPOCH_BATCHES + 2 * B, proc=victim):
            lab.problems.append("the run never reached epoch 2")
        for s in sigs:
            victim.send_signal(s)
            time.sleep(0.05)
        _out, err = victim.communicate(timeout=120)
        if rc >= 0:
            lab.clean_exit("victim", victim.returncode, err, (rc, 130) if len(sigs) > 1 else (rc,))
        elif victim.returncode != rc:
            lab.problems.append(f"victim exit {victim.returncode}, expected {rc}")
        listed = json.loads(lab.cli("runs", "list", "--json").stdout or "[]")
        if not listed or listed[0]["status"] != status:
            lab.problems.append(f"status {listed[0]['status'] if listed else None}, expected {status}")
        lab.resume()
        out.append(lab.result("signals", name))
    return out


# ------------------------------------------------------------------------------------------ resume races
def race_faults(root: Path) -> list[Result]:
    out = []
    # two resumes at once
    lab = Lab(root, "race-two")
    _in_process_run(lab.db, lab.ck, cancel_in_epoch=2)
    procs = [lab.spawn(lab.argv("resume", "1", "--headless", "-q")) for _ in range(2)]
    ends = [(p.wait(timeout=300), p.communicate()[1]) for p in procs]
    for k, (rc, err) in enumerate(ends):
        lab.clean_exit(f"resume #{k + 1}", rc, err)
    if sorted(rc for rc, _ in ends) != [0, 2]:
        lab.problems.append(f"exit codes {sorted(rc for rc, _ in ends)}, expected one 0 and one 2")
    resumed = lab.scalar("SELECT COUNT(*) FROM logs WHERE message LIKE 'resumed from%'")
    if resumed != 1:
        lab.problems.append(f"{resumed} resumes ran")
    out.append(lab.result("resume races", "two `resume` of one run at once"))

    # a resume that passed its checks after another one completed the run (the 154-rows race)
    lab = Lab(root, "race-late")
    _in_process_run(lab.db, lab.ck, cancel_in_epoch=2)
    from tui_adv.catalog import Store
    from tui_adv.errors import UserError
    from tui_adv.runner import Runner

    store = Store(str(lab.db))
    a, b = Runner.for_resume(store, 1), Runner.for_resume(store, 1)
    a.execute()
    before = lab.q("SELECT COUNT(*), SUM(value) FROM metrics")
    try:
        b.execute()
        lab.problems.append("the late resume ran")
    except UserError as e:
        if "claimed" not in str(e):
            lab.problems.append(f"unexpected refusal: {e}")
    if lab.q("SELECT COUNT(*), SUM(value) FROM metrics") != before:
        lab.problems.append("the late resume changed rows of the completed run")
    store.close()
    out.append(lab.result("resume races", "a resume checked before another one completed the run"))

    # a resume while readers keep marking dead runs (liveness) as fast as they can
    lab = Lab(root, "race-readers")
    _in_process_run(lab.db, lab.ck, cancel_in_epoch=2)
    stop = threading.Event()
    marks: list[int] = []

    def reader() -> None:
        s = Store(str(lab.db), lock_wait_s=10)
        while not stop.is_set():
            try:
                marks.extend(s.refresh_liveness())
            except UserError:
                pass
        s.close()

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    lab.resume()
    stop.set()
    for t in threads:
        t.join()
    if marks:
        lab.problems.append(f"readers marked the resumed run interrupted {len(marks)} times")
    out.append(lab.result("resume races", "a resume while 3 readers refresh liveness non-stop"))
    return out


# ------------------------------------------------------------------------------------------ stale heartbeats
def heartbeat_faults(root: Path) -> list[Result]:
    out = []
    stale = (datetime.now(timezone.utc) - timedelta(minutes=10)).isoformat(" ")
    # a run stopped with SIGSTOP (Ctrl-Z) whose heartbeat is 10 minutes old
    lab = Lab(root, "hb-stopped")
    victim = lab.spawn(lab.run_args())
    lab.wait(lambda: lab.batches() >= 2 * B, proc=victim)
    _stop_outside_a_write(lab, victim)  # its writer thread is stopped too
    lab.sql("UPDATE runs SET heartbeat_at = ? WHERE id = 1", stale)
    listed = json.loads(lab.cli("runs", "list", "--json").stdout or "[]")
    if not listed or listed[0]["status"] != "running":
        lab.problems.append(f"a stopped live run was shown as {listed[0]['status'] if listed else None}")
    p = lab.cli("resume", "1", "--headless")
    lab.clean_exit("second trainer", p.returncode, p.stderr, (2,))
    if "still running" not in p.stderr:
        lab.problems.append("a second trainer was accepted")
    victim.send_signal(signal.SIGCONT)
    _o, err = victim.communicate(timeout=300)
    lab.clean_exit("victim", victim.returncode, err, (0,))
    out.append(lab.result("stale heartbeats", "run stopped (SIGSTOP) with a 10-minute-old heartbeat"))

    # the same seen from another host: it is marked interrupted; when it wakes up it finds it lost its row
    lab = Lab(root, "hb-elsewhere")
    victim = lab.spawn(lab.run_args())
    lab.wait(lambda: lab.batches() >= 2 * B, proc=victim)
    _stop_outside_a_write(lab, victim)
    lab.sql("UPDATE runs SET heartbeat_at = ?, host = 'elsewhere' WHERE id = 1", stale)
    listed = json.loads(lab.cli("runs", "list", "--json").stdout or "[]")
    if not listed or listed[0]["status"] != "interrupted":
        lab.problems.append(f"a stale run of another host was shown as {listed[0]['status'] if listed else None}")
    rows_before = lab.q("SELECT COUNT(*) FROM metrics")
    victim.send_signal(signal.SIGCONT)
    _o, err = victim.communicate(timeout=300)
    lab.clean_exit("woken victim", victim.returncode, err, (1,))
    if "this process stopped without writing to it" not in err:
        lab.problems.append("the woken process did not notice it lost its row")
    if lab.q("SELECT COUNT(*) FROM metrics") != rows_before:
        lab.problems.append("the woken process wrote to a row it no longer owned")
    lab.resume()
    out.append(lab.result("stale heartbeats", "stale run of another host, woken up after it was marked"))

    # a writer stopped while it holds the write lock: readers answer within their bounded wait
    lab = Lab(root, "hb-lock")
    _in_process_run(lab.db, lab.ck)
    lab.sql("UPDATE runs SET status = 'running', pid = ?, host = ? WHERE id = 1", _dead_pid(), socket.gethostname())
    holder = subprocess.Popen([sys.executable, "-c",
                               "import os, signal, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); c.execute('BEGIN IMMEDIATE');"
                               "c.execute('UPDATE runs SET name = name'); print('locked', flush=True); os.kill(os.getpid(), signal.SIGSTOP)", str(lab.db)],
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    holder.stdout.readline()
    t0 = time.monotonic()
    p = lab.cli("runs", "list")
    took = time.monotonic() - t0
    lab.clean_exit("runs list", p.returncode, p.stderr, (0,))
    if "locked by another process" not in p.stderr or took > 90:  # it used to wait up to 50 × 30 s
        lab.problems.append(f"runs list took {took:.0f} s, stderr {p.stderr.strip()[:120]!r}")
    holder.kill()
    holder.wait()
    lab.sql("UPDATE runs SET status = 'completed' WHERE id = 1")
    out.append(lab.result("stale heartbeats", "writer stopped while holding the lock", note=f"`runs list` answered in {took:.1f} s"))
    return out


# ------------------------------------------------------------------------------------------ disk full
def disk_faults(root: Path) -> list[Result]:
    mnt = root / "tmpfs"
    mnt.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], check=True, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError) as e:
        why = getattr(e, "stderr", "") or str(e)
        return [Result("disk full", "catalog and checkpoints on a full tmpfs", survived=None, note=f"skipped: cannot mount a tmpfs here ({why.strip()[:80]})")]
    try:
        lab = Lab(mnt, "disk")
        lab.ck.mkdir()
        # leave ~220 KB: the catalog gets going, then the checkpoints (~60 KB each) and rows fill it up
        filler = mnt / "filler"
        free = shutil.disk_usage(mnt).free
        with open(filler, "wb") as f:
            f.write(b"\0" * max(0, free - 220_000))
        p = subprocess.run(lab.run_args(epochs=3, extra=("--set", "train.batch_size=10")), cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=600)
        lab.clean_exit("run on a full disk", p.returncode, p.stderr, (1, 2))
        note = (p.stderr.strip().splitlines() or [""])[-1][:90]
        filler.unlink()  # space again
        status = lab.scalar("SELECT status FROM runs WHERE id = 1", default=None)
        if status is None:
            lab.problems.append("no run row")
        else:
            lab.cli("runs", "list")  # marks it interrupted if its row could not be finished
            lab.resume()
        return [lab.result("disk full", "catalog and checkpoints on a full tmpfs", note=f"the run said: {note}")]
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


# ------------------------------------------------------------------------------------------ corrupt rows / pages
def corrupt_faults(root: Path) -> list[Result]:
    out = []
    lab = Lab(root, "corrupt-rows")
    _in_process_run(lab.db, lab.ck)
    _in_process_run(lab.db, lab.ck)
    _in_process_run(lab.db, lab.ck)
    lab.sql("UPDATE runs SET summary_json = '[[' WHERE id = 1")
    lab.sql("UPDATE runs SET created_at = 'garbage', progress = 'abc', config_json = 'not json', name = '[/]\x1b[2J' WHERE id = 2")
    for args in (["runs", "list"], ["runs", "list", "--json"], ["runs", "show", "1"], ["runs", "show", "2"], ["runs", "export", "2"]):
        p = lab.cli(*args)
        lab.clean_exit(" ".join(args), p.returncode, p.stderr, (0,))
        if "\x1b" in p.stdout:
            lab.problems.append(f"{' '.join(args)}: an escape sequence reached the terminal")
    p = subprocess.run(lab.run_args(train_limit=2000, batch=50, epochs=1), cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=300)
    lab.clean_exit("a new run on that catalog", p.returncode, p.stderr, (0,))
    # the damaged rows stay what they were (shown as damaged), the other runs are complete
    lab.sql("UPDATE runs SET summary_json = '{}' WHERE id = 1")
    lab.sql("UPDATE runs SET created_at = '2025-01-01 00:00:00', progress = 1.0, config_json = (SELECT config_json FROM runs WHERE id = 3) WHERE id = 2")
    out.append(lab.result("corrupt rows/pages", "rows with '[[' JSON, a 'garbage' date, text in numbers, markup"))

    lab = Lab(root, "corrupt-pages")
    _in_process_run(lab.db, lab.ck)
    con = sqlite3.connect(lab.db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    page, pages = con.execute("PRAGMA page_size").fetchone()[0], con.execute("PRAGMA page_count").fetchone()[0]
    con.close()
    with open(lab.db, "r+b") as f:
        for pg in range(pages // 2, pages - 1):
            f.seek(pg * page + 8)
            f.write(os.urandom(page - 16))
    before = lab.db.read_bytes()
    p = subprocess.run(lab.run_args(train_limit=2000, batch=50, epochs=1), cwd=REPO, env=lab.env, capture_output=True, text=True, timeout=300)
    lab.clean_exit("run on a damaged file", p.returncode, p.stderr, (2,))
    if lab.db.read_bytes() != before:
        lab.problems.append("the damaged file was written to")
    for args in (["runs", "list"], ["runs", "show", "1"]):
        r = lab.cli(*args)
        lab.clean_exit(" ".join(args), r.returncode, r.stderr)
    out.append(lab.result("corrupt rows/pages", "random pages overwritten, then `run`", audit=False,
                          note=(p.stderr.strip().splitlines() or [""])[-1][:90]))  # fmt: skip
    return out


# ------------------------------------------------------------------------------------------ WAL deletion
def wal_faults(root: Path) -> list[Result]:
    out = []
    # deleted while a run writes; the run goes on to the end
    lab = Lab(root, "wal-finish")
    victim = lab.spawn(lab.run_args())
    lab.wait(lambda: lab.batches() >= 2 * B and Path(f"{lab.db}-wal").exists(), proc=victim)
    os.remove(f"{lab.db}-wal")
    _o, err = victim.communicate(timeout=300)
    lab.clean_exit("the run", victim.returncode, err, (0,))
    out.append(lab.result("WAL deletion", "WAL deleted while a run writes; the run finishes"))

    # deleted while nothing is open (after the run above): nothing may be lost
    wal = Path(f"{lab.db}-wal")
    had = wal.exists()
    wal.unlink(missing_ok=True)
    lab.problems.clear()
    out.append(lab.result("WAL deletion", "WAL deleted while no process has the catalog open", note="no -wal file was left" if not had else ""))

    # the case SQLite cannot survive: deleted, then the writer killed
    lab = Lab(root, "wal-kill")
    victim = lab.spawn(lab.run_args(epochs=4))  # long enough to be killed mid-run
    lab.wait(lambda: lab.epochs_done() >= 1 and lab.batches() >= EPOCH_BATCHES + 2 * B and Path(f"{lab.db}-wal").exists(), proc=victim)
    witness = sqlite3.connect(f"file:{lab.db}?mode=ro", uri=True)  # opened before: it keeps seeing the deleted log
    witness.execute("SELECT COUNT(*) FROM metrics").fetchone()
    os.remove(f"{lab.db}-wal")
    time.sleep(1.0)  # the writer commits a few more batches, into the deleted log
    committed = witness.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
    _kill(victim)
    witness.close()
    after = lab.scalar("SELECT COUNT(*) FROM metrics", rw=True)
    gone = max(0, committed - after)
    lab.resume()
    r = lab.result("WAL deletion", SQLITE_CASE)
    r.survived = False  # by definition: committed transactions are gone from the catalog
    r.note = f"{gone} committed rows gone after the kill (all after the run's last checkpoint); resume recreated them: {r.rows_lost} missing after it"
    r.rows_lost = gone
    out.append(r)
    return out


CATEGORIES = {
    "kill": kill_faults,
    "signals": signal_faults,
    "races": race_faults,
    "heartbeats": heartbeat_faults,
    "disk": disk_faults,
    "corrupt": corrupt_faults,
    "wal": wal_faults,
}


def print_table(results: list[Result], seconds: float) -> None:
    cats: dict[str, list[Result]] = {}
    for r in results:
        cats.setdefault(r.category, []).append(r)
    print(f"{'category':<20} {'faults tried':>12} {'survived':>9} {'rows lost':>10}")
    for cat, rs in cats.items():
        tried = [r for r in rs if r.survived is not None]
        print(f"{cat:<20} {len(tried):>12} {sum(bool(r.survived) for r in tried):>9} {sum(r.rows_lost for r in tried):>10}")
    tried = [r for r in results if r.survived is not None]
    print(f"{'total':<20} {len(tried):>12} {sum(bool(r.survived) for r in tried):>9} {sum(r.rows_lost for r in tried):>10}   ({seconds:.0f} s)")
    print()
    for r in results:
        mark = "skipped" if r.survived is None else "ok" if r.survived else "NOT SURVIVED"
        print(f"  [{mark}] {r.category}: {r.fault}" + (f" ({r.rows_lost} rows lost)" if r.rows_lost else "") + (f" — {r.note}" if r.note else ""))
        for p in r.problems:
            print(f"      problem: {p}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", default=",".join(CATEGORIES), help=f"comma-separated categories (default all: {','.join(CATEGORIES)})")
    ap.add_argument("--json", action="store_true", help="print the results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the temporary catalogs (their directory is printed)")
    a = ap.parse_args()
    wanted = [c.strip() for c in a.only.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CATEGORIES]
    if unknown:
        ap.error(f"unknown categories {unknown}; known: {list(CATEGORIES)}")
    root = Path(tempfile.mkdtemp(prefix="adv-tui-chaos-"))
    os.environ.setdefault("ADV_TUI_CACHE", str(root / "cache"))
    shared = REPO.parent / "shared" / "data" / "mnist"
    if not os.environ.get("ADV_TUI_DATA") and shared.is_dir():
        os.environ["ADV_TUI_DATA"] = str(shared)
    print(f"chaos: {', '.join(wanted)} in {root}", file=sys.stderr)
    t0 = time.monotonic()
    results: list[Result] = []
    try:
        for cat in wanted:
            t = time.monotonic()
            try:
                got = CATEGORIES[cat](root)
            except Exception as e:  # noqa: BLE001 - a fault the script itself could not run is a finding
                got = [Result(cat, "(the category crashed)", survived=False, note=f"{type(e).__name__}: {e}")]
            results.extend(got)
            print(f"  {cat}: {sum(bool(r.survived) for r in got)}/{sum(r.survived is not None for r in got)} survived in {time.monotonic() - t:.0f} s", file=sys.stderr)
    finally:
        if not a.keep:
            shutil.rmtree(root, ignore_errors=True)
    seconds = time.monotonic() - t0
    if a.json:
        print(json.dumps({"seconds": round(seconds), "results": [asdict(r) for r in results]}, indent=2))
    else:
        print_table(results, seconds)
    bad = [r for r in results if r.survived is False and r.fault != SQLITE_CASE]
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
