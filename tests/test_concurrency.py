"""Several writers and a dashboard-like reader on one SQLite catalog: nothing lost, nothing duplicated,
``database is locked`` retried instead of failing a run."""

from __future__ import annotations

import importlib.util
import json
import multiprocessing as mp
import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _stress_module():
    spec = importlib.util.spec_from_file_location("adv_tui_stress", REPO / "scripts" / "stress.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
def test_four_concurrent_headless_runs_with_a_polling_reader(tmp_path, mnist_root):
    stress = _stress_module()
    db = tmp_path / "runs.db"
    epochs = 2
    report = stress.stress(4, epochs=epochs, train_limit=1000, test_limit=300, db=db, log=lambda m: None)
    assert report["statuses"] == {"completed": 4}, report
    assert report["exit_codes"] == [0, 0, 0, 0], report["failed_stderr"]
    assert report["rows_lost_total"] == 0 and report["rows_duplicated"] == 0, report
    assert sum(report["rows_unseen_by_reader"].values()) == 0, report
    assert report["reader_errors"] == [] and report["reader_polls"] > 3
    assert report["integrity_check"] == "ok"
    # every epoch row of every run is there, once
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    ids = [r[0] for r in con.execute("SELECT id FROM runs WHERE status = 'completed'")]
    assert len(ids) == 4
    for run_id in ids:
        for key in ("train_loss", "train_error", "test_error", "test_adv_error", "lr"):
            steps = [s for (s,) in con.execute("SELECT step FROM metrics WHERE run_id = ? AND key = ? ORDER BY step", (run_id, key))]
            assert steps == list(range(1, epochs + 1)), (run_id, key, steps)
        assert con.execute("SELECT COUNT(*) FROM sweep_points WHERE run_id = ?", (run_id,)).fetchone()[0] == 12
        stats = json.loads(con.execute("SELECT data_json FROM artifacts WHERE run_id = ? AND kind = 'catalog_stats'", (run_id,)).fetchone()[0])
        assert set(stats) >= {"lock_retries", "slowest_write_s"}
    con.close()


def _open_and_write(path: str, start_at: float) -> str:
    while time.time() < start_at:
        pass
    try:
        from tui_adv.catalog import Store

        s = Store(path)
        run = s.create_run(name="x", experiment="x", config_json="{}")
        s.add_metrics(int(run.id), [("loss", 1, 0.5)])
        s.close()
        return "ok"
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


def test_many_processes_opening_a_fresh_catalog_at_once(tmp_path):
    """Regression: the first processes to open a new catalog raced on CREATE TABLE and the schema-version
    row ("UNIQUE constraint failed: schema_info.id"), failing a run at start-up."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(6) as pool:
        for trial in range(2):
            path = str(tmp_path / f"fresh-{trial}.db")
            start = time.time() + 2.5  # let every worker import first, then go together
            results = pool.starmap(_open_and_write, [(path, start)] * 6)
            assert results == ["ok"] * 6, results
            con = sqlite3.connect(path)
            assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 6
            assert con.execute("SELECT COUNT(*) FROM schema_info").fetchone()[0] == 1
            con.close()


def test_writes_are_retried_while_another_process_holds_the_lock(tmp_path, monkeypatch):
    """With a short busy timeout, a write that meets a held lock raises `database is locked`; the store
    backs off and retries until the lock is gone instead of losing the row."""
    import tui_adv.catalog.store as store_mod
    from tui_adv.catalog import Store

    path = tmp_path / "runs.db"
    Store(str(path)).close()
    monkeypatch.setattr(store_mod, "BUSY_TIMEOUT_MS", 20)
    store = Store(str(path))
    run_id = int(store.create_run(name="x", experiment="x", config_json="{}").id)

    holder = sqlite3.connect(path, timeout=5, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    released = threading.Event()

    def release():
        time.sleep(0.6)
        holder.execute("COMMIT")
        released.set()

    threading.Thread(target=release, daemon=True).start()
    t0 = time.monotonic()
    store.add_metrics(run_id, [("loss", s, float(s)) for s in range(1, 11)])
    assert released.is_set() and time.monotonic() - t0 >= 0.5
    assert store.lock_retries > 0
    assert [m.step for m in store.metrics(run_id)] == list(range(1, 11))
    store.close()
    holder.close()


def test_threads_writing_through_their_own_stores_lose_nothing(tmp_path):
    from tui_adv.catalog import Store

    path = str(tmp_path / "runs.db")
    setup = Store(path)
    ids = [int(setup.create_run(name=f"r{i}", experiment="x", config_json="{}").id) for i in range(4)]
    errors: list[BaseException] = []

    def writer(run_id: int) -> None:
        s = Store(path)
        try:
            for step in range(1, 41):
                s.add_metrics(run_id, [("loss", step, step / 10), ("acc", step, 1 - step / 100)])
                if step % 10 == 0:
                    s.update_run(run_id, epoch=step // 10, heartbeat_at=None)
                    s.add_metrics(run_id, [("loss", step, step / 10)])  # a rewrite must not duplicate
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        finally:
            s.close()

    def reader(stop: threading.Event) -> None:
        s = Store(path)
        while not stop.is_set():
            s.refresh_liveness()
            for run_id in ids:
                s.metrics(run_id)
            time.sleep(0.02)
        s.close()

    stop = threading.Event()
    r = threading.Thread(target=reader, args=(stop,))
    r.start()
    ws = [threading.Thread(target=writer, args=(i,)) for i in ids]
    for w in ws:
        w.start()
    for w in ws:
        w.join()
    stop.set()
    r.join()
    assert not errors, errors
    for run_id in ids:
        rows = setup.metrics(run_id)
        assert len(rows) == 80 and len({(m.key, m.step) for m in rows}) == 80
    assert setup.integrity_ok()
    setup.close()
