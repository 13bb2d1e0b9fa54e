"""End to end: launch a real tiny run (real MNIST subset, CPU) from the Launch screen, watch it complete."""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from tui_adv.tui.screens.launch import LaunchScreen
from tui_adv.tui.screens.live import LiveRunScreen
from tui_adv.tui.screens.runs import RunsScreen
from tui_adv.tui.widgets.charts import Chart

from .conftest import REPO


@pytest.mark.slow
async def test_launch_real_tiny_run_and_see_it_complete(tmp_path, mnist_root, until):
    from tui_adv.catalog import Store
    from tui_adv.tui.app import make_app

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    app = make_app(store=store, data_dir=str(mnist_root), poll_interval=0.2, config_dirs=[REPO / "configs"])
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
        await pilot.press("l")
        await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
        launch = app.screen
        launch.query_one("#launch-configs").highlighted = [c.name for c in launch.configs].index("softmax")
        await pilot.pause()
        launch.query_one("#f-epochs", Input).value = "1"
        launch.query_one("#f-eps", Input).value = "0, .1, .25"
        launch.query_one("#f-device").value = "cpu"
        launch.query_one("#f-extra", Input).value = "data.train_limit=1000 data.test_limit=300 sweep.samples=2"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, LiveRunScreen))
        live = app.screen
        await until(pilot, lambda: live.run_id is not None, timeout=60)
        await until(pilot, lambda: live.state.run is not None and live.state.run.status == "completed", timeout=90)
        await until(pilot, lambda: len(live.query_one("#chart-sweep", Chart).series) == 1)
        assert [p.epsilon for _k, pts in live.state.sweep_points() for p in pts] == [0.0, 0.1, 0.25]
        assert live.state.series("batch_loss")[0], "batch losses reached the live chart"
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))
        table = app.screen.query_one("#runs-table", DataTable)
        await until(pilot, lambda: "completed" in str(table.get_cell(str(live.run_id), "status")))
        run = store.get_run(live.run_id)
        assert run.device == "cpu" and run.epochs == 1 and run.fgsm_error is not None
    store.close()
