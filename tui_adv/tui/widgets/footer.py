"""A footer that lists the app's global keys first, then the screen's, then the focused widget's."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


class AppFooter(Footer):
    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        active = self.screen.active_bindings
        app = self.app
        items = [(ns, b, enabled, tip) for (ns, b, enabled, tip) in active.values() if b.show]
        # stable: global (app) keys first, then screen keys, then the focused widget's keys
        rank = {id(app): 0, id(self.screen): 1}
        items.sort(key=lambda it: rank.get(id(it[0]), 2))
        seen: set[str] = set()
        for _ns, binding, enabled, tooltip in items:
            if binding.action in seen:
                continue
            seen.add(binding.action)
            yield FooterKey(
                binding.key,
                app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=Footer.compact)
        if self.show_command_palette and app.ENABLE_COMMAND_PALETTE:
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
