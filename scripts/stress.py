#!/usr/bin/env python3
"""Stress the catalog: N concurrent headless runs on one catalog (a SQLite file, or a server such as
PostgreSQL) while a reader polls it like the dashboard does, then count what was written, what was lost
and how hard writing was.

    python scripts/stress.py [--runs 8] [--seconds S] [--epochs 3] [--train-limit 2000] [--db PATH|URL] [--json]

``--db postgresql+psycopg://user:pass@host/db`` stresses an empty database on a server (the URL is
shown without its password).

Each run is ``adv-tui run configs/softmax.toml --headless`` (small, one thread each). With ``--seconds S``
finished runs are replaced by new ones until S seconds have passed (N stay in flight); without it, one wave
of N runs. The reader, in this process, does what the dashboard's poller does at 2 Hz: the history list,
``refresh_liveness()`` every 5 s, and for every run the live screen's incremental feed (metrics, sweep
points and logs above the last id it saw, via ``tui_adv.tui.feed.RunFeed``).

Reported:
- rows written: rows stored per table (metrics, sweep points, samples, logs, runs);
- rows lost: rows each run must have written (computed from its config: every epoch metric, every
  reported batch loss, every sweep point and sample view) minus rows stored, plus rows the reader's
  incremental feed never saw; it must be 0. Duplicates (must be 0 too) are stored minus distinct keys;
- lock retries: ``database is locked`` errors retried by the writers (each run stores its
  ``Store.lock_retries`` and ``slowest_write_s`` as the ``catalog_stats`` artifact) and by the reader;
- slowest write: the longest single write transaction (including SQLite's busy-timeout wait) of any
  writer; slowest read: the reader's longest poll.

Exit status 0 when every run completed and nothing was lost or duplicated, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


@dataclass
class ReaderStats:
    polls: int = 0
    slowest_poll_s: float = 0.0
    rows_seen: dict[str, set] = field(default_factory=lambda: {"metrics": set(), "sweep_points": set(), "logs": set()})
    lock_retries: int = 0
    errors: list[str] = field(default_factory=list)


def is_url(db: str | Path) -> bool:
    return "://" in str(db)


def run_args(db: str | Path, epochs: int, train_limit: int, test_limit: int) -> list[str]:
    return [
        sys.executable, "-m", "tui_adv.cli", "run", "configs/softmax.toml", "--headless", "-q", "--json",
        "--device", "cpu", "--db", str(db),
        "--set", f"data.train_limit={train_limit}", "--set", f"data.test_limit={test_limit}",
        "--set", f"train.epochs={epochs}", "--set", "sweep.samples=2",
    ]  # fmt: skip


def expected_rows(cfg: dict) -> dict[str, int]:
    """The rows a completed run writes, from its stored config (mirrors runner/trainer reporting)."""
    from tui_adv.config import validate
    from tui_adv.core.data import load_mnist

    c = validate(cfg)
    n_train = min(c.data.train_limit or 60_000, 60_000 if not c.data.validation else 50_000)
    n_test = min(c.data.test_limit or 10_000, 10_000)
    if c.data.pair:  # the stress runs use 10 classes; a pair would need the data to count
        d = load_mnist(None, "cpu", pair=tuple(c.data.pair), validation=c.data.validation, train_limit=c.data.train_limit, test_limit=c.data.test_limit)
        n_train, n_test = len(d.train), len(d.test)
    batches = math.ceil(n_train / c.train.batch_size)
    every = max(1, batches // 50)
    reported = len({b for b in range(1, batches + 1) if b % every == 0 or b == batches})
    epoch_keys = 4 + (1 if c.train.eval_adv else 0)  # train_loss, train_error, <split>_error, lr (+ adv error)
    eps = sorted(set(float(e) for e in c.sweep.epsilons))
    sample_eps = set(float(e) for e in c.sweep.sample_epsilons)
    return {
        "metrics": c.train.epochs * (epoch_keys + reported),
        "sweep_points": len(eps) if c.sweep.enabled else 0,
        "samples": min(c.sweep.samples, n_test) * len(sample_eps) if c.sweep.enabled else 0,
    }


def reader(db: str | Path, stop: threading.Event, stats: ReaderStats, interval: float = 0.5, liveness_every: float = 5.0) -> None:
    """Poll like the dashboard: history list + liveness + one incremental feed per run, at 2 Hz."""
    try:
        from tui_adv.catalog import Store
        from tui_adv.tui.feed import RunFeed

        while not is_url(db) and not Path(db).exists() and not stop.is_set():
            time.sleep(0.05)
        store = Store(str(db))
    except Exception as e:  # noqa: BLE001 - e.g. textual missing: the reader never ran, which is a failure
        stats.errors.append(f"reader could not start: {type(e).__name__}: {e}")
        return
    feeds: dict[int, RunFeed] = {}
    last_liveness = 0.0
    try:
        while True:
            final = stop.is_set()
            t0 = time.perf_counter()
            try:
                if time.monotonic() - last_liveness >= liveness_every:
                    store.refresh_liveness()
                    last_liveness = time.monotonic()
                for r in store.list_runs(limit=200):
                    feeds.setdefault(int(r.id), RunFeed(store, int(r.id)))
                for run_id, feed in feeds.items():
                    if feed.done and not final:
                        continue
                    delta = feed.poll()
                    stats.rows_seen["metrics"].update((run_id, m.key, m.step) for m in delta.metrics or [])
                    stats.rows_seen["sweep_points"].update((run_id, p.attack, p.labels, p.epsilon) for p in delta.sweep or [])
                    stats.rows_seen["logs"].update(int(line.id) for line in delta.logs or [])
            except Exception as e:  # noqa: BLE001 - a reader error is a finding, reported at the end
                stats.errors.append(f"{type(e).__name__}: {e}")
            stats.polls += 1
            took = time.perf_counter() - t0
            stats.slowest_poll_s = max(stats.slowest_poll_s, took)
            if final:
                break
            stop.wait(max(0.0, interval - took))
    finally:
        stats.lock_retries = store.lock_retries
        store.close()


def stress(runs: int = 8, seconds: float = 0.0, *, epochs: int = 3, train_limit: int = 2000, test_limit: int = 500, db: str | Path | None = None, log=print) -> dict:
    from sqlalchemy import create_engine, text

    from tui_adv.safe import redact_url

    tmp = tempfile.mkdtemp(prefix="adv-tui-stress-")
    if db is None:
        db = Path(tmp) / "runs.db"
    url = str(db) if is_url(db) else f"sqlite:///{Path(db).absolute()}"
    shown = redact_url(url) if is_url(db) else str(db)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    env.setdefault("ADV_TUI_CHECKPOINTS", str((Path(tmp) if is_url(db) else Path(db).parent) / "checkpoints"))
    stop = threading.Event()
    rstats = ReaderStats()
    rthread = threading.Thread(target=reader, args=(db, stop, rstats), daemon=True)
    rthread.start()
    t0 = time.monotonic()
    procs: list[subprocess.Popen] = []
    results: list[tuple[int, str, str]] = []

    def launch() -> None:
        procs.append(subprocess.Popen(run_args(db, epochs, train_limit, test_limit), cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))

    for _ in range(runs):
        launch()
    log(f"stress: {runs} concurrent runs on {shown}" + (f", for {seconds:.0f} s" if seconds else ""))
    running = list(procs)
    while running:
        time.sleep(0.2)
        for p in list(running):
            if p.poll() is not None:
                out, err = p.communicate()
                results.append((p.returncode, out, err))
                running.remove(p)
                if seconds and time.monotonic() - t0 < seconds:
                    launch()
                    running.append(procs[-1])
    wall = time.monotonic() - t0
    time.sleep(0.6)
    stop.set()
    rthread.join(timeout=60)

    engine = create_engine(url)
    con = engine.connect()
    q = lambda sql, *a: con.execute(text(sql), {f"p{i}": v for i, v in enumerate(a)}).fetchall()  # noqa: E731
    integrity = q("PRAGMA integrity_check")[0][0] if not is_url(db) else "n/a (server)"
    run_rows = q("SELECT id, status, config_json, error FROM runs ORDER BY id")
    stored = {t: q(f"SELECT COUNT(*) FROM {t}")[0][0] for t in ("metrics", "sweep_points", "samples", "logs", "runs")}
    distinct = {
        "metrics": q("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, key, step FROM metrics) AS d")[0][0],
        "sweep_points": q("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, attack, labels, epsilon FROM sweep_points) AS d")[0][0],
        "samples": q("SELECT COUNT(*) FROM (SELECT DISTINCT run_id, idx, epsilon FROM samples) AS d")[0][0],
    }
    lost = {"metrics": 0, "sweep_points": 0, "samples": 0}
    per_run_missing: dict[int, dict] = {}
    for run_id, status, cfg_json, _error in run_rows:
        exp = expected_rows(json.loads(cfg_json))
        for table, n in exp.items():
            key_cols = {"metrics": "key, step", "sweep_points": "attack, labels, epsilon", "samples": "idx, epsilon"}[table]
            have = q(f"SELECT COUNT(*) FROM (SELECT DISTINCT {key_cols} FROM {table} WHERE run_id = :p0) AS d", run_id)[0][0]
            if have < n:
                lost[table] += n - have
                per_run_missing.setdefault(run_id, {})[table] = n - have
    # the reader must have seen every stored metric / sweep / log row through its incremental feed
    unseen = {
        "metrics": len({tuple(r) for r in q("SELECT run_id, key, step FROM metrics")} - rstats.rows_seen["metrics"]),
        "sweep_points": len({tuple(r) for r in q("SELECT run_id, attack, labels, epsilon FROM sweep_points")} - rstats.rows_seen["sweep_points"]),
        "logs": len({r[0] for r in q("SELECT id FROM logs")} - rstats.rows_seen["logs"]),
    }
    stats = [json.loads(r[0]) for r in q("SELECT data_json FROM artifacts WHERE kind = 'catalog_stats'")]
    con.close()
    engine.dispose()
    statuses: dict[str, int] = {}
    for _id, status, _c, _e in run_rows:
        statuses[status] = statuses.get(status, 0) + 1
    report = {
        "db": shown,
        "runs_started": len(procs),
        "runs_in_catalog": len(run_rows),
        "statuses": statuses,
        "exit_codes": sorted(rc for rc, _, _ in results),
        "wall_s": round(wall, 1),
        "rows_written": stored,
        "rows_written_total": sum(stored.values()),
        "rows_lost": lost,
        "rows_lost_total": sum(lost.values()),
        "rows_duplicated": sum(stored[t] - distinct[t] for t in distinct),
        "rows_unseen_by_reader": unseen,
        "missing_by_run": per_run_missing,
        "lock_retries_writers": sum(s["lock_retries"] for s in stats),
        "lock_retries_reader": rstats.lock_retries,
        "slowest_write_s": max([s["slowest_write_s"] for s in stats] or [0.0]),
        "reader_polls": rstats.polls,
        "reader_slowest_poll_s": round(rstats.slowest_poll_s, 4),
        "reader_errors": rstats.errors[:5],
        "integrity_check": integrity,
        "failed_stderr": [err.strip().splitlines()[-1] for rc, _, err in results if rc != 0 and err.strip()][:5],
    }
    report["ok"] = (
        report["rows_lost_total"] == 0
        and report["rows_duplicated"] == 0
        and sum(unseen.values()) == 0
        and statuses.get("completed", 0) == len(procs) == len(run_rows)
        and integrity in ("ok", "n/a (server)")
        and not rstats.errors
    )
    return report


def print_report(r: dict) -> None:
    w = r["rows_written"]
    print(f"catalog            {r['db']} (integrity_check: {r['integrity_check']})")
    print(f"runs               {r['runs_started']} started, {r['runs_in_catalog']} in the catalog, {r['statuses']}, in {r['wall_s']} s")
    print(f"rows written       {r['rows_written_total']}: " + ", ".join(f"{k} {v}" for k, v in w.items()))
    print(f"rows lost          {r['rows_lost_total']} " + json.dumps(r["rows_lost"]) + f"; duplicated {r['rows_duplicated']}; unseen by the reader {sum(r['rows_unseen_by_reader'].values())}")
    print(f"lock retries       {r['lock_retries_writers']} by the writers, {r['lock_retries_reader']} by the reader")
    print(f"slowest write      {1000 * r['slowest_write_s']:.1f} ms")
    print(f"reader             {r['reader_polls']} polls at 2 Hz, slowest {1000 * r['reader_slowest_poll_s']:.1f} ms, errors: {r['reader_errors'] or 'none'}")
    if r["missing_by_run"]:
        print(f"missing            {r['missing_by_run']}")
    if r["failed_stderr"]:
        print(f"failures           {r['failed_stderr']}")
    print("OK" if r["ok"] else "FAILED")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=8, help="concurrent runs (default 8)")
    ap.add_argument("--seconds", type=float, default=0.0, help="keep N runs in flight for this long (default: one wave)")
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--train-limit", type=int, default=2000)
    ap.add_argument("--test-limit", type=int, default=500)
    ap.add_argument("--db", default=None, help="catalog file or URL of an empty server database (default: a fresh temp file)")
    ap.add_argument("--json", action="store_true", help="print the report as JSON")
    a = ap.parse_args()
    if a.db is not None and not is_url(a.db) and Path(a.db).exists():
        ap.error(f"{a.db} exists; the counts need a fresh catalog")
    if a.db is not None and is_url(a.db):
        from tui_adv.catalog import Store
        from tui_adv.errors import UserError

        try:
            store = Store(a.db)
            n = store.count_runs()
            store.close()
        except UserError as e:
            ap.error(str(e))
        if n:
            ap.error(f"the catalog already holds {n} runs; the counts need an empty database")
    r = stress(a.runs, a.seconds, epochs=a.epochs, train_limit=a.train_limit, test_limit=a.test_limit, db=a.db, log=lambda m: print(m, file=sys.stderr))
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print_report(r)
    sys.exit(0 if r["ok"] else 1)


if __name__ == "__main__":
    main()
