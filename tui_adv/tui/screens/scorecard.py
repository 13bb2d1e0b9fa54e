"""Scorecard: the paper's claims with the measured values (:func:`tui_adv.services.scorecard.scorecard_rows`)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from ...services.scorecard import row_run_ids, scorecard_rows
from ..model import fmt_value
from ..safe_text import plain
from ..widgets.footer import AppFooter
from ..widgets.table import Table

PREFERRED = ("claim", "id", "verdict", "status", "direction", "measured", "value", "paper", "expected", "title", "profile", "runs", "run_ids")
LABELS = {"direction": "paper's side"}
VERDICT_STYLE = {
    "pass": "bold green",
    "reproduced": "bold green",
    "ok": "bold green",
    "fail": "bold red",
    "not reproduced": "bold red",
    "partial": "yellow",
    "not run": "dim",
}
LONG = {"title": 28, "paper": 38, "measured": 52, "note": 40}


class ScorecardData(Message):
    def __init__(self, rows: list[dict] | None, note: str) -> None:
        super().__init__()
        self.rows, self.note = rows, note


class ScorecardScreen(Screen):
    HELP_TITLE = "Scorecard"
    BINDINGS = [
        Binding("escape", "app.back", "Back", show=False),
        Binding("enter", "open", "Open run"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict] = []
        self.loaded = False

    def compose(self) -> ComposeResult:
        yield Static(Text.assemble(("Scorecard", "bold"), ("  claims of the paper: measured vs paper · enter opens the runs behind a value", "dim")), classes="topbar")
        yield Static(Text("computing the scorecard…", style="dim"), id="scorecard-note")
        yield Table(id="scorecard-table", cursor_type="row", zebra_stripes=True)
        yield AppFooter()

    def on_mount(self) -> None:
        self.query_one(DataTable).display = False
        self.action_reload()

    def action_reload(self) -> None:
        self._load()

    @work(thread=True, exclusive=True, group="scorecard", exit_on_error=False)
    def _load(self) -> None:
        try:
            rows, note = scorecard_rows(self.app.store)
        except Exception as e:  # noqa: BLE001 - the claims module is someone else's; never crash on it
            rows, note = None, f"the scorecard could not be computed: {type(e).__name__}: {e}"
        self.post_message(ScorecardData(rows, note))

    def on_scorecard_data(self, message: ScorecardData) -> None:
        message.stop()
        self.loaded = True
        note = self.query_one("#scorecard-note", Static)
        table = self.query_one(DataTable)
        if not message.rows:
            note.update(Text(message.note, style="bold yellow"))
            table.display = False
            return
        self.rows = message.rows
        keys: list[str] = [k for k in PREFERRED if any(k in r for r in self.rows)]
        for r in self.rows:
            for k in r:
                if k not in keys and not isinstance(r[k], (dict, list)):
                    keys.append(k)
        table.clear(columns=True)
        for k in keys:
            table.add_column(LABELS.get(k, k), key=k)
        for i, r in enumerate(self.rows):
            cells = []
            for k in keys:
                v = r.get(k)
                if isinstance(v, float):
                    cell = Text(f"{v:.4g}", justify="right")
                elif k in ("verdict", "status") and isinstance(v, str):
                    cell = Text(v, style=VERDICT_STYLE.get(v.lower(), "bold"))
                else:
                    cell = fmt_value(v)
                    if k in LONG and len(cell) > LONG[k]:
                        cell = cell[: LONG[k] - 1] + "…"
                    cell = plain(cell)  # a str cell would be parsed as markup ("[0, .25]" is not a tag)
                cells.append(cell)
            table.add_row(*cells, key=str(i))
        verdicts = [str(r.get("verdict", r.get("status", ""))).lower() for r in self.rows]
        counts = {v: verdicts.count(v) for v in dict.fromkeys(verdicts) if v}
        summary = " · ".join(f"{n} {v}" for v, n in counts.items())
        hint = "  (nothing measured yet: run `adv-tui reproduce`)" if counts and set(counts) <= {"not run"} else ""
        note.update(Text(f"{len(self.rows)} claims · {summary}{hint}", style="dim"))
        table.display = True
        table.focus()

    @on(DataTable.RowSelected, "#scorecard-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    def action_open(self) -> None:
        table = self.query_one(DataTable)
        if not self.rows or table.row_count == 0:
            return
        ids = row_run_ids(self.rows[table.cursor_row])
        if not ids:
            self.app.notify("no run recorded behind this value", severity="warning")
            return
        if len(ids) > 1:
            self.app.select_runs(ids)
            self.app.notify(f"runs {', '.join(f'#{i}' for i in ids)} selected; opening #{ids[0]} (c compares them)")
        self.app.open_run(ids[0], detail=True)
