"""The two places the dashboard relies on Textual internals, pinned in pyproject (``textual>=8.2,<9``).
If an upgrade moves them, these fail with the reason instead of the dashboard misdrawing."""

from __future__ import annotations

import inspect


def test_the_datatable_width_update_hook_still_exists():
    """widgets/table.py clears DataTable's render caches after ``_update_dimensions`` (Textual 8 keys
    the row cache on a counter the width update does not bump: truncated cells in a fresh table)."""
    from textual.widgets import DataTable

    from tui_adv.tui.widgets.table import Table

    hook = getattr(DataTable, "_update_dimensions", None)
    assert callable(hook) and list(inspect.signature(hook).parameters) == ["self", "new_rows"]
    assert callable(getattr(DataTable, "_clear_caches", None))
    assert Table._update_dimensions is not DataTable._update_dimensions


def test_the_footer_key_widget_takes_what_the_footer_gives_it():
    """widgets/footer.py composes FooterKey(key, key_display, description, action, disabled=, tooltip=)."""
    from textual.widgets._footer import FooterKey

    params = inspect.signature(FooterKey.__init__).parameters
    assert list(params)[1:5] == ["key", "key_display", "description", "action"]
    assert {"disabled", "tooltip", "classes"} <= set(params)


def test_the_app_overrides_only_the_textual_methods_it_means_to():
    """A method of AdvApp that happens to share a name with one of Textual's App replaces it for Textual
    too: ``clear_selection`` (Textual's text selection, called by every Input) once unselected the runs
    marked to compare whenever a filter was typed. The overrides are these, each on purpose."""
    from textual.app import App

    from tui_adv.tui.app import AdvApp

    meant = {
        "notify": "notifications as plain text, never markup",
        "get_system_commands": "the palette's commands",
        "check_action": "the one-letter global keys do nothing on a form",
        "action_back": "q goes back a screen, quits on the history",
    }
    overrides = {n for n, v in vars(AdvApp).items() if callable(v) and not n.startswith("_") and n.isidentifier() and n not in ("compose", "on_mount") and hasattr(App, n)}
    assert overrides == set(meant)
