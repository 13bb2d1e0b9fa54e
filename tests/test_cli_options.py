"""The CLI's options: choices and environment variables shown in --help, which ``--db`` wins, the
``reproduce --headless/--dashboard`` switch, and ``RunStatus`` stored as the same text as before."""

from __future__ import annotations

import sqlite3

import pytest
from _helpers import main_in_process


def test_help_shows_the_choices_and_the_environment_variables(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "300")  # the choices on one line
    code, out, _ = main_in_process(capsys, "run", "--help")
    assert code == 0
    assert "auto|cpu|cuda" in out and "ADV_TUI_DB" in out and "ADV_TUI_DATA" in out
    code, out, _ = main_in_process(capsys, "runs", "export", "--help")
    assert code == 0 and "csv|json" in out
    code, out, _ = main_in_process(capsys, "runs", "list", "--help")
    assert code == 0 and "queued|running|completed|failed|cancelled|interrupted" in out
    code, out, _ = main_in_process(capsys, "reproduce", "--help")
    assert code == 0 and "quick|standard|paper" in out and "--dashboard" in out


@pytest.mark.parametrize("command", [["run"], ["resume"], ["reproduce"], ["report"], ["grid"], ["runs", "list"], ["runs", "export"]])
def test_flags_show_no_value_type_and_options_name_their_value(command, capsys, monkeypatch):
    """An on/off flag takes no value, so its help row shows none (typer's rich help printed
    ``--headless <bool>``); options that take one name it (PATH|URL, DIR, KEY=VALUE, N…)."""
    monkeypatch.setenv("COLUMNS", "300")
    code, out, _ = main_in_process(capsys, *command, "--help")
    assert code == 0
    assert "<bool>" not in out and "<str>" not in out and "<int range>" not in out, out
    assert "PATH|URL" in out


@pytest.mark.parametrize("argv", [["--device", "tpu"], ["--device", ""]])
def test_a_device_outside_the_choices_is_one_line(argv, capsys, tmp_path):
    code, _out, err = main_in_process(capsys, "run", "configs/softmax.toml", "--headless", "--db", str(tmp_path / "r.db"), *argv)
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("adv-tui: error: ") and "--device" in lines[0], err
    assert not (tmp_path / "r.db").exists()


def test_the_nearest_db_option_wins_over_the_environment(capsys, tmp_path, monkeypatch):
    """``runs list --db`` > ``adv-tui --db … runs list`` > ``$ADV_TUI_DB``; the table names its catalog."""
    from tui_adv.catalog import Store

    env, top, sub = (tmp_path / f"{n}.db" for n in ("env", "top", "sub"))
    for p in (env, top, sub):
        Store(str(p))
    monkeypatch.setenv("ADV_TUI_DB", str(env))
    monkeypatch.setenv("COLUMNS", "400")

    def shown(*argv: str) -> str:
        code, out, err = main_in_process(capsys, *argv)
        assert code == 0, err
        return out.splitlines()[0]

    assert str(env) in shown("runs", "list")
    assert str(top) in shown("--db", str(top), "runs", "list")
    assert str(sub) in shown("--db", str(top), "runs", "list", "--db", str(sub))


def test_reproduce_dashboard_refuses_json(capsys, tmp_path, mnist_root):
    code, _out, err = main_in_process(capsys, "reproduce", "--dashboard", "--json", "--only", "S05", "--db", str(tmp_path / "r.db"))
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "--json goes with --headless" in lines[0], err


def test_a_run_status_is_stored_as_its_text(tmp_path):
    """A ``RunStatus`` is bound as plain text in writes and filters (psycopg would dump an Enum as its
    name, ``FAILED``), so the stored values are the same words as before the enum existed."""
    from tui_adv.catalog import Store
    from tui_adv.catalog.schema import StatusText
    from tui_adv.choices import ACTIVE, RunStatus

    bound = StatusText().process_bind_param(RunStatus.FAILED, None)
    assert type(bound) is str and bound == "failed"
    db = tmp_path / "r.db"
    store = Store(str(db))
    run = store.create_run(name="n", experiment="e", config_json="{}", status=RunStatus.QUEUED)
    store.update_run(run.id, status=RunStatus.FAILED)
    assert sqlite3.connect(db).execute("SELECT status FROM runs").fetchall() == [("failed",)]
    assert [r.id for r in store.list_runs(status=[RunStatus.FAILED])] == [run.id]
    assert store.list_runs(status=list(ACTIVE)) == []
