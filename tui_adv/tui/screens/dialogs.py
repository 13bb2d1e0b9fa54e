"""Modal dialogs: help, confirmation (cancel a run), export path."""

from __future__ import annotations

import socket

from rich.text import Text
from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Input, Label, Static

from ...catalog.schema import Run
from ...services.cancel import also_stops, cancel_blocker, cancel_run, same_process_runs
from ...errors import UserError
from ...safe import printable

class HelpScreen(ModalScreen[None]):
    BINDINGS = [Binding("escape,q,question_mark", "dismiss", "Close")]

    def __init__(self, under: Screen) -> None:
        super().__init__()
        self.under = under

    def _keys(self, bindings) -> list[tuple[str, str]]:  # noqa: ANN001
        out = []
        for b in bindings:
            if isinstance(b, Binding) and b.description:
                out.append((b.key_display or self.app.get_key_display(b), b.description))
        return out

    def compose(self) -> ComposeResult:
        title = getattr(self.under, "HELP_TITLE", type(self.under).__name__.replace("Screen", ""))
        t = Text()
        t.append("adv-tui", style="bold")
        t.append(" launches, watches and compares FGSM runs. Every run is a separate `adv-tui run --headless` "
                 "process writing to the catalog, so you can quit at any time: runs go on, and reopening the "
                 "dashboard shows them where they are.\n")

        def section(name: str, keys: list[tuple[str, str]]) -> None:
            t.append(f"\n{name}\n", style="bold underline")
            for key, desc in keys:
                t.append(f"  {key:>8}  ", style="bold")
                t.append(f"{desc}\n")

        section(f"{title} keys", self._keys(getattr(self.under, "BINDINGS", [])))
        extra = getattr(self.under, "HELP_EXTRA", "")
        if extra:
            t.append("\n" + extra.replace("`", "") + "\n", style="italic")
        shown = [b for b in self.app.BINDINGS if isinstance(b, Binding) and b.show]
        section("Global keys", self._keys(shown) + [("/", "filter the history"), ("ctrl+p", "command palette: open run #id, status filters, themes…")])
        t.append("\nq never quits while you type in a field; press esc first.\n", style="dim")
        with VerticalScroll(id="help-box"):
            yield Static(t)
            yield Label(Text("esc / q / ? closes", style="dim"))

    def action_dismiss(self) -> None:  # noqa: D102
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS = [Binding("y", "yes", "Yes"), Binding("n,escape,q", "no", "No")]

    def __init__(self, question: str, yes: str = "Yes", no: str = "No") -> None:
        super().__init__()
        self.question, self.yes, self.no = question, yes, no

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-box", classes="dialog"):
            yield Static(self.question, id="confirm-question", markup=False)  # it quotes run names
            with Horizontal(classes="buttons"):
                yield Button(f"{self.yes} (y)", variant="error", id="yes")
                yield Button(f"{self.no} (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    @on(Button.Pressed, "#yes")
    def action_yes(self) -> None:
        self.dismiss(True)

    @on(Button.Pressed, "#no")
    def action_no(self) -> None:
        self.dismiss(False)


class ExportScreen(ModalScreen[str | None]):
    """Ask where to export a run (.json or .csv decides the format)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, run_id: int) -> None:
        super().__init__()
        self.run_id = run_id

    def compose(self) -> ComposeResult:
        with Vertical(id="export-box", classes="dialog"):
            yield Static(f"Export run {self.run_id}: metrics and sweeps, as `adv-tui runs export` writes them.\nThe extension picks the format (.json or .csv); the charts go beside it as PNG (NAME-accuracy.png, NAME-training.png).")
            yield Input(value=f"run-{self.run_id}.json", id="export-path")
            yield Static("", id="export-error", classes="error")
            with Horizontal(classes="buttons"):
                yield Button("Export (enter)", variant="primary", id="export-ok")
                yield Button("Cancel (esc)", id="export-cancel")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#export-ok")
    def _ok(self) -> None:
        path = self.query_one(Input).value.strip()
        if not path.endswith((".json", ".csv")):
            self.query_one("#export-error", Static).update("the file name must end in .json or .csv")
            return
        self.dismiss(path)

    @on(Button.Pressed, "#export-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def can_signal(run: Run) -> str | None:
    """Why this dashboard cannot cancel the run (None when it can), see :func:`tui_adv.services.cancel.cancel_blocker`."""
    return cancel_blocker(run)


def confirm_cancel(app: App, run: Run) -> None:
    """Ask, then cancel: a request on the run row (its runner polls it, on any host) and SIGTERM when
    the process runs here; the runner marks it cancelled."""
    why = can_signal(run)
    if why:
        app.notify(why, severity="warning")
        return
    store = getattr(app, "store", None)

    def done(yes: bool | None) -> None:
        if not yes:
            return
        try:
            if store is None:
                raise UserError("no catalog to store the cancel request in")
            # cancel_run checks the process again at the moment of sending: the run may have ended while
            # the dialog was open, and its pid been given to an unrelated process
            app.notify(cancel_run(store, int(run.id)))
        except UserError as e:
            app.notify(str(e), severity="warning")

    here = run.host in (None, socket.gethostname())
    how = (f"Its process (pid {run.pid}) stops after the current batch" if here
           else f"Its runner on {printable(run.host)} stops at its next catalog poll (a few seconds)")
    along = ""
    if store is not None:
        try:
            along = also_stops(same_process_runs(store, run))
        except Exception:  # noqa: BLE001 - a note in a dialog must never keep it from opening
            pass
    along = f"\n{along[0].upper()}{along[1:]}." if along else ""
    app.push_screen(ConfirmScreen(f"Cancel run {run.id} · {printable(run.name)}?\n{how} and the run is marked cancelled.{along}",
                                  yes="Cancel run", no="Keep running"), done)
