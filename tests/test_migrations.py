"""Schema upgrades through Alembic: a catalog made by the adv-tui before Alembic upgrades in place
without losing a row; the revisions build exactly the tables the models describe (SQLite and a real
PostgreSQL); a server catalog that needs an upgrade is refused in one line until `adv-tui db upgrade`."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _helpers import catalog_rows, main_in_process
from sqlalchemy import create_engine, inspect, text

from tui_adv.catalog import SCHEMA_VERSION, Store
from tui_adv.catalog.migrate import HEAD, MIGRATIONS_DIR, REVISIONS, NeedsUpgrade, alembic_config

TODAY = Path(__file__).parent / "data" / "catalog_schema3.sql"  # schema 3 as adv-tui c8e8776 wrote it


def _today_catalog(path: Path) -> Path:
    con = sqlite3.connect(path)
    con.executescript(TODAY.read_text())
    con.close()
    return path


def test_the_shipped_revisions_are_the_known_ones():
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    assert script.get_current_head() == HEAD == REVISIONS[SCHEMA_VERSION]
    assert [r.revision for r in reversed(list(script.walk_revisions()))] == [REVISIONS[v] for v in sorted(REVISIONS)]


def test_a_catalog_made_before_alembic_upgrades_in_place_without_losing_a_row(tmp_path, capsys):
    db = _today_catalog(tmp_path / "runs.db")
    before = catalog_rows(db)
    assert len(before["runs"]) == 2 and len(before["metrics"]) == 32 and "alembic_version" not in before

    code, out, err = main_in_process(capsys, "runs", "list", "--db", str(db))
    assert code == 0, err
    # one line says what happened to the file
    (notice,) = [line for line in err.splitlines() if "schema" in line]
    assert f"{db}: schema upgraded in place from {REVISIONS[3]}" in notice and f"to {HEAD}" in notice
    assert "2 of 2 runs" in out

    after = catalog_rows(db)
    assert after["alembic_version"] == [(HEAD,)] and after["schema_info"] == [(1, SCHEMA_VERSION)]
    for table, rows in before.items():
        if table == "schema_info":
            continue
        assert len(after[table]) == len(rows), table
        # every old column keeps its value (new columns are appended at the end of the row)
        assert [r[: len(rows[0])] for r in after[table]] == rows, table
    assert sqlite3.connect(db).execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    # opening it again changes nothing and says nothing
    code, _out, err = main_in_process(capsys, "runs", "show", "1", "--db", str(db))
    assert code == 0 and "schema" not in err
    assert catalog_rows(db) == after


def test_the_upgraded_catalog_takes_new_runs_and_resumes(tmp_path, capsys):
    db = _today_catalog(tmp_path / "runs.db")
    s = Store(str(db))
    assert s.notice and "no row lost" in s.notice
    run = s.create_run(name="new", experiment="softmax", config_json="{}")
    assert run.id == 3
    s.add_metrics(1, [("extra", 99, 1.0)])
    s.close()
    assert len(catalog_rows(db)["metrics"]) == 33


def _schema_diff(conn) -> list:  # noqa: ANN001
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    ctx = MigrationContext.configure(conn, opts={"compare_type": True})
    diff = compare_metadata(ctx, SQLModel.metadata)
    return [d for d in diff if not (isinstance(d, tuple) and d[0] == "remove_table" and d[1].name == "alembic_version")]


def _upgrade_from_empty(url: str) -> None:
    from alembic import command

    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), "head")
    engine.dispose()


def test_the_revisions_build_exactly_the_models_tables_sqlite(tmp_path):
    url = f"sqlite:///{tmp_path / 'a.db'}"
    _upgrade_from_empty(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert _schema_diff(conn) == []
        assert conn.execute(text("SELECT version FROM schema_info")).scalar() == SCHEMA_VERSION
    engine.dispose()
    Store(url).close()  # and the store takes it as it is


def test_a_newer_revision_is_refused_in_one_line(tmp_path, capsys):
    db = tmp_path / "runs.db"
    Store(str(db)).close()
    con = sqlite3.connect(db)
    con.execute("UPDATE alembic_version SET version_num = '9999'")
    con.commit()
    con.close()
    code, _out, err = main_in_process(capsys, "runs", "list", "--db", str(db))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "9999" in err and "upgrade adv-tui" in err


def test_db_upgrade_command_on_sqlite(tmp_path, capsys):
    db = _today_catalog(tmp_path / "runs.db")
    code, out, err = main_in_process(capsys, "db", "upgrade", "--db", str(db))
    assert code == 0, err
    assert f"from schema {REVISIONS[3]}" in out and HEAD in out
    code, out, err = main_in_process(capsys, "db", "upgrade", "--db", str(db))
    assert code == 0 and "already at" in out


# ------------------------------------------------------------------------------------------ PostgreSQL
def _pg_today(url: str) -> None:
    """A PostgreSQL catalog as the adv-tui before Alembic made it: the schema-3 tables (create_all of
    that code: pid_start an INTEGER), schema_info = 3, one run with a metric, no alembic_version."""
    from alembic import command

    engine = create_engine(url)
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), REVISIONS[3])  # the schema-3 tables, as the revisions build them
        conn.exec_driver_sql("DROP TABLE alembic_version")
        conn.exec_driver_sql("ALTER TABLE runs ALTER COLUMN pid_start TYPE INTEGER")  # as that code's create_all made it
        conn.exec_driver_sql(
            "INSERT INTO runs (name, experiment, claims, config_json, status, created_at, updated_at, epoch, epochs, progress) "
            "VALUES ('old', 'softmax', '', '{}', 'completed', now(), now(), 2, 2, 1.0)"
        )
        conn.exec_driver_sql("INSERT INTO metrics (run_id, key, step, value, ts) VALUES (1, 'loss', 1, 0.5, now())")
    engine.dispose()


def test_the_revisions_build_exactly_the_models_tables_postgresql(pg_db):
    _upgrade_from_empty(pg_db)
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        assert _schema_diff(conn) == []
    engine.dispose()


def test_a_server_catalog_needing_an_upgrade_is_refused_until_db_upgrade(pg_db, capsys):
    _pg_today(pg_db)
    if HEAD == REVISIONS[3]:
        pytest.skip("no revision after schema 3 yet")
    with pytest.raises(NeedsUpgrade, match="db upgrade"):
        Store(pg_db)
    code, _out, err = main_in_process(capsys, "runs", "list", "--db", pg_db)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "adv-tui db upgrade" in err
    assert "pg-s3cret-pw" not in err and ":***@" in err
    code, out, err = main_in_process(capsys, "db", "upgrade", "--db", pg_db)
    assert code == 0, err
    assert HEAD in out and "pg-s3cret-pw" not in out + err
    s = Store(pg_db)
    (run,) = s.list_runs()
    assert run.name == "old" and [m.value for m in s.metrics(1)] == [0.5]
    s.close()
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        assert _schema_diff(conn) == []  # an upgraded catalog is the models' schema too
        assert {c["name"] for c in inspect(conn).get_columns("runs")} >= {"pid_start", "claim_token"}
    engine.dispose()


def test_a_server_catalog_opened_with_auto_upgrade_is_upgraded(pg_db):
    _pg_today(pg_db)
    s = Store(pg_db, auto_upgrade=True)
    assert s.get_run(1).name == "old"
    s.close()
    engine = create_engine(pg_db)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar() == HEAD
    engine.dispose()
