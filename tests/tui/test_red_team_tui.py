"""Issue #15 in the dashboard: stored strings with markup and escape sequences, damaged rows, and a
cancel aimed at a pid that now belongs to another process."""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys

from textual.widgets import DataTable, Static

from tui_adv.catalog.store import process_start_time
from tui_adv.tui.screens.compare import CompareScreen
from tui_adv.tui.screens.detail import RunDetailScreen
from tui_adv.tui.screens.dialogs import ConfirmScreen
from tui_adv.tui.screens.live import LiveRunScreen
from tui_adv.tui.screens.runs import RunsScreen

NASTY = "[/]\x1b[2J\x1b]0;title\x07[bold red]x"


def _cells(app) -> str:
    t = app.screen.query_one("#runs-table", DataTable)
    return "\n".join(" ".join(str(c) for c in t.get_row_at(i)) for i in range(t.row_count))


def _poke(store, sql: str, *args) -> None:
    db = store.url.split("///", 1)[1]
    con = sqlite3.connect(db)
    con.execute(sql, args)
    con.commit()
    con.close()


async def test_markup_and_escape_sequences_in_stored_strings(make, seeded, until):
    store, ids = seeded
    _poke(store, "UPDATE runs SET name = ?, experiment = ?, error = ?, claims = ? WHERE id = ?", NASTY, "[b]exp", "[/red] boom\x1b[31m", "P01[/]", ids["logreg"])
    _poke(store, "UPDATE runs SET name = ? WHERE id = ?", "[link=file:///etc/passwd]click[/link]", ids["softmax"])
    _poke(store, "INSERT INTO logs (run_id, ts, level, message) VALUES (?, '2025-03-14 09:00:00', 'info', ?)", ids["softmax"], "[/]log\x1b[5m")
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        text = _cells(app)
        assert "[/]" in text and "[b]exp" in text and "[link=file:///etc/passwd]click[/link]" in text  # literally
        assert "\x1b" not in text and "\x07" not in text
        for key in ("logreg", "softmax"):
            app.open_run(ids[key])
            await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
            title = str(app.screen.query_one("#detail-title", Static).render())
            assert "\x1b" not in title
            await pilot.press("6")  # the log tab
            await pilot.press("escape")
            await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        app.open_run(ids["logreg"], detail=False)
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen) and app.screen.loaded)
        assert "[/red] boom" in str(app.screen.query_one("#live-phase", Static).render())
        await pilot.press("escape")
        app.select_runs({ids["logreg"], ids["softmax"]})
        app.action_compare()
        await until(pilot, lambda: isinstance(app.screen, CompareScreen) and app.screen.loaded)
        await pilot.press("escape")
        await pilot.press("ctrl+p")
        await pilot.press(*"open")
        await pilot.pause(0.5)
        await pilot.press("escape")
        assert app.return_code is None  # nothing crashed
    assert app.return_code in (None, 0)


async def test_damaged_rows_are_listed_and_open(make, seeded, until):
    store, ids = seeded
    _poke(store, "UPDATE runs SET created_at = 'garbage', progress = 'abc', summary_json = '[[' WHERE id = ?", ids["softmax"])
    _poke(store, "UPDATE samples SET clean = x'0102' WHERE run_id = ?", ids["softmax"])  # a short image blob
    _poke(store, "INSERT INTO artifacts (run_id, kind, data_json, ts) VALUES (?, 'weights', '{not json', '2025-03-14 09:00:00')", ids["softmax"])
    app = make()
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        assert "damaged" in _cells(app)
        app.open_run(ids["softmax"])
        await until(pilot, lambda: isinstance(app.screen, RunDetailScreen) and app.screen.loaded)
        assert "damaged" in str(app.screen.query_one("#detail-title", Static).render())
        await pilot.press("2")  # perturbation views: the short blob is a note, not an IndexError
        await pilot.pause(0.2)
        assert "damaged image" in str(app.screen.query_one("#view-clean").render())
        await pilot.press("4")
        await pilot.pause(0.2)
        assert app.return_code is None


async def test_cancel_never_signals_a_pid_that_another_process_now_has(make, seeded, until):
    """The run's process died and its pid went to an unrelated program: `x` must not signal it."""
    store, _ids = seeded
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        run = store.create_run(name="victim", experiment="softmax", config_json="{}", status="running", pid=bystander.pid,
                               pid_start=process_start_time(bystander.pid) + 1, host=socket.gethostname())  # fmt: skip
        app = make(poll=False)  # no liveness pass: the row is still shown as running
        async with app.run_test(size=(120, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
            table = app.screen.query_one("#runs-table", DataTable)
            table.move_cursor(row=table.get_row_index(str(run.id)))
            await pilot.press("x")
            await until(pilot, lambda: any("is gone" in n.message for n in app._notifications))
            assert not isinstance(app.screen, ConfirmScreen)
        assert bystander.poll() is None  # alive: nothing was sent
    finally:
        bystander.send_signal(signal.SIGKILL)
        bystander.wait()
