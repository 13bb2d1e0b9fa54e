"""The ``adv-tui`` dashboard: the App, its catalog poller, commands, and the CLI entry points.

Threading model: the UI thread never touches the catalog. One app-level thread worker polls the
catalog (≤ 2 Hz) for run rows updated since the last poll and posts them as a :class:`CatalogUpdate`;
screens that show one run own a thread worker that reads that run's new rows (ids above the last seen).
Runs are trained by separate ``adv-tui run --headless`` processes, never in this one.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any, Iterable

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

from ..catalog.schema import Run
from ..choices import ACTIVE
from ..catalog.store import READER_LOCK_WAIT_S, Store
from ..errors import UserError
from ..safe import printable, redact_url
from .commands import RunsCommands
from .feed import reap_ray_launches, sleep_unless_cancelled
from .messages import CatalogProblem, CatalogUpdate
from ..services.launch import Launched, configured_ray_address, spawn_resume, spawn_run
from .model import Clock, STATUS_FILTERS, real_clock, resumable

POLL_INTERVAL_S = 0.5  # at most 2 catalog refreshes a second
LIVENESS_INTERVAL_S = 5.0


class AdvApp(App):
    """The dashboard."""

    TITLE = "adv-tui"
    SUB_TITLE = "FGSM runs"
    CSS_PATH = "app.tcss"
    COMMANDS = App.COMMANDS | {RunsCommands}
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("question_mark", "help", "Help", key_display="?"),
        Binding("q", "back", "Back/Quit"),
        Binding("l", "launch", "Launch"),
        Binding("c", "compare", "Compare"),
        Binding("s", "scorecard", "Scorecard"),
        Binding("slash", "filter", "Filter", key_display="/", show=False),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]

    # state the screens follow (``self.watch(app, …)``): the runs marked to compare, and how many runs
    # the catalog holds (the poller sets it; None until the first poll)
    selected: var[frozenset[int]] = var(frozenset())
    total_runs: var[int | None] = var(None)

    def __init__(
        self,
        store: Store,
        *,
        data_dir: str | None = None,
        launch: tuple[str, list[str], str | None] | None = None,
        resume: tuple[int, str | None] | None = None,
        clock: Clock | None = None,
        poll_interval: float = POLL_INTERVAL_S,
        liveness_interval: float = LIVENESS_INTERVAL_S,
        config_dirs: list[Path] | None = None,
        poll: bool = True,
        catalog_label: str | None = None,
    ) -> None:
        super().__init__()
        self.store = store
        self.catalog_label = catalog_label or _label(store.url)
        self.data_dir = data_dir
        self.launch_request = launch
        self.resume_request = resume  # (run id, device) from `adv-tui resume ID` without --headless
        self.clock: Clock = clock or real_clock
        self.poll_interval = max(poll_interval, 0.05)
        self.liveness_interval = liveness_interval
        self.config_dirs = config_dirs
        self.poll_enabled = poll
        self.launched: dict[int, Launched] = {}
        self.ray_launched: dict[int, Launched] = {}  # children that sent a run to Ray (feed.reap_ray_launches)
        self.ray_address = configured_ray_address()
        self.catalog_problem: str | None = None
        self.started_at = time.monotonic()

    def notify(self, message: str, *, title: str = "", severity="information", timeout: float | None = None, markup: bool = False) -> None:  # noqa: ANN001
        """Notifications are plain text (they often carry catalog strings: names, errors, hosts)."""
        super().notify(printable(message, multiline=True), title=printable(title), severity=severity, timeout=timeout, markup=markup)

    # ------------------------------------------------------------------------------------------ setup
    def on_mount(self) -> None:
        from .screens.runs import RunsScreen
        from .settings import load_settings, save_setting

        theme = load_settings().get("theme")
        if isinstance(theme, str) and theme in self.available_themes:
            self.theme = theme  # the theme chosen last time (ctrl+p → themes)
        self.theme_changed_signal.subscribe(self, lambda t: save_setting("theme", t.name))

        self.push_screen(RunsScreen())
        if self.poll_enabled:
            self.poll_catalog()
        if self.launch_request:
            config, overrides, device = self.launch_request
            self.launch_run(config, overrides, device)
        if self.resume_request:
            run_id, device = self.resume_request
            run = self.store.get_run(run_id)
            if run is None:
                self.notify(f"run {run_id} is not in this catalog", severity="error")
            else:
                self.resume_run(run, device=device)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Launch a run", "pick a config, edit epochs/ε/α/device/seed and start it (l)", self.action_launch)
        yield SystemCommand("Compare selected runs", "overlay accuracy-vs-ε and training curves (c)", self.action_compare)
        yield SystemCommand("Scorecard", "the paper's claims: measured vs paper (s)", self.action_scorecard)
        yield SystemCommand("Runs history", "back to the table of all runs", self.action_home)
        for label, statuses in STATUS_FILTERS:
            yield SystemCommand(f"Show {label} runs", f"filter the history by status: {label}", partial(self.set_status_filter, label))
        yield SystemCommand("Clear selection", "unselect all runs marked for comparison", self.clear_run_selection)
        yield SystemCommand("Help", "keys of this screen and global keys (?)", self.action_help)
        yield from super().get_system_commands(screen)

    # ------------------------------------------------------------------------------------------ poller
    @work(thread=True, exclusive=True, group="catalog-poll", exit_on_error=False)
    def poll_catalog(self) -> None:
        worker = get_current_worker()
        since: datetime = self.clock() - timedelta(seconds=10)
        last_liveness = 0.0
        problem = False
        while not worker.is_cancelled:
            t0 = time.monotonic()
            try:
                dead: list[int] = []
                if t0 - last_liveness >= self.liveness_interval:
                    for launched in list(self.launched.values()):
                        launched.exited()  # reap finished children, so a dead one is not a zombie "alive"
                    dead = self.store.refresh_liveness()
                    for text, severity in reap_ray_launches(self.store, self.ray_launched):
                        self.call_from_thread(self.notify, text, severity=severity, timeout=10)
                    last_liveness = t0
                runs = self.store.runs_updated_since(since)
                if runs:
                    since = max(r.updated_at for r in runs)
                total = self.store.count_runs()
                if runs or dead or total != self.total_runs:
                    self.post_message(CatalogUpdate(runs, total, dead))
                if problem:
                    problem = False
                    self.post_message(CatalogProblem(None))
            except Exception as e:  # noqa: BLE001 - keep polling; tell the user once
                if not problem:
                    problem = True
                    self.post_message(CatalogProblem(f"catalog unreachable: {str(e).splitlines()[0] if str(e) else type(e).__name__} (retrying)"))
            wait = self.poll_interval - (time.monotonic() - t0)
            sleep_unless_cancelled(worker, wait if not problem else 2.0)

    def on_catalog_update(self, message: CatalogUpdate) -> None:
        # A poll posted just before quitting can be dispatched while Textual tears the screens down
        # (App._shutdown clears `is_running` first, then prunes each screen's children): a screen
        # without its widgets must not be asked to redraw them.
        if not self.is_running:
            return
        if message.total is not None:
            self.total_runs = message.total
        for screen in list(self.screen_stack):
            handler = getattr(screen, "catalog_changed", None)
            if handler is not None and screen.is_running and screen.is_attached:
                handler(message)
        if message.interrupted:
            ids = ", ".join(f"#{i}" for i in message.interrupted)
            self.notify(f"run {ids} marked interrupted: its process is gone", severity="warning")

    def on_catalog_problem(self, message: CatalogProblem) -> None:
        self.catalog_problem = message.text
        if message.text:
            self.notify(message.text, severity="error", timeout=8)
        else:
            self.notify("catalog reachable again")

    # ------------------------------------------------------------------------------------------ actions
    def action_back(self) -> None:
        from .screens.runs import RunsScreen

        if isinstance(self.screen, RunsScreen) or len(self.screen_stack) <= 2:
            self.exit()
        else:
            self.pop_screen()

    def action_home(self) -> None:
        from .screens.runs import RunsScreen

        while len(self.screen_stack) > 2 and not isinstance(self.screen, RunsScreen):
            self.pop_screen()

    def action_help(self) -> None:
        from .screens.dialogs import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(self.screen))

    def check_action(self, action: str, parameters: tuple) -> bool | None:  # noqa: ARG002
        """On a form (the Launch screen, dialogs with fields) the one-letter global keys do nothing, even
        with focus on its list or a button: a letter typed there is never taken as a command."""
        if action in ("launch", "compare", "scorecard", "filter") and getattr(self.screen, "FORM", False):
            return False
        return True

    def action_launch(self) -> None:
        from .screens.launch import LaunchScreen

        if not isinstance(self.screen, LaunchScreen):
            self.push_screen(LaunchScreen())

    def action_scorecard(self) -> None:
        from .screens.scorecard import ScorecardScreen

        if not isinstance(self.screen, ScorecardScreen):
            self.push_screen(ScorecardScreen())

    def action_filter(self) -> None:
        from .screens.runs import RunsScreen

        self.action_home()
        screen = self.screen
        if isinstance(screen, RunsScreen):
            screen.action_filter()

    def set_status_filter(self, label: str) -> None:
        from .screens.runs import RunsScreen

        self.action_home()
        if isinstance(self.screen, RunsScreen):
            self.screen.set_status_filter(label)

    def clear_run_selection(self) -> None:
        # not ``clear_selection``: that is Textual's own App method (text selection), which every Input
        # calls as its cursor moves; overriding it once made typing a filter unselect the runs
        self.selected = frozenset()

    def toggle_selected(self, run_id: int) -> None:
        self.selected = self.selected ^ {run_id}

    def select_runs(self, ids: Iterable[int]) -> None:
        self.selected = self.selected | frozenset(ids)

    def action_compare(self) -> None:
        from .screens.compare import CompareScreen

        ids = sorted(self.selected)
        if len(ids) < 2:
            self.notify("select at least two runs with space in the history, then press c", severity="warning")
            return
        if isinstance(self.screen, CompareScreen):
            return
        self.push_screen(CompareScreen(ids))

    def open_run(self, run_id: int, *, detail: bool | None = None) -> None:
        """Open a run: the live screen while it is active, else its detail screen (decided off-thread)."""
        self._open_run(run_id, detail)

    @work(thread=True, group="open-run", exit_on_error=False)
    def _open_run(self, run_id: int, detail: bool | None) -> None:
        try:
            run = self.store.get_run(run_id)
        except UserError as e:
            self.call_from_thread(self.notify, str(e), severity="error")
            return
        except Exception as e:  # noqa: BLE001
            self.call_from_thread(self.notify, f"cannot read run {run_id}: {e}", severity="error")
            return
        self.call_from_thread(self._push_run, run, detail)

    def _push_run(self, run: Run, detail: bool | None) -> None:
        if detail is None:
            detail = run.status not in ACTIVE
        self.show_run(int(run.id), run, detail=detail)

    def show_run(self, run_id: int, run: Run | None, *, detail: bool, replace: bool = False) -> None:
        """The one place that routes to a run's screens: its detail or its live screen, pushed, or in
        place of the current one (``replace``: the live ↔ detail switch), so the two screens never
        import each other."""
        from .screens.detail import RunDetailScreen
        from .screens.live import LiveRunScreen

        screen = RunDetailScreen(run_id, run=run) if detail else LiveRunScreen(run_id, run=run)
        if replace:
            self.switch_screen(screen)
        else:
            self.push_screen(screen)

    def launch_run(self, config: str, overrides: list[str], device: str | None, *, data_dir: str | None = None, ray: bool = False) -> Launched | None:
        """Start a headless run process and show its live screen (``ray``: the process sends the run to
        the configured Ray cluster; it shows in the history once a worker starts it)."""
        from .screens.live import LiveRunScreen

        address = self.ray_address if ray else None
        try:
            launched = spawn_run(config, overrides, db_url=self.store.url, data_dir=data_dir or self.data_dir, device=device, ray_address=address)
        except OSError as e:
            self.notify(f"cannot start the run: {e}", severity="error")
            return None
        if address:
            self.ray_launched[launched.pid] = launched
            self.notify(f"sent {Path(config).name} to Ray at {address} (pid {launched.pid}); it shows here when a worker starts it", title="run sent to Ray")
            return launched
        self.launched[launched.pid] = launched
        self.notify(f"started {Path(config).name} (pid {launched.pid}); it keeps running if you quit", title="run launched")
        self.push_screen(LiveRunScreen(None, launched=launched))
        return launched


    def resume_run(self, run: Run, device: str | None = None) -> Launched | None:
        """Continue a stopped run from its checkpoint in a headless child and follow it live."""
        from .screens.live import LiveRunScreen

        if not resumable(run):
            why = "its checkpoint file is missing" if run.status in ("interrupted", "cancelled", "failed") else f"it is {run.status}"
            self.notify(f"run {run.id} cannot be resumed: {why}", severity="warning")
            return None
        try:
            launched = spawn_resume(int(run.id), db_url=self.store.url, data_dir=self.data_dir, device=device)
        except OSError as e:
            self.notify(f"cannot start the resume: {e}", severity="error")
            return None
        self.launched[launched.pid] = launched
        self.notify(f"resuming run {run.id} from its checkpoint (pid {launched.pid}); it keeps running if you quit", title="run resumed")
        self.push_screen(LiveRunScreen(int(run.id), launched=launched))
        return launched


def make_app(db: str | None = None, *, store: Store | None = None, **options: Any) -> AdvApp:
    """Build the app (shared by the CLI and the tests): ``options`` are :class:`AdvApp`'s keywords.
    Opening the catalog happens here, so a bad ``--db`` raises :class:`UserError` (one line, exit 2)
    before the terminal is taken over. The dashboard only reads (and marks dead runs): it waits at most
    ``READER_LOCK_WAIT_S`` for a lock, then shows the catalog as unreachable and retries."""
    return AdvApp(store if store is not None else Store(db, lock_wait_s=READER_LOCK_WAIT_S), **options)


def _label(url: str) -> str:
    """The catalog as the user would type it: a relative/home path for SQLite files, else the URL
    without its password."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///"):])
        try:
            return str(path.relative_to(Path.cwd()))
        except ValueError:
            pass
        try:
            return "~/" + str(path.relative_to(Path.home()))
        except ValueError:
            return str(path)
    return redact_url(url)


def run_app(
    db: str | None = None,
    data_dir: str | None = None,
    launch: tuple[str, list[str], str | None] | None = None,
    resume: tuple[int, str | None] | None = None,
) -> None:
    """Entry point of ``adv-tui`` (and of ``adv-tui run CONFIG`` / ``resume ID`` without ``--headless``)."""
    app = make_app(db=db, data_dir=data_dir, launch=launch, resume=resume)
    try:
        app.run()
    finally:
        app.store.close()
    if app.return_code:
        raise SystemExit(app.return_code)
