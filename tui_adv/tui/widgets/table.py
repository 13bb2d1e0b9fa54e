"""DataTable with one fix: rows rendered between ``add_row`` and the idle-time width update are not
served from the render cache with their old column widths afterwards (Textual 8 keys that cache on an
update counter that the width update does not bump; seen as truncated cells in a fresh table)."""

from __future__ import annotations

from typing import Iterable

from textual.widgets import DataTable


class Table(DataTable):
    def _update_dimensions(self, new_rows: Iterable) -> None:  # noqa: ANN001
        super()._update_dimensions(new_rows)
        self._clear_caches()
