"""The history table: its columns, the cells of one run's row, the sort orders and the filter.

This module owns what the history screen (:mod:`.runs`) shows in its table and in which order: the
columns (all, or the narrow set under 110 columns; the dataset column only when asked for), the
formatted cells of a run's row (:func:`row_cells`), the sort keys of the ``o`` / header-click orders
(:func:`sort_key`), and what the filter box and the status filter keep (:func:`split_filter`,
:func:`run_matches`), and the text of the header and status bar. The screen keeps the state (which sort, which filter, what is loaded) and the table.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from rich.text import Text
from textual.binding import Binding

from ...catalog.schema import Run, damage_of
from ...choices import ACTIVE, RunStatus
from ...config import dataset_of
from ..model import (
    STATUS_GLYPH,
    STATUS_STYLE,
    duration,
    elapsed_s,
    fmt_started,
    hex_colour,
    pct,
    phase_text,
    progress_bar,
    run_colour,
    run_label,
)
from ..safe_text import plain
from ..widgets.table import Table

COLUMNS = [
    ("sel", " "),
    ("id", "id"),
    ("name", "name"),
    ("experiment", "experiment"),
    ("dataset", "data"),  # shown once a run on another dataset than MNIST is loaded, or the filter names one
    ("status", "status"),
    ("progress", "progress"),
    ("clean", "clean err"),
    ("fgsm", "FGSM ε=.25"),
    ("duration", "duration"),
    ("device", "device"),
    ("started", "started"),
]
# Under 110 columns (an 80×24 terminal) the table keeps what identifies a run and its two headline numbers
# inside the width: an active run's percent moves into its status cell, the headers shorten, names stop
# at 18 characters, and a shown dataset column (short names) takes the duration's place.
NARROW_KEYS = ("sel", "id", "name", "status", "clean", "fgsm", "duration")
NARROW_LABELS = {"clean": "clean", "fgsm": "FGSM .25", "duration": "time"}
NARROW_NAME = 18
SHORT_DATASET = {"fashion_mnist": "fashion"}
SORTS: list[tuple[str, str]] = [
    ("id", "newest"),
    ("name", "name"),
    ("status", "status"),
    ("clean", "clean err"),
    ("fgsm", "FGSM err"),
    ("duration", "duration"),
    ("experiment", "experiment"),
]


def split_filter(text: str) -> tuple[str, str | None]:
    """The filter box's text as (words matched against name, experiment and claims; the dataset named by a
    ``dataset:NAME`` / ``data:NAME`` token, else None)."""
    words, dataset = [], None
    for tok in text.split():
        head, sep, rest = tok.partition(":")
        if sep and head.lower() in ("dataset", "data") and rest:
            dataset = rest.lower()
        else:
            words.append(tok)
    return " ".join(words), dataset


class RunsTable(Table):
    """The history table; enter opens the highlighted run (shown in the footer)."""

    BINDINGS = [
        Binding("enter", "select_cursor", "Open"),
        Binding("g", "scroll_top", "Top", show=False),
        Binding("G", "scroll_bottom", "Bottom", show=False),
    ]


def column_keys(narrow: bool | None, show_dataset: bool) -> list[str]:
    """The keys of the columns shown: all of them, or the narrow set; the dataset column only when shown
    (in the narrow set it replaces the duration)."""
    if not narrow:
        return [k for k, _ in COLUMNS if k != "dataset" or show_dataset]
    keys = [k for k, _ in COLUMNS if k in NARROW_KEYS or (k == "dataset" and show_dataset)]
    return [k for k in keys if not (show_dataset and k == "duration")]


def column_label(key: str, label: str, narrow: bool | None) -> str:
    """A column's header: the short one in the narrow set."""
    return NARROW_LABELS.get(key, label) if narrow else label


def run_matches(run: Run, statuses: tuple[str, ...] | None, text_filter: str) -> bool:
    """Whether a run passes the status filter and the filter box's text (words and ``dataset:NAME``)."""
    if statuses and run.status not in statuses:
        return False
    if text_filter:
        words, dataset = split_filter(text_filter)
        if dataset is not None and dataset_of(run.config_json) != dataset:
            return False
        t = words.lower()
        return not t or any(t in (v or "").lower() for v in (run.name, run.experiment, run.claims))
    return True


def row_cells(run: Run, *, now: datetime, selected: bool, narrow: bool | None) -> dict[str, object]:
    """The cells of a run's row, by column key (``selected``: it is selected to compare)."""
    rid = int(run.id)
    d = dataset_of(run.config_json)
    sel = Text("◆", style=hex_colour(run_colour(rid))) if selected else Text(" ")
    glyph = STATUS_GLYPH.get(run.status, "?")
    status = plain(f"{glyph} {run.status}", style=STATUS_STYLE.get(run.status, ""))
    if damage_of(run):  # shown, as far as it can be read, instead of taking the table down
        status.append(" damaged", style="bold red")
    live = phase_text(run)
    if narrow and run.status in ACTIVE:
        status.append(f" {100 * (run.progress or 0):.0f}%", style="")
    if run.status in ACTIVE:
        prog = Text("" if narrow else progress_bar(run.progress, 6) + " ", style="green")
        prog.append(f"{100 * (run.progress or 0):3.0f}%", style="")
        if live:
            prog.append(" " + live.replace("epoch ", "ep "), style="dim")
    else:
        prog = Text(f"{100 * (run.progress or 0):3.0f}%", style="dim" if run.status == RunStatus.COMPLETED else "")
    return {
        "sel": sel,
        "id": Text(str(rid), justify="right"),
        "name": plain(run_label(run, limit=NARROW_NAME if narrow else 44)),
        "experiment": plain(run.experiment),
        "dataset": plain(SHORT_DATASET.get(d, d) if narrow else d),
        "status": status,
        "progress": prog,
        "clean": Text(pct(run.clean_error), justify="right"),
        "fgsm": Text(pct(run.fgsm_error), justify="right"),
        "duration": Text(duration(run, now), justify="right"),
        "device": plain(run.device or "—"),
        "started": fmt_started(run),
    }


def sort_key(col: str, now: datetime) -> Callable[[Run], object]:
    """The sort key of one of the :data:`SORTS` orders (``col``: its column key)."""
    if col == "id":
        return lambda r: -int(r.id)
    if col == "name":
        return lambda r: (r.name.lower(), -int(r.id))
    if col == "experiment":
        return lambda r: (r.experiment.lower(), -int(r.id))
    if col == "status":
        order = {s: i for i, s in enumerate((RunStatus.RUNNING, RunStatus.QUEUED, RunStatus.INTERRUPTED, RunStatus.FAILED, RunStatus.CANCELLED, RunStatus.COMPLETED))}
        return lambda r: (order.get(r.status, 9), -int(r.id))
    if col == "clean":
        return lambda r: (r.clean_error is None, r.clean_error or 0.0, -int(r.id))
    if col == "fgsm":
        return lambda r: (r.fgsm_error is None, r.fgsm_error or 0.0, -int(r.id))
    if col == "duration":
        return lambda r: (-(elapsed_s(r, now) or -1.0), -int(r.id))
    return lambda r: -int(r.id)


# ------------------------------------------------------------------------------------------ header/status
def title_text(total: int | None, running: int) -> Text:
    """The history's title: how many runs the catalog holds, how many of the loaded ones run."""
    title = Text.assemble(("adv-tui", "bold"), "  runs  ", (f"{total:,} in catalog" if total else "empty catalog", "dim"))
    if running:
        title.append(f"  ● {running} running", style="bold green")
    return title


def filters_text(status: str, sort: str, reverse: bool, text_filter: str) -> Text:
    """The top bar's right side: the status filter, the sort order and the text filter."""
    filt = Text()
    filt.append("status ", style="dim")
    filt.append(status, style="bold")
    filt.append("  sort ", style="dim")
    filt.append(sort + (" ↑" if reverse else ""), style="bold")
    if text_filter:
        filt.append("  filter ", style="dim")
        filt.append(f"“{text_filter}”", style="bold")
    return filt


def status_line(shown: int, total: int | None, *, filtered: bool, more: bool, selected: int, catalog: str) -> str:
    """The status bar: rows loaded (of how many), the selection, the catalog; or why nothing shows."""
    if not shown:
        return "no runs match the filter (esc clears it)" if filtered else f"no runs yet in {catalog} · press l to launch one"
    sel = f" · {selected} selected (c compares)" if selected else " · space selects runs to compare"
    of = f" of {total:,}" if total and total > shown else ""
    return f"{shown:,}{of} runs loaded{' (scroll for more)' if more else ''}{sel} · {catalog}"
