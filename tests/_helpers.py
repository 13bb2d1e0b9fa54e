"""Helpers shared by test modules (imported as a plain module: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import sys


def main_in_process(capsys, *args: str) -> tuple[int, str, str]:
    """``adv-tui ARGS`` in this process through ``tui_adv.cli.main`` (the console script's entry)."""
    from tui_adv.cli import main

    argv = sys.argv
    sys.argv = ["adv-tui", *args]
    code = 0
    try:
        main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        sys.argv = argv
    out, err = capsys.readouterr()
    return code, out, err


def catalog_rows(db) -> dict:
    """Every row of every table of a SQLite catalog (read-only), to compare before and after a command."""
    import sqlite3
    from pathlib import Path

    db = Path(db)
    if not db.exists():
        return {"missing": True}
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {t: con.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in tables}
    finally:
        con.close()
