"""The command palette's provider: open any loaded run by id or name."""

from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider
from textual.content import Content

from ..catalog.schema import Run
from ..safe import printable
from .safe_text import escaped


class RunsCommands(Provider):
    """Command palette: open any loaded run by id or name."""

    def _runs(self) -> list[Run]:
        from .screens.runs import RunsScreen

        for screen in self.app.screen_stack:
            if isinstance(screen, RunsScreen):
                return [screen.runs[i] for i in screen.order[:500]]
        return []

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        app = self.app
        q = query.strip().lstrip("#")
        if q.isdigit():
            yield Hit(1.0, f"Open run #{q}", partial(app.open_run, int(q)), help="open the run with this id")
        for run in self._runs():
            text = printable(f"Open run #{run.id} {run.name} ({run.status})")
            score = matcher.match(text)
            if score > 0:
                # highlight() parses its argument as markup: a name with "[" is shown plain instead
                shown = matcher.highlight(text) if "[" not in text else Content(text)
                yield Hit(score, shown, partial(app.open_run, int(run.id)), text=text, help=escaped(f"{run.experiment} · {run.claims or 'no claims'}"))

    async def discover(self) -> Hits:
        for run in self._runs()[:10]:
            text = printable(f"Open run #{run.id} {run.name} ({run.status})")
            yield DiscoveryHit(Content(text), partial(self.app.open_run, int(run.id)), text=text, help=escaped(run.experiment))
