"""The dashboard on a real PostgreSQL catalog: its poller lists the runs, picks up rows another host
writes, and its title shows the URL without the password."""

from __future__ import annotations

import sys
from pathlib import Path

from textual.widgets import DataTable, Static

from tui_adv.catalog import Store

from .seed import seed_catalog

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
from pgcluster import PASSWORD  # noqa: E402


def _ids(app) -> list[int]:  # noqa: ANN001
    t = app.screen.query_one("#runs-table", DataTable)
    return [int(t.coordinate_to_cell_key((i, 0)).row_key.value) for i in range(t.row_count)]


async def test_the_dashboard_polls_a_postgresql_catalog(pg_db, until):
    from tui_adv.tui.app import make_app
    from tui_adv.tui.screens.runs import RunsScreen

    store = Store(pg_db)
    ids = seed_catalog(store)
    app = make_app(store=store, poll_interval=0.1, config_dirs=[REPO / "configs"])
    other = Store(pg_db)  # another host's runner writing to the same catalog
    try:
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
            assert _ids(app) == sorted(ids.values(), reverse=True)
            title = str(app.screen.query_one("#runs-title", Static).render())
            assert PASSWORD not in title and "6 in catalog" in title
            new = other.create_run(name="from-another-host", experiment="softmax", config_json="{}", status="queued")
            await until(pilot, lambda: int(new.id) in _ids(app))
            t = app.screen.query_one("#runs-table", DataTable)
            other.update_run(int(new.id), status="failed", error="boom")
            await until(pilot, lambda: "failed" in str(t.get_cell(str(new.id), "status")))
            assert PASSWORD not in str(app.catalog_label) and "adv:***@127.0.0.1" in str(app.catalog_label)
    finally:
        other.close()
        store.close()
