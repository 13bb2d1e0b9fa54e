"""A footer that lists the app's global keys first, then the screen's, then the focused widget's.

Narrower than :data:`NARROW` columns it is compact and puts the screen's keys right after ``?``/``q``,
before the other global keys (``l c s``, listed by ``?`` and the palette, and the same on every
screen), and leaves out the palette hint, so the keys of the screen at hand are the ones that fit."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


NARROW = 110
FIRST = ("help", "back")  # global actions that always come first


class AppFooter(Footer):
    _is_narrow: bool | None = None

    def _narrow(self) -> bool:
        if self._is_narrow is None:
            self._is_narrow = self.app.size.width < NARROW
        return self._is_narrow

    def on_resize(self, event) -> None:  # noqa: ANN001
        narrow = event.size.width < NARROW
        if narrow != self._is_narrow or narrow != self.compact:
            self._is_narrow = narrow
            self.compact = narrow
            self.call_after_refresh(self.recompose)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        app = self.app
        narrow = self._narrow()
        items = [(ns, b, enabled, tip) for (ns, b, enabled, tip) in active.values() if b.show]
        # stable: global (app) keys first, then screen keys, then the focused widget's keys; narrow:
        # ? and q, then the screen's and the widget's keys, then the other global keys
        if narrow:
            def rank_of(it) -> int:  # noqa: ANN001
                if it[0] is app:
                    return 0 if it[1].action in FIRST else 3
                return 1 if it[0] is self.screen else 2
        else:
            def rank_of(it) -> int:  # noqa: ANN001
                return 0 if it[0] is app else 1 if it[0] is self.screen else 2
        items.sort(key=rank_of)
        seen: set[str] = set()
        unique = []
        for it in items:
            if it[1].action not in seen:
                seen.add(it[1].action)
                unique.append(it)
        if narrow:  # what does not fit is not cut off mid-word: the row ends with "…" (it opens the help, which lists them)
            width = self.app.size.width
            used, fits = 0, []
            for i, it in enumerate(unique):
                cost = len(app.get_key_display(it[1])) + len(it[1].description) + 2
                rest = len(unique) - i - 1
                if used + cost + (3 if rest else 0) > width:
                    break
                used += cost
                fits.append(it)
            if len(fits) < len(unique):
                more = len(unique) - len(fits)
                # the last entry, "…": a click opens the help (?), which lists every key of the screen
                unique = fits + [(app, Binding("question_mark", "app.help", "", key_display="…"), True, f"{more} more keys: ? (help) lists them")]
        for _ns, binding, enabled, tooltip in unique:
            yield FooterKey(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE and not narrow:
            try:
                _node, binding, enabled, tooltip = active[app.COMMAND_PALETTE_BINDING]
            except KeyError:
                return
            yield FooterKey(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
                tooltip=binding.tooltip or binding.description,
            )
