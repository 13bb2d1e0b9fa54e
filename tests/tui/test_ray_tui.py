"""The launch screen sends a run to the configured Ray cluster (``adv-tui --ray-address ADDR`` /
``$ADV_TUI_RAY_ADDRESS``): a "run on" field, the command it stands for, the run in the history once a
Ray worker starts it; a refused launch leaves a failed row with its cause. Without a configured
cluster the form has no such field (the launch snapshot is unchanged)."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Select, Static

from tui_adv.tui.screens.launch import LaunchScreen
from tui_adv.tui.screens.runs import RunsScreen

from .conftest import REPO
from .test_screens import table_ids


async def _launch_form(app, pilot, until, config="softmax"):
    await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.loaded)
    await pilot.press("l")
    await until(pilot, lambda: isinstance(app.screen, LaunchScreen))
    launch = app.screen
    launch.query_one("#launch-configs").highlighted = [c.name for c in launch.configs].index(config)
    await pilot.pause()
    return launch


def _app(tmp_path, mnist_root):
    from tui_adv.catalog import Store
    from tui_adv.tui.app import make_app

    store = Store(f"sqlite:///{tmp_path / 'runs.db'}")
    return store, make_app(store=store, data_dir=str(mnist_root), poll_interval=0.2, liveness_interval=0.5, config_dirs=[REPO / "configs"])


async def test_without_a_cluster_the_form_has_no_run_on_field(tmp_path, mnist_root, until, monkeypatch):
    monkeypatch.delenv("ADV_TUI_RAY_ADDRESS", raising=False)
    store, app = _app(tmp_path, mnist_root)
    async with app.run_test(size=(160, 48)) as pilot:
        launch = await _launch_form(app, pilot, until)
        assert not launch.query("#f-executor") and not launch.on_ray()
    store.close()


@pytest.mark.slow
async def test_a_run_sent_to_ray_from_the_launch_screen_completes_in_the_history(tmp_path, mnist_root, until, monkeypatch, ray_address):
    monkeypatch.setenv("ADV_TUI_RAY_ADDRESS", ray_address)
    store, app = _app(tmp_path, mnist_root)
    async with app.run_test(size=(160, 48)) as pilot:
        launch = await _launch_form(app, pilot, until)
        launch.query_one("#f-executor", Select).value = "ray"
        launch.query_one("#f-epochs", Input).value = "1"
        launch.query_one("#f-eps", Input).value = "0, .25"
        launch.query_one("#f-device").value = "cpu"
        launch.query_one("#f-extra", Input).value = "data.train_limit=300 data.test_limit=100 sweep.samples=0"
        await pilot.pause()
        cmd = str(launch.query_one("#launch-cmd", Static).render())
        assert f"--executor ray --ray-address {ray_address}" in cmd, cmd
        await pilot.press("ctrl+s")
        await until(pilot, lambda: isinstance(app.screen, RunsScreen))  # no live screen: the row is the Ray worker's
        (child_pid,) = app.ray_launched
        await until(pilot, lambda: len(table_ids(app)) == 1, timeout=90)
        rid = table_ids(app)[0]
        await until(pilot, lambda: store.get_run(rid).status == "completed", timeout=90)
        await until(pilot, lambda: not app.ray_launched, timeout=60)  # the child exited 0 and was reaped
        run = store.get_run(rid)
        assert run.device == "cpu" and run.epochs == 1 and run.fgsm_error is not None
        assert run.pid is not None and run.pid != child_pid  # the Ray worker ran it, not the dashboard's child
    store.close()


async def test_a_ray_launch_that_is_refused_leaves_a_failed_row_with_its_cause(tmp_path, mnist_root, until, monkeypatch):
    pytest.importorskip("ray")
    monkeypatch.setenv("ADV_TUI_RAY_ADDRESS", "127.0.0.1:1")  # nothing listens there
    store, app = _app(tmp_path, mnist_root)
    async with app.run_test(size=(160, 48)) as pilot:
        launch = await _launch_form(app, pilot, until)
        launch.query_one("#f-executor", Select).value = "ray"
        launch.query_one("#f-extra", Input).value = "data.train_limit=300 data.test_limit=100 sweep.samples=0"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await until(pilot, lambda: len(table_ids(app)) == 1, timeout=90)
        run = store.get_run(table_ids(app)[0])
        assert run.status == "failed" and "cannot reach the Ray cluster at 127.0.0.1:1" in (run.error or ""), run.error
    store.close()
