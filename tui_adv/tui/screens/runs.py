"""Home screen: every run in the catalog, newest first, paged 200 rows at a time, updated live."""

from __future__ import annotations

import time

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.reactive import var
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import DataTable, Input, Static
from textual.worker import get_current_worker

from ...catalog.schema import Run
from ...choices import RunStatus
from ...config import dataset_of
from ..messages import CatalogUpdate, RunsPage
from ..model import STATUS_FILTERS
from ..widgets.footer import AppFooter
from .runs_table import (
    COLUMNS,
    SORTS,
    RunsTable,
    column_keys,
    column_label,
    filters_text,
    row_cells,
    run_matches,
    sort_key,
    split_filter,
    status_line,
    title_text,
)

PAGE = 200


class RunsScreen(Screen):
    """The history: sortable, filterable, newest first; space selects runs to compare."""

    HELP_TITLE = "History"
    HELP_EXTRA = (
        "enter opens the highlighted run: its live screen while it runs, its detail once it has finished. "
        "Click a column header to sort by it (again to reverse). g / G jump to the top / bottom; more rows "
        "load as you scroll (200 at a time)."
    )

    BINDINGS = [
        Binding("space", "toggle_select", "Select", show=True),
        Binding("slash", "filter", "Filter", key_display="/"),
        Binding("f", "cycle_status", "Status"),
        Binding("o", "cycle_sort", "Sort"),
        Binding("x", "cancel_run", "Cancel run"),
        Binding("r", "resume_run", "Resume", show=False),
        Binding("escape", "clear_filter", "Clear filter", show=False),
    ]

    # what the table shows; each change re-renders through its watcher (after mount: init=False)
    text_filter: var[str] = var("", init=False)  # the / filter: words, and dataset:NAME
    status_index: var[int] = var(0, init=False)  # into STATUS_FILTERS
    sort_by: var[tuple[int, bool]] = var((0, False), init=False)  # (index into SORTS, reversed)
    # totals: the runs matching the filter on the server (-1 unknown) and the loaded ones running
    total_matching: var[int] = var(0, init=False)
    running: var[int] = var(0, init=False)

    def __init__(self) -> None:
        super().__init__()
        self.runs: dict[int, Run] = {}
        self.order: list[int] = []
        self.server_rows = 0
        self.exhausted = False
        self.page_loading = False
        self.token = 0
        self.loaded = False
        self.first_page_s: float | None = None
        self._filter_timer: Timer | None = None

    # ------------------------------------------------------------------------------------------ layout
    def compose(self) -> ComposeResult:
        with Horizontal(id="runs-top", classes="topbar"):
            yield Static(id="runs-title")
            yield Static(id="runs-filters")
        yield Input(placeholder="filter by name, experiment or claim id · enter to keep · esc to clear", id="runs-filter")
        yield RunsTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Static(id="runs-status", classes="statusbar")
        yield AppFooter()

    @property
    def keys(self) -> list[str]:
        return column_keys(self.narrow, self.show_dataset)

    def _wants_dataset(self) -> bool:
        return split_filter(self.text_filter)[1] is not None or any(dataset_of(r.config_json) != "mnist" for r in self.runs.values())

    def _set_columns(self, rebuild: bool = True) -> None:
        narrow = self.app.size.width < 110
        show = self._wants_dataset()
        if narrow == self.narrow and show == self.show_dataset:
            return
        self.narrow, self.show_dataset = narrow, show
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for key, label in COLUMNS:
            if key in self.keys:
                table.add_column(column_label(key, label, narrow), key=key)
        if self.loaded and rebuild:
            self._rebuild()

    def on_resize(self) -> None:
        self._set_columns()

    def on_mount(self) -> None:
        self.narrow: bool | None = None
        self.show_dataset = False
        self._set_columns()
        self.query_one("#runs-filter", Input).display = False
        self.query_one(DataTable).focus()
        self._render_header()
        self.watch(self.app, "selected", self._selection_changed, init=False)
        self.watch(self.app, "total_runs", self._totals_changed, init=False)
        self.reload()

    # ------------------------------------------------------------------------------------------ state
    @property
    def sort_index(self) -> int:
        return self.sort_by[0]

    @property
    def sort_reverse(self) -> bool:
        return self.sort_by[1]

    def _reload_for_filters(self) -> None:
        self._render_header()
        self.reload()

    watch_text_filter = watch_status_index = _reload_for_filters

    def watch_sort_by(self) -> None:
        self._rebuild()

    def _totals_changed(self) -> None:
        self._render_header()
        self._render_status()

    watch_total_matching = watch_running = _totals_changed

    def _selection_changed(self, old: frozenset[int], new: frozenset[int]) -> None:
        """Only the rows whose mark changed are redrawn."""
        table = self.query_one(DataTable)
        for rid in old ^ new:
            if rid in self.runs:
                try:
                    table.update_cell(str(rid), "sel", self._cells(self.runs[rid])["sel"])
                except Exception:  # noqa: BLE001 - the row may be gone meanwhile
                    pass
        self._render_status()

    # ------------------------------------------------------------------------------------------ loading
    @property
    def statuses(self) -> tuple[str, ...] | None:
        return STATUS_FILTERS[self.status_index][1]

    def reload(self) -> None:
        self.token += 1
        self.page_loading = True
        self._render_status()
        self._load_page(self.token, 0, self.text_filter, self.statuses, append=False)

    @work(thread=True, exclusive=True, group="runs-page", exit_on_error=False)
    def _load_page(self, token: int, offset: int, text: str, statuses: tuple[str, ...] | None, *, append: bool) -> None:
        t0 = time.perf_counter()
        store = self.app.store
        worker = get_current_worker()
        words, dataset = split_filter(text)
        runs = store.list_runs(limit=PAGE, offset=offset, status=list(statuses) if statuses else None, text=words or None, dataset=dataset)
        total = self.app.total_runs if self.app.total_runs is not None and not text and not statuses else None
        if total is None:
            total = store.count_runs() if not text and not statuses else -1
        if worker.is_cancelled:
            return
        self.post_message(RunsPage(runs, append=append, total=total, exhausted=len(runs) < PAGE, token=token, elapsed_s=time.perf_counter() - t0))

    def on_runs_page(self, message: RunsPage) -> None:
        message.stop()
        if message.token != self.token:
            return
        self.page_loading = False
        if not message.append:
            self.runs.clear()
            self.server_rows = 0
        for r in message.runs:
            self.runs[int(r.id)] = r
        self.server_rows += len(message.runs)
        self.exhausted = message.exhausted
        if message.total >= 0:
            self.total_matching = message.total
        self._rebuild()
        if not self.loaded:
            self.loaded = True
            self.first_page_s = message.elapsed_s

    def _maybe_load_more(self) -> None:
        table = self.query_one(DataTable)
        if self.page_loading or self.exhausted or table.cursor_row < table.row_count - 40:
            return
        self.page_loading = True
        self._load_page(self.token, self.server_rows, self.text_filter, self.statuses, append=True)

    # ------------------------------------------------------------------------------------------ live updates
    def matches(self, run: Run) -> bool:
        return run_matches(run, self.statuses, self.text_filter)

    def catalog_changed(self, message: CatalogUpdate) -> None:
        """Batched: changed rows are updated in place; new runs are inserted in order."""
        if not self.loaded:
            return
        structural = False
        changed: list[Run] = []
        for run in message.runs:
            rid = int(run.id)
            known = rid in self.runs
            if not self.matches(run):
                if known:
                    del self.runs[rid]
                    structural = True
                continue
            if known:
                self.runs[rid] = run
                changed.append(run)
            elif not self.order or rid > min(self.order) or self.exhausted:
                self.runs[rid] = run
                structural = True
        if structural or (changed and self.sort_index != 0):
            self._rebuild()
        elif changed:
            table = self.query_one(DataTable)
            with self.app.batch_update():
                for run in changed:
                    self._update_row(table, run)
            self._count_running()
        self._render_status()

    def _count_running(self) -> None:
        self.running = sum(1 for r in self.runs.values() if r.status == RunStatus.RUNNING)

    # ------------------------------------------------------------------------------------------ table
    def _cells(self, run: Run) -> dict[str, object]:
        return row_cells(run, now=self.app.clock(), selected=int(run.id) in self.app.selected, narrow=self.narrow)

    def _sort_key(self):  # noqa: ANN202
        return sort_key(SORTS[self.sort_index][0], self.app.clock())

    def _rebuild(self) -> None:
        current = self.highlighted_id()
        self._set_columns(rebuild=False)  # the dataset column comes and goes with the runs loaded
        table = self.query_one(DataTable)
        runs = sorted(self.runs.values(), key=self._sort_key(), reverse=self.sort_reverse)
        self.order = [int(r.id) for r in runs]
        keys = self.keys
        with self.app.batch_update():
            table.clear()
            for run in runs:
                cells = self._cells(run)
                table.add_row(*(cells[k] for k in keys), key=str(run.id))
            if current is not None and current in self.runs:
                table.move_cursor(row=table.get_row_index(str(current)), animate=False)
        self._count_running()
        self._render_header()
        self._render_status()

    def _update_row(self, table: DataTable, run: Run) -> None:
        cells = self._cells(run)
        for key in self.keys:
            if key == "sel":
                continue
            try:
                table.update_cell(str(run.id), key, cells[key], update_width=key in ("progress", "status"))
            except Exception:  # noqa: BLE001 - the row may have been removed meanwhile
                return

    def highlighted_id(self) -> int | None:
        table = self.query_one(DataTable)
        if table.row_count == 0:
            return None
        try:
            key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key
        except Exception:  # noqa: BLE001
            return None
        return int(key.value) if key.value is not None else None

    # ------------------------------------------------------------------------------------------ header/status
    def _render_header(self) -> None:
        total = self.app.total_runs if self.app.total_runs is not None else self.total_matching
        self.query_one("#runs-title", Static).update(title_text(total, self.running))
        status = STATUS_FILTERS[self.status_index][0]
        self.query_one("#runs-filters", Static).update(filters_text(status, SORTS[self.sort_index][1], self.sort_reverse, self.text_filter))

    def _render_status(self) -> None:
        filtered = bool(self.text_filter or self.statuses)
        if self.page_loading and not self.loaded:
            text = "loading the catalog…"
        else:
            text = status_line(len(self.runs), None if filtered else self.total_matching, filtered=filtered, more=not self.exhausted,
                               selected=len(self.app.selected), catalog=self.app.catalog_label)
        self.query_one("#runs-status", Static).update(Text(text, style="dim", no_wrap=True, overflow="ellipsis"))

    # ------------------------------------------------------------------------------------------ events/actions
    @on(DataTable.RowHighlighted, "#runs-table")
    def _highlighted(self, _event: DataTable.RowHighlighted) -> None:
        self._maybe_load_more()

    @on(DataTable.RowSelected, "#runs-table")
    def _selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_open()

    @on(DataTable.HeaderSelected, "#runs-table")
    def _header(self, event: DataTable.HeaderSelected) -> None:
        key = event.column_key.value
        for i, (col, _label) in enumerate(SORTS):
            if col == key:
                self.sort_by = (i, not self.sort_reverse) if i == self.sort_index else (i, False)
                return

    def action_open(self) -> None:
        rid = self.highlighted_id()
        if rid is not None:
            self.app.open_run(rid)

    def action_toggle_select(self) -> None:
        rid = self.highlighted_id()
        if rid is None:
            return
        self.app.toggle_selected(rid)  # the watcher redraws the mark
        table = self.query_one(DataTable)
        if table.cursor_row < table.row_count - 1:
            table.move_cursor(row=table.cursor_row + 1, animate=False)

    def action_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        box.display = True
        box.focus()

    def action_clear_filter(self) -> None:
        box = self.query_one("#runs-filter", Input)
        if box.value or self.text_filter:
            box.value = ""
            self._apply_text("")
        box.display = False
        self.query_one(DataTable).focus()

    @on(Input.Changed, "#runs-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        value = event.value.strip()
        self._filter_timer = self.set_timer(0.15, lambda: self._apply_text(value))

    @on(Input.Submitted, "#runs-filter")
    def _filter_submitted(self, event: Input.Submitted) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        self._apply_text(event.value.strip())
        box = self.query_one("#runs-filter", Input)
        box.display = bool(event.value.strip())
        self.query_one(DataTable).focus()

    def _apply_text(self, value: str) -> None:
        self.text_filter = value  # reloads when it changed (watch_text_filter)

    def on_key(self, event) -> None:  # noqa: ANN001
        box = self.query_one("#runs-filter", Input)
        if event.key == "escape" and box.has_focus:
            event.stop()
            self.action_clear_filter()
        elif event.key == "down" and box.has_focus:
            event.stop()
            self.query_one(DataTable).focus()

    def action_cycle_status(self) -> None:
        self.status_index = (self.status_index + 1) % len(STATUS_FILTERS)

    def set_status_filter(self, label: str) -> None:
        for i, (name, _st) in enumerate(STATUS_FILTERS):
            if name == label:
                self.status_index = i

    def action_cycle_sort(self) -> None:
        self.sort_by = ((self.sort_index + 1) % len(SORTS), False)

    def action_resume_run(self) -> None:
        rid = self.highlighted_id()
        if rid is not None:
            self.app.resume_run(self.runs[rid])

    def action_cancel_run(self) -> None:
        rid = self.highlighted_id()
        if rid is None:
            return
        from .dialogs import confirm_cancel

        confirm_cancel(self.app, self.runs[rid])
