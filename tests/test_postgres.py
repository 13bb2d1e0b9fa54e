"""Every CLI command on a real PostgreSQL catalog (a throwaway cluster, see tests/pgcluster.py), with a
password that never shows in output, logs or the catalog's rows; an unreachable server is one line."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from _helpers import main_in_process
from sqlalchemy import create_engine, inspect, text

from tui_adv.catalog import Store

REPO = Path(__file__).resolve().parents[1]
SOFTMAX = str(REPO / "configs" / "softmax.toml")
TINY = ["--set", "data.train_limit=300", "--set", "data.test_limit=100", "--set", "train.epochs=2", "--set", "sweep.samples=2"]
sys.path.insert(0, str(Path(__file__).parent))
from pgcluster import PASSWORD  # noqa: E402


def _one_line(code: int, err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1, (code, err)
    assert "Traceback" not in err and PASSWORD not in err
    return lines[0]


def _everything_stored(url: str) -> str:
    """Every text value of every table, to look for the password in."""
    engine = create_engine(url)
    out = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.extend(str(v) for v in row)
    engine.dispose()
    return "\n".join(out)


@pytest.fixture
def pg_env(pg_db, tmp_path, monkeypatch, mnist_root):
    monkeypatch.setenv("ADV_TUI_CHECKPOINTS", str(tmp_path / "ck"))
    return pg_db


def test_every_command_on_a_postgresql_catalog(pg_env, capsys, mnist_root, monkeypatch, tmp_path):
    url = pg_env
    shared = tmp_path / "shared-checkpoints"  # as a directory every host mounts at the same path
    outputs: list[str] = []

    def cli(*args: str, ok: tuple[int, ...] = (0,)) -> str:
        code, out, err = main_in_process(capsys, *args)
        outputs.append(out + err)
        assert code in ok, (args, code, err)
        return out

    cli("run", SOFTMAX, "--headless", "-q", "--device", "cpu", "--db", url, *TINY)
    cli("run", SOFTMAX, "--headless", "-q", "--device", "cpu", "--db", url, "--checkpoints", str(shared), *TINY, "--set", "seed=2")
    s = Store(url)
    assert s.get_run(2).checkpoint_path.startswith(str(shared)) and not s.get_run(1).checkpoint_path.startswith(str(shared))
    s.close()
    runs = json.loads(cli("runs", "list", "--json", "--db", url))
    assert sorted(r["run_id"] for r in runs) == [1, 2] and {r["status"] for r in runs} == {"completed"}
    assert "2 of 2 runs · postgresql+psycopg://adv:***@" in cli("runs", "list", "--db", url)
    shown = json.loads(cli("runs", "show", "1", "--json", "--db", url))
    assert shown["run_id"] == 1 and shown["status"] == "completed"
    cli("runs", "show", "2", "--db", url)
    cli("runs", "export", "1", "--db", url)
    cli("report", "--db", url)
    cli("db", "upgrade", "--db", url)
    # resume: a run stopped by hand (status as a cancelled run leaves it), continued to completion
    s = Store(url)
    s.update_run(2, status="cancelled")
    s.close()
    cli("resume", "2", "--headless", "--db", url, "-q")
    s = Store(url)
    assert s.get_run(2).status == "completed" and s.count_runs() == 2
    s.close()
    # the same with $ADV_TUI_DB instead of --db
    monkeypatch.setenv("ADV_TUI_DB", url)
    assert len(json.loads(cli("runs", "list", "--json"))) == 2
    cli("runs", "show", "99", ok=(2,))

    joined = "\n".join(outputs)
    assert PASSWORD not in joined and ":***@" in joined
    assert PASSWORD not in _everything_stored(url)


def test_reproduce_on_a_postgresql_catalog(pg_env, capsys, mnist_root, monkeypatch):
    """A miniature suite (a run, then its retrain as the child) through `adv-tui reproduce`: the parent
    finishes first and the child points at it; a second reproduce reuses both."""
    import tui_adv.reproduce as rp

    small = {"data.train_limit": 300, "data.test_limit": 100, "sweep.epsilons": [0.0, 0.25], "sweep.samples": 0}
    steps = [
        rp.Step("soft_es", "softmax.toml", {**small, "train.epochs": 2, "data.validation": True, "train.early_stopping": {"metric": "valid_error", "patience": 1}}, claims=["P01"]),
        rp.Step("soft_full", retrain_of="soft_es", claims=["P01"]),
    ]
    monkeypatch.setattr(rp.orchestrator, "suite", lambda profile: steps)
    code, out, err = main_in_process(capsys, "reproduce", "--only", "P01", "--device", "cpu", "--json", "--db", pg_env)
    assert code == 0, err
    assert PASSWORD not in out + err
    s = Store(pg_env)
    parent, child = sorted(s.list_runs(), key=lambda r: r.id)
    assert parent.status == child.status == "completed" and child.parent_id == parent.id
    assert parent.finished_at <= child.started_at
    code, _out, err = main_in_process(capsys, "reproduce", "--only", "P01", "--device", "cpu", "--db", pg_env)
    assert code == 0 and err.count("reused") == 2 and s.count_runs() == 2
    s.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # closed again when this returns: nothing listens there


def test_an_unreachable_server_is_one_line(capsys):
    url = f"postgresql+psycopg://adv:{PASSWORD}@127.0.0.1:{_closed_port()}/catalog"
    for args in (["runs", "list"], ["runs", "show", "1"], ["db", "upgrade"], ["report"]):
        code, _out, err = main_in_process(capsys, *args, "--db", url)
        line = _one_line(code, err)
        assert "cannot reach the catalog server" in line and "adv:***@127.0.0.1" in line, line


def test_a_wrong_password_is_one_line_without_it(pg_server, capsys):
    from sqlalchemy.engine import make_url

    url = make_url(pg_server).set(password="not-the-password").render_as_string(hide_password=False)
    code, _out, err = main_in_process(capsys, "runs", "list", "--db", url)
    line = _one_line(code, err)
    assert "not-the-password" not in line and "password authentication failed" in line


def test_many_hosts_opening_a_fresh_server_catalog_at_once(pg_db):
    """Several processes opening an empty server catalog at the same moment: one creates the tables,
    the others wait for its schema lock and find them (no 'already exists', no duplicate version row)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(4) as pool:
        results = pool.map(_open_and_add, [pg_db] * 4)
    assert results == ["ok"] * 4, results
    s = Store(pg_db)
    assert s.count_runs() == 4
    s.close()
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM alembic_version").scalar() == 1
        assert conn.exec_driver_sql("SELECT COUNT(*) FROM schema_info").scalar() == 1
    engine.dispose()


def _open_and_add(url: str) -> str:
    try:
        s = Store(url)
        s.create_run(name="x", experiment="x", config_json="{}")
        s.close()
        return "ok"
    except Exception as e:  # noqa: BLE001
        return f"{type(e).__name__}: {e}"


@pytest.mark.slow
def test_eight_concurrent_headless_runs_on_postgresql_lose_and_duplicate_nothing(pg_db, mnist_root):
    """scripts/stress.py --db URL: 8 runs at once (own processes) while a reader polls like the dashboard."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("adv_tui_stress_pg", REPO / "scripts" / "stress.py")
    stress = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = stress
    spec.loader.exec_module(stress)
    report = stress.stress(8, epochs=1, train_limit=300, test_limit=100, db=pg_db, log=lambda m: None)
    assert report["statuses"] == {"completed": 8} and report["exit_codes"] == [0] * 8, report
    assert report["rows_lost_total"] == 0 and report["rows_duplicated"] == 0, report
    assert sum(report["rows_unseen_by_reader"].values()) == 0 and report["reader_errors"] == [], report
    assert PASSWORD not in json.dumps(report) and ":***@" in report["db"]
