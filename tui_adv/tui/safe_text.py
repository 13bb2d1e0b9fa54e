"""Catalog strings as the dashboard shows them: never as markup, never with control characters.

A run's name, experiment, error, host or log line is whatever its writer stored. Textual parses a plain
``str`` as markup in many places (DataTable cells, ``Static``, ``notify``, the command palette), so a
name like ``[/]`` crashed every screen that showed it and an ESC sequence reached the terminal raw.
Everything the dashboard shows from the catalog goes through :func:`plain` (a ``Text``, never parsed)
or, where a markup string is unavoidable, :func:`escaped`.
"""

from __future__ import annotations

from rich.text import Text
from textual.markup import escape as _escape

from ..safe import printable


def plain(value: object, style: str = "", **kw) -> Text:  # noqa: ANN003 - Text's keywords
    """``value`` as one line of literal text (control characters stripped)."""
    return Text(printable(value), style=style, **kw)


def escaped(value: object) -> str:
    """``value`` for a place that takes markup: control characters stripped, markup escaped."""
    return _escape(printable(value))
