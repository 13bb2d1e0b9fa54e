"""The run catalog: round trip, idempotent writes, listing, liveness, corrupt files, schema version."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from datetime import timedelta

import pytest

from tui_adv.catalog import SCHEMA_VERSION, Sample, Store
from tui_adv.catalog.schema import SchemaInfo, utcnow
from tui_adv.catalog.store import resolve_db_url
from tui_adv.errors import NotFoundError, UserError


def _run(store: Store, **kw):
    fields = dict(name="r", experiment="softmax", config_json='{"a": 1}', claims="P01,P02", seed=3)
    fields.update(kw)
    return store.create_run(**fields)


def _point(eps, err, conf_wrong=0.7, n=100):
    return {"epsilon": eps, "accuracy": 1 - err, "error": err, "mean_confidence": 0.8, "mean_confidence_wrong": conf_wrong,
            "n": n, "n_wrong": round(err * n)}


def test_round_trip(catalog_url):
    s = Store(catalog_url)
    run = _run(s, status="running", pid=os.getpid(), host=socket.gethostname(), device="cpu", checkpoint_path="/tmp/x.pt")
    rid = run.id
    assert isinstance(rid, int)
    s.add_metrics(rid, [("train_loss", 1, 0.5), ("train_loss", 2, 0.25), ("test_error", 1, 0.1)])
    s.add_sweep_points(rid, "fgsm", "true", [_point(0.25, 0.99), _point(0.0, 0.08, conf_wrong=None)])
    pix = bytes(range(256)) * 3 + bytes(16)
    s.add_samples(rid, [Sample(run_id=0, idx=4, epsilon=0.25, label=7, clean=pix, sign=bytes([0, 1, 2]) * 261 + b"\x01",
                               adversarial=pix[::-1], clean_pred=7, clean_conf=0.9, adv_pred=3, adv_conf=0.8)])
    s.log(rid, "hello")
    s.log(rid, "warned", level="warning")
    s.set_artifact(rid, "logits", {"eps": [0, 1], "z": [[1.5, 2.5]]})
    s.update_run(rid, status="completed", clean_error=0.08, fgsm_error=0.99, summary_json='{"k": 1}')
    s.close()

    r = Store(catalog_url)  # a fresh connection reads it all back
    run = r.get_run(rid)
    assert (run.name, run.experiment, run.status, run.seed, run.device, run.claims) == ("r", "softmax", "completed", 3, "cpu", "P01,P02")
    assert run.config_json == '{"a": 1}' and run.summary_json == '{"k": 1}' and run.checkpoint_path == "/tmp/x.pt"
    assert run.clean_error == 0.08 and run.fgsm_error == 0.99
    assert run.created_at is not None and run.updated_at >= run.created_at
    assert [(m.key, m.step, m.value) for m in r.metrics(rid)] == [("train_loss", 1, 0.5), ("train_loss", 2, 0.25), ("test_error", 1, 0.1)]
    assert r.latest_metrics(rid) == {"train_loss": 0.25, "test_error": 0.1}
    sweeps = r.sweeps(rid)
    assert len(sweeps) == 1 and sweeps[0]["attack"] == "fgsm" and sweeps[0]["labels"] == "true"
    pts = sweeps[0]["points"]
    assert [p["epsilon"] for p in pts] == [0.0, 0.25]  # sorted by ε
    assert pts[0] == {"epsilon": 0.0, "accuracy": 0.92, "error": 0.08, "mean_confidence": 0.8, "mean_confidence_wrong": None, "n": 100}
    assert r.sweep_points(rid)[1].n_wrong == 99
    (smp,) = r.samples(rid)
    assert smp.run_id == rid and smp.clean == pix and smp.adversarial == pix[::-1] and len(smp.sign) == 784
    assert (smp.idx, smp.label, smp.adv_pred, smp.adv_conf) == (4, 7, 3, 0.8)
    assert [(l.message, l.level) for l in r.logs(rid)] == [("hello", "info"), ("warned", "warning")]
    assert r.artifacts(rid) == {"logits": {"eps": [0, 1], "z": [[1.5, 2.5]]}}
    assert r.integrity_ok()
    r.close()


def test_incremental_reads(store):
    rid = _run(store).id
    store.add_metrics(rid, [("a", 1, 1.0)])
    first = store.metrics(rid)
    store.add_metrics(rid, [("a", 2, 2.0), ("b", 2, 3.0)])
    newer = store.metrics(rid, after_id=first[-1].id)
    assert [(m.key, m.step) for m in newer] == [("a", 2), ("b", 2)]
    assert [m.key for m in store.metrics(rid, keys=["b"])] == ["b"]
    store.log(rid, "one")
    last = store.logs(rid)[-1].id
    store.log(rid, "two")
    assert [l.message for l in store.logs(rid, after_id=last)] == ["two"]


def test_metric_upserts_do_not_duplicate(store):
    rid = _run(store).id
    other = _run(store).id
    store.add_metrics(rid, [("loss", 1, 1.0), ("loss", 2, 2.0)])
    store.add_metrics(other, [("loss", 1, 9.0)])
    store.add_metrics(rid, [("loss", 2, 2.5)])  # a resumed run rewrites step 2
    store.add_metrics(rid, [("loss", 2, 2.75)])
    rows = store.metrics(rid)
    assert [(m.step, m.value) for m in rows] == [(1, 1.0), (2, 2.75)]
    assert [(m.step, m.value) for m in store.metrics(other)] == [(1, 9.0)]
    # sweep points, samples and artifacts are idempotent too
    store.add_sweep_points(rid, "fgsm", "true", [_point(0.1, 0.5)])
    store.add_sweep_points(rid, "fgsm", "true", [_point(0.1, 0.6)])
    store.add_sweep_points(rid, "fgsm", "predicted", [_point(0.1, 0.7)])
    assert sorted((p.labels, p.error) for p in store.sweep_points(rid)) == [("predicted", 0.7), ("true", 0.6)]
    store.set_artifact(rid, "k", [1])
    store.set_artifact(rid, "k", [2])
    assert store.artifacts(rid) == {"k": [2]}
    store.delete_metrics_after(rid, 1)
    assert [m.step for m in store.metrics(rid)] == [1]


def test_list_filter_paginate(store):
    ids = [_run(store, name=f"run{i}", experiment="maxout" if i % 2 else "softmax", status="completed" if i < 4 else "failed").id
           for i in range(7)]
    assert store.count_runs() == 7
    assert [r.id for r in store.list_runs()] == ids[::-1]
    assert [r.id for r in store.list_runs(newest_first=False)] == ids
    page1 = store.list_runs(limit=3)
    page2 = store.list_runs(limit=3, offset=3)
    page3 = store.list_runs(limit=3, offset=6)
    assert [r.id for r in page1 + page2 + page3] == ids[::-1]
    assert {r.status for r in store.list_runs(status=["failed"])} == {"failed"}
    assert len(store.list_runs(status=["failed"])) == 3
    assert {r.experiment for r in store.list_runs(text="maxout")} == {"maxout"}
    assert [r.name for r in store.list_runs(text="run5")] == ["run5"]
    assert [r.id for r in store.list_runs(ids=[ids[1], ids[4]])] == [ids[4], ids[1]]
    assert store.list_runs(status=["queued"]) == []
    store.delete_run(ids[0])
    assert store.count_runs() == 6


def test_status_is_checked(store):
    with pytest.raises(UserError):
        _run(store, status="exploded")


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_liveness_marks_dead_process_interrupted(store):
    host = socket.gethostname()
    dead = _run(store, status="running", pid=_dead_pid(), host=host, heartbeat_at=utcnow()).id
    alive = _run(store, status="running", pid=os.getpid(), host=host, heartbeat_at=utcnow()).id
    queued_dead = _run(store, status="queued", pid=_dead_pid(), host=host).id
    remote_fresh = _run(store, status="running", pid=1, host="elsewhere", heartbeat_at=utcnow()).id
    remote_stale = _run(store, status="running", pid=1, host="elsewhere", heartbeat_at=utcnow() - timedelta(hours=1)).id
    done = _run(store, status="completed", pid=_dead_pid(), host=host).id
    marked = store.refresh_liveness()
    assert sorted(marked) == sorted([dead, queued_dead, remote_stale])
    assert store.get_run(dead).status == "interrupted"
    assert store.get_run(dead).error and store.get_run(dead).finished_at is not None
    assert store.get_run(alive).status == "running"
    assert store.get_run(remote_fresh).status == "running"
    assert store.get_run(remote_stale).status == "interrupted"
    assert store.get_run(done).status == "completed"
    assert store.refresh_liveness() == []


def test_unknown_run_id(store):
    with pytest.raises(NotFoundError, match="no run with id 424242"):
        store.get_run(424242)
    with pytest.raises(NotFoundError):
        store.update_run(424242, status="failed")
    assert issubclass(NotFoundError, UserError)


@pytest.mark.parametrize("content", [b"this is not a database" * 100, os.urandom(4096), b"SQLite format 3\x00" + b"\xff" * 4000])
def test_corrupt_file_is_a_user_error(tmp_path, content):
    p = tmp_path / "runs.db"
    p.write_bytes(content)
    with pytest.raises(UserError) as ei:
        s = Store(str(p))
        s.list_runs()  # in case opening alone did not touch the pages
    msg = str(ei.value)
    assert str(p) in msg and "\n" not in msg


def test_missing_directory_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        Store(str(tmp_path / "nope" / "runs.db"))


def test_schema_version_stamped_and_newer_refused(catalog_url, tmp_path):
    s = Store(catalog_url)
    from sqlmodel import Session

    with Session(s.engine) as sess:
        assert sess.get(SchemaInfo, 1).version == SCHEMA_VERSION
    s.close()
    path = catalog_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.execute("UPDATE schema_info SET version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    with pytest.raises(UserError, match="newer"):
        Store(catalog_url)


def test_reopen_keeps_data(catalog_url):
    a = Store(catalog_url)
    rid = _run(a).id
    a.close()
    b = Store(catalog_url)
    assert b.get_run(rid).name == "r" and b.count_runs() == 1
    b.close()


def test_resolve_db_url(monkeypatch, tmp_path):
    monkeypatch.delenv("ADV_TUI_DB", raising=False)
    assert resolve_db_url(None) == "sqlite:///runs.db"
    monkeypatch.setenv("ADV_TUI_DB", str(tmp_path / "env.db"))
    assert resolve_db_url(None) == f"sqlite:///{tmp_path / 'env.db'}"
    assert resolve_db_url(str(tmp_path / "x.db")) == f"sqlite:///{tmp_path / 'x.db'}"
    assert resolve_db_url("postgresql://u@h/db") == "postgresql://u@h/db"


def test_two_stores_share_one_file(catalog_url):
    """A writer and a reader on one SQLite file (runner + dashboard) see each other's rows."""
    w, r = Store(catalog_url), Store(catalog_url)
    rid = _run(w).id
    w.add_metrics(rid, [("x", 1, 1.0)])
    assert [m.value for m in r.metrics(rid)] == [1.0]
    w.update_run(rid, status="running")
    assert r.get_run(rid).status == "running"
    w.close(), r.close()


# the sweep_points table as schema version 1 wrote it (before attack readings were recorded)
V1_SWEEP_POINTS = """CREATE TABLE sweep_points (
    id INTEGER NOT NULL, run_id INTEGER NOT NULL, attack VARCHAR NOT NULL, labels VARCHAR NOT NULL, epsilon FLOAT NOT NULL,
    accuracy FLOAT NOT NULL, error FLOAT NOT NULL, mean_confidence FLOAT NOT NULL, mean_confidence_wrong FLOAT, n INTEGER NOT NULL,
    n_wrong INTEGER NOT NULL, ts DATETIME NOT NULL, PRIMARY KEY (id),
    CONSTRAINT uq_sweep_point UNIQUE (run_id, attack, labels, epsilon), FOREIGN KEY(run_id) REFERENCES runs (id))"""


def test_a_version_1_catalog_is_migrated_without_losing_a_point(catalog_url):
    """Schema 2 adds the attack's reading (gradient, clip, cost, mask draw) to every sweep point: a
    version-1 catalog is upgraded in place, its points becoming the default reading, and then takes
    points of other readings at the same ε."""
    s = Store(catalog_url)
    rid = _run(s).id
    s.close()
    path = catalog_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("DROP TABLE sweep_points")
    con.execute(V1_SWEEP_POINTS)
    con.execute("CREATE INDEX ix_sweep_run_id_id ON sweep_points (run_id, id)")
    for i, eps in enumerate((0.0, 0.1, 0.25)):
        con.execute("INSERT INTO sweep_points VALUES (?, ?, 'fgsm', 'true', ?, ?, ?, .9, .8, 100, ?, '2026-01-01 00:00:00')",
                    (i + 1, rid, eps, 1 - eps, eps, int(100 * eps)))
    con.execute("UPDATE schema_info SET version = 1")
    con.commit()
    con.close()

    s = Store(catalog_url)
    (sw,) = s.sweeps(rid)
    assert (sw["gradient"], sw["clip"], sw["cost"], sw["masks"]) == ("eval", True, "train", 1)
    assert [p["epsilon"] for p in sw["points"]] == [0.0, 0.1, 0.25] and sw["points"][2]["error"] == 0.25
    assert [p.id for p in s.sweep_points(rid)] == [1, 2, 3]  # ids kept: the dashboard's incremental reads go on
    point = {"epsilon": 0.25, "accuracy": 0.5, "error": 0.5, "mean_confidence": 0.9, "mean_confidence_wrong": 0.8, "n": 100, "n_wrong": 50}
    s.add_sweep_points(rid, "fgsm", "true", [point], gradient="dropout", mask=1)
    s.add_sweep_points(rid, "fgsm", "true", [point], clip=False)
    assert len(s.sweep_points(rid)) == 5 and max(p.id for p in s.sweep_points(rid)) == 5
    s.close()
    con = sqlite3.connect(path)
    assert con.execute("SELECT version FROM schema_info").fetchone()[0] == SCHEMA_VERSION
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert "sweep_points_v1" not in {r[0] for r in con.execute("SELECT name FROM sqlite_master")}
    con.close()
    Store(catalog_url).close()  # opening it again migrates nothing


def test_several_processes_opening_an_old_catalog_migrate_it_once(catalog_url):
    import multiprocessing as mp

    s = Store(catalog_url)
    rid = _run(s).id
    s.add_sweep_points(rid, "fgsm", "true", [{"epsilon": 0.1, "accuracy": 0.5, "error": 0.5, "mean_confidence": 0.9,
                                              "mean_confidence_wrong": 0.8, "n": 100, "n_wrong": 50}], gradient="dropout", mask=2)
    s.close()
    path = catalog_url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_info SET version = 1")  # a stale version: a second migration must not run on top of a done one
    con.commit()
    con.close()
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_open_store, args=(catalog_url,)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    s = Store(catalog_url)
    (p,) = s.sweep_points(rid)
    assert (p.gradient, p.mask) == ("dropout", 2)  # not rebuilt as a version-1 table
    s.close()


def _open_store(url: str) -> None:
    Store(url).close()
