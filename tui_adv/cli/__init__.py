"""The ``adv-tui`` command: the dashboard, headless runs, and the run catalog.

stdout carries results (tables, ``--json``); progress bars and diagnostics go to stderr. Errors the
user can fix print one line (``adv-tui: error: …``) and exit 2; a run that did not complete exits 1.

Thin commands only: ``app`` (the typer app, shared options, :func:`main`), ``run`` (run, resume, data),
``runs`` (runs list/show/export/cancel), ``suite`` (reproduce, report), ``db`` (db upgrade), ``grid`` (grids of runs), ``render`` (how they print).
"""

from __future__ import annotations

from . import db as _db, grid as _grid, run as _run, runs as _runs, suite as _suite  # noqa: F401 - importing registers the commands
from .app import app, main

__all__ = ["app", "main"]
